"""Quality on the judging protocol (atlas.scoring): each config rendered once per class, judged, with its cost.

Every function measures and returns plain rows; `atlas.commands.bench` prints them.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from atlas import objectives
from atlas.bench.checkpoints import chunk_key, load_chunk, save_chunk
from atlas.bench.runs import run_horama, run_ours
from atlas.bench.search import CPU_BEFORE
from atlas.device import cpu_batch
from atlas.imagestats import image_stats
from atlas.models import LoadedModel
from atlas.presets import Preset, get_preset
from atlas.record import target_rates
from atlas.scoring import SCALES, Judge, judge_images

# 50 classes spread evenly over the 1000 (10, 30, ..., 990): the tuning list, on which settings are chosen.
QUALITY_CLASSES = tuple(range(10, 1000, 20))
# 100 classes drawn with a fixed seed from the other 950: the held-out list, on which settings are reported
# (a figure from the list a setting was chosen on flatters it). Kept in the order drawn, so that its first N
# are a random sample too: sorted, they would be ImageNet's first classes, all animals.
HELDOUT_SEED = 21
HELDOUT_CLASSES = tuple(random.Random(HELDOUT_SEED).sample(sorted(set(range(1000)) - set(QUALITY_CLASSES)), 100))
JUDGES = ("efficientnet_lite1", "efficientnet_lite2")
# the class objectives compared on the held-out list: what a class picture maximises
CLASS_OBJECTIVES = tuple(objectives.CLASS_OBJECTIVES)  # the names the objectives tables compare


def quality_classes(count: int, held_out: bool = False) -> tuple[int, ...]:
    """The first `count` of the held-out list, or of the tuning list (more than 50 spread over the 1000)."""
    if held_out:
        return HELDOUT_CLASSES[:count]
    return QUALITY_CLASSES[:count] if count <= 50 else tuple(range(0, 1000, max(1, 1000 // count)))[:count]


def load_judges() -> list[LoadedModel]:
    from atlas.models import load_model

    return [load_model(name) for name in JUDGES]


@dataclass(frozen=True)
class QualityRow:
    """A config's quality on the judging protocol (atlas.scoring) and its cost, per class."""

    config: str
    classes: int
    seconds_per_image: float
    per_class: dict[int, dict[str, dict[str, tuple[float, float]]]]  # class -> scale -> model -> (top-1, top-5)
    stats: dict[int, dict[str, float]]  # class -> atlas.imagestats.image_stats

    def rates_on(self, classes: Sequence[int], scale: str = "large") -> dict[str, tuple[float, float]]:
        """Mean (top-1, top-5) rates per model at one scale over a subset of this row's classes."""
        names = self.per_class[classes[0]][scale].keys()
        return {name: tuple(sum(self.per_class[c][scale][name][i] for c in classes) / len(classes) for i in (0, 1))
                for name in names}

    @property
    def rates(self) -> dict[str, dict[str, tuple[float, float]]]:
        """scale -> model -> mean (top-1, top-5) rates over all of this row's classes."""
        classes = list(self.per_class)
        return {scale: self.rates_on(classes, scale) for scale in SCALES}

    def stat_on(self, classes: Sequence[int], name: str) -> float:
        return sum(self.stats[c][name] for c in classes) / len(classes)


def quality(loaded: LoadedModel, judges: Sequence[LoadedModel], preset: Preset, classes: Sequence[int], device: str,
            *, config: str, batch: int = 8, crops: int = 16, runner: str = "ours", checkpoints: Path | None = None,
            **options) -> QualityRow:
    """Render each class once and judge it on the protocol's scales (atlas.scoring). With `checkpoints`, each
    rendered chunk is kept there and a chunk kept before is read back instead of rendered (atlas.bench.checkpoints)."""
    images, seconds = [], 0.0
    for start in range(0, len(classes), batch if runner == "ours" else 1):
        chunk = list(classes[start : start + (batch if runner == "ours" else 1)])
        key = chunk_key(loaded, preset, chunk, device, runner, options) if checkpoints is not None else None
        kept = load_chunk(checkpoints, key, len(chunk), preset.canvas) if key is not None else None
        if kept is not None:
            out, s = kept
        elif runner == "ours":
            out, s = run_ours(loaded, preset, len(chunk), device, classes=chunk, **options)
        else:
            image, s = run_horama(loaded, preset, preset.steps, device, runner, index=chunk[0])
            out = image[None]
        if kept is None and key is not None and torch.isfinite(out).all():
            save_chunk(checkpoints, key, out, s)
        images.append(out.cpu())
        seconds += s
    # judged as stored: rounded to 8 bits, as the pipeline scores what it writes
    stack = (torch.cat(images) * 255).round() / 255
    broken = int((~torch.isfinite(stack)).flatten(1).any(1).sum())
    if broken:
        print(f"bench: {config}: {broken} of {len(classes)} images not finite", file=sys.stderr)
    # judged where they were rendered: on a GPU box the CPU would take minutes per row
    panel = [Judge(replace(m, module=m.module.to(device)), role)
             for m, role in [(loaded, "generator"), *((j, "judge") for j in judges)]]
    judged = judge_images(stack, panel, list(classes), crops=crops, seed=0)
    per_class = {c: target_rates(j) for c, j in zip(classes, judged, strict=True)}
    stats = {c: image_stats(stack[k].numpy()) for k, c in enumerate(classes)}
    return QualityRow(config, len(classes), seconds / len(classes), per_class, stats)


