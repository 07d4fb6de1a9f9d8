"""Render presets: the optimisation settings of a MACO run, as plain data.

`horama` and `xplique` reproduce the defaults of the MACO authors' two codes, horama 0.3.0
(PyTorch) and xplique 2.0.2 (TensorFlow; `docs/benchmarks.md` compares all three); `atlas` is
our default for a GPU, `cpu-best` the default on a CPU (a 2-core laptop renders `make atlas`'s
subset in minutes), and `cpu` a quicker CPU budget. No torch here: configs and caches read presets too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from atlas.errors import AtlasError

# xplique's schedule: the mean crop side falls linearly from 0.5 to 0.05 of the canvas.
XPLIQUE_ANNEAL = (0.5, 0.05)
INITS = ("normal",)
# The bounds of the integer fields: a 16 px canvas is the smallest a crop of it can be read at,
# and one of 4096 px already fills tens of GB with a batch's crops and gradients.
CANVAS = (16, 4096)
STEPS = (1, 100_000)
CROPS = (1, 1024)
WHOLE_VIEWS = (0, CROPS[1])


_REAL_FIELDS = ("crop_min", "crop_max", "noise", "lr", "input_scale", "lr_end")


def _finite(value: Any) -> bool:
    """A real number (true and false are not numbers here) that is neither infinite nor NaN."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Preset:
    """How to optimise one image.

    crop sides are fractions of the canvas: U[crop_min, crop_max) unless `crop_anneal`
    is set, in which case sides are N(mean_t, 0.05) with mean_t going linearly from
    crop_anneal[0] to crop_anneal[1] over the steps (True means xplique's (0.5, 0.05)),
    clamped to [crop_min, crop_max]. `noise` is sigma of the Gaussian + uniform noise
    added to the crops in the model's input space.

    Each step also shows the model `whole_views` views of the whole canvas, beside the random
    crops, so the picture a reader sees is optimised as a picture, not only through its parts.
    """

    name: str
    canvas: int
    steps: int
    crops: int
    crop_min: float
    crop_max: float
    crop_anneal: bool | tuple[float, float] = False
    noise: float = 0.05
    lr: float = 1.0
    init: str = "normal"
    phase_offset: bool = True
    input_scale: float = 1.0
    lr_end: float = 1.0
    whole_views: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.crop_anneal, list):
            object.__setattr__(self, "crop_anneal", tuple(self.crop_anneal))
        problems = []
        for name, (low, high), unit in (("canvas", CANVAS, " pixels"), ("steps", STEPS, ""), ("crops", CROPS, ""),
                                        ("whole_views", WHOLE_VIEWS, "")):
            number = getattr(self, name)
            if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
                problems.append(f"{name} must be an integer from {low} to {high}{unit}, not {number!r}")
        # a number that is not finite would reach the cache key's JSON (which refuses it) or the optimiser
        numbers = {name: _finite(getattr(self, name)) for name in _REAL_FIELDS}
        problems += [f"{name} must be a finite number, not {getattr(self, name)!r}"
                     for name, ok in numbers.items() if not ok]
        if numbers["crop_min"] and numbers["crop_max"] and not 0 < self.crop_min <= self.crop_max <= 1:
            problems.append(f"need 0 < crop_min <= crop_max <= 1, got {self.crop_min!r} and {self.crop_max!r}")
        anneal = self.crop_anneal
        if not isinstance(anneal, bool) and not (
            isinstance(anneal, tuple) and len(anneal) == 2 and all(_finite(v) and 0 < v <= 1 for v in anneal)
        ):
            problems.append(f"crop_anneal must be true/false or two fractions (start, end), not {anneal!r}")
        if numbers["noise"] and self.noise < 0:
            problems.append(f"noise must be >= 0, not {self.noise!r}")
        if numbers["lr"] and self.lr <= 0:
            problems.append(f"lr must be > 0, not {self.lr!r}")
        if not isinstance(self.phase_offset, bool):
            problems.append(f"phase_offset must be true or false, not {self.phase_offset!r}")
        if numbers["input_scale"] and not 0 < self.input_scale <= 1:
            problems.append(
                f"input_scale must be in (0, 1], a fraction of the model's input side, not {self.input_scale!r}")
        if numbers["lr_end"] and not 0 < self.lr_end <= 1:
            problems.append(f"lr_end must be in (0, 1], a fraction of lr, not {self.lr_end!r}")
        if self.init not in INITS:
            problems.append(f"init must be one of {', '.join(INITS)}, not {self.init!r}")
        if problems:
            raise AtlasError(f"preset {self.name!r}: " + "; ".join(problems))

    @property
    def anneal_schedule(self) -> tuple[float, float] | None:
        """(start, end) mean crop side when annealed, else None."""
        if self.crop_anneal is True:
            return XPLIQUE_ANNEAL
        if self.crop_anneal is False:
            return None
        return (float(self.crop_anneal[0]), float(self.crop_anneal[1]))

    @property
    def views(self) -> int:
        """What the model reads of each sample at each step: its random crops and its whole views."""
        return self.crops + self.whole_views

    def input_side(self, model_input: int) -> int:
        """The side of the crops fed to a model whose own input side is `model_input`: a multiple of 8."""
        if self.input_scale == 1.0:
            return model_input
        return max(16, 8 * round(model_input * self.input_scale / 8))

    def lr_at(self, step: int) -> float:
        """The learning rate of `step`: `lr`, cosine-decayed to lr * lr_end at the last step."""
        if self.lr_end == 1.0 or self.steps < 2:
            return self.lr
        t = step / (self.steps - 1)
        return self.lr * (self.lr_end + (1 - self.lr_end) * 0.5 * (1 + math.cos(math.pi * t)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (cache keys and records are built from this)."""
        data = dataclasses.asdict(self)
        if isinstance(self.crop_anneal, tuple):
            data["crop_anneal"] = list(self.crop_anneal)
        # Left out at its default, so the cache keys of presets without whole views stay what they were.
        if data["whole_views"] == 0:
            del data["whole_views"]
        return data


PRESETS: dict[str, Preset] = {
    # horama 0.3.0's defaults, crop sides as intended ([0.20, 0.25), not the code's [0.25, 0.30)).
    "horama": Preset("horama", canvas=1280, steps=1000, crops=6, crop_min=0.20, crop_max=0.25, noise=0.05,
                     phase_offset=False),
    # xplique 2.0.2's defaults: sides annealed from 0.5 to 0.05 of the canvas.
    "xplique": Preset(
        "xplique", canvas=512, steps=256, crops=32, crop_min=0.05, crop_max=1.0, crop_anneal=True, noise=0.08,
        phase_offset=False,
    ),
    # The atlas default on a GPU. Measured on Lite0 (classes 1, 130, 967; 16 random crops of
    # 0.4-0.8 of each image): at 512 px, 8 crops, sides 0.25-0.6, Lite0 top-1 / Lite1 top-5 were
    # 75-100% / 94-100% after 24 steps and 88-100% / 94-100% after 48 (the authors' code: 88-94%
    # after 128). Sides 0.4-0.8 scored the same but drew fewer, coarser objects. 128 steps x 16
    # crops is 5x the budget where those rates level off, for finer detail, at half of 256 steps.
    # One whole view a step besides (17 views for 16): on the tuning list it made Lite0 call all 25
    # pictures by their class (24 without) and Lite2 read 24 whole pictures as the class (23), with
    # the crops' rates unchanged, for 1.06-1.10x the time; on 59 held-out classes Lite0 calls all its
    # pictures by their class (90% without), the crops' rates within 2 points.
    "atlas": Preset("atlas", canvas=512, steps=128, crops=16, crop_min=0.25, crop_max=0.6, noise=0.05,
                    whole_views=1),
    # The quick 2-core CPU budget (`make atlas ARGS="--preset cpu"`), chosen by the settings searches of
    # docs/benchmarks.md: 48 steps of 4 crops of 0.20-0.60 of a 384 px canvas, read at 0.72 of the model's side (160 px
    # for Lite0), plus one view of the whole canvas a step. The crops hold the class at the judges'
    # scales at 2.5x less CPU time than the first `cpu` preset's 64 steps of 0.4-0.8 crops of 256 px
    # at 224 px; the whole view, for 1.2x the time, makes the whole picture read as the class: on 100
    # held-out classes Lite0 calls 95% of the pictures by their class, against 88% without it; small
    # crops hold it less often (Lite1/Lite2 top-5 61% / 54%).
    "cpu": Preset("cpu", canvas=384, steps=48, crops=4, crop_min=0.2, crop_max=0.6, noise=0.05, input_scale=0.72,
                  whole_views=1),
    # 8 crops and 96 steps, without a whole view: the cheapest settings of search round 2 (50 classes)
    # that hold the class at the large scale (Lite0 top-1 100%, Lite1/Lite2 top-5 99%) and on the whole
    # picture (100%), at 3.6x the CPU time of round 2's `cpu` (17.5 against 4.8 s an image on one AMD
    # EPYC thread).
    "cpu-fine": Preset("cpu-fine", canvas=384, steps=96, crops=8, crop_min=0.2, crop_max=0.6, noise=0.05,
                       input_scale=0.72),
    # The CPU default (`make atlas`): the settings that meet the held-out goals (search rounds 4-6,
    # docs/benchmarks.md; nothing at 2x the time of `cpu` or less did): 7 crops
    # and a whole view for 128 steps, read at 0.72 of the model's side. On 100 held-out classes, judged
    # on each picture's own boxes, Lite0 calls 99 of the pictures by their class, Lite1/Lite2 large
    # top-5 97% / 96%, small 80% / 78%; 4.0x the CPU time of `cpu`.
    "cpu-best": Preset("cpu-best", canvas=384, steps=128, crops=7, crop_min=0.2, crop_max=0.6, noise=0.05,
                       input_scale=0.72, whole_views=1),
}


def get_preset(name: str, **overrides: Any) -> Preset:
    """The named preset with some fields replaced, e.g. get_preset("atlas", steps=64)."""
    if name not in PRESETS:
        raise AtlasError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return with_fields(PRESETS[name], **overrides)


def with_fields(preset: Preset, **overrides: Any) -> Preset:
    """`preset` with some fields replaced; a name that is no field is a one-line error naming the fields."""
    fields = {f.name for f in dataclasses.fields(Preset)} - {"name"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise AtlasError(
            f"unknown preset setting {unknown[0]!r}: the settings are {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(preset, **overrides)