def objective_configs(gpu: bool, objectives: tuple[str, ...] | None = None, fields: dict | None = None,
                      presets: tuple[str, ...] | None = None) -> list[tuple[str, str, dict, dict, int | None]]:
    """The class objectives (`objectives`, default all of `CLASS_OBJECTIVES`) at `presets`, with `fields` of
    each preset changed, as `quality_configs` rows. `presets` defaults to the machine's: the `cpu` preset
    everywhere, and the `atlas` preset on a GPU (about 2 minutes an image on one CPU thread)."""
    presets = presets or (("cpu", "atlas") if gpu else ("cpu",))
    changed = "".join(f" {k}={v}" for k, v in (fields or {}).items())
    return [(f"{objective} · {preset}{changed}", preset, dict(fields or {}), {"objective": objective}, None)
            for preset in presets for objective in objectives or CLASS_OBJECTIVES]


def quality_configs(gpu: bool) -> list[tuple[str, str, dict, dict, int | None]]:
    """(label, preset, overrides, render options, class limit) of each quality row.

    On a CPU: the first `cpu` preset (engine 1, CPU_BEFORE) and today's, on the same classes (the before/after
    table of `make bench`), then the Fourier baseline at the new settings. The `atlas` preset
    (about 220 s an image on 2 cores) runs only with --part gpu or on its own.
    On a GPU: the `atlas` preset, its Fourier baseline and xplique's settings (16 classes, the
    costliest row); the `cpu` presets are rows of the search part there.
    """
    if gpu:
        return [
            ("maco · atlas", "atlas", {}, {}, None),
            ("fourier · atlas", "atlas", {}, {"param": "fourier"}, None),
            ("maco · xplique", "xplique", {}, {}, 16),
        ]
    return [
        ("before: cpu v1", "cpu", CPU_BEFORE, {}, None),
        ("after: cpu", "cpu", {}, {}, None),
        ("fourier · cpu", "cpu", {}, {"param": "fourier"}, None),
    ]


def quality_batch(preset: Preset, gpu: bool) -> int:
    """How many pictures a quality row renders together."""
    if gpu:
        # 512 crops a step (32 images x 16 crops) took 40 GB of an H100 on Lite0; xplique's 32 crops at
        # 32 images ran out of its 80 GB
        return max(1, min(32, 512 // preset.views))
    return cpu_batch(preset.views)


def quality_rows(loaded: LoadedModel, judges: Sequence[LoadedModel], configs, classes: Sequence[int], device: str,
                 gpu: bool, on_row: Callable[[QualityRow, Sequence[int]], None] | None = None,
                 checkpoints: Path | None = None) -> list[tuple[QualityRow, Preset]]:
    """`quality` of each of `configs` (as `quality_configs`), with its preset; `on_row(row, classes)` as each
    row is done: a run may be cut short, and with `checkpoints` (a folder) it resumes where it stopped."""
    measured = []
    for name, preset_name, overrides, options, limit in configs:
        preset = get_preset(preset_name, **overrides)
        n = classes[:limit] if limit else classes
        row = quality(loaded, judges, preset, n, device, config=name, batch=quality_batch(preset, gpu),
                      checkpoints=checkpoints, **options)
        measured.append((row, preset))
        if on_row is not None:
            on_row(row, n)
    return measured


def quality_json(row: QualityRow, preset: Preset) -> dict:
    """A quality row as written to the JSON: its fields, its mean rates and the preset it rendered."""
    return asdict(row) | {"rates": row.rates, "preset": preset.to_dict()}
