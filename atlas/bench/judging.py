"""What judging costs at each crop count, and whether its rates hold: the same pictures judged again.

Every picture is rendered once; the judging protocol (atlas.scoring) then runs on those same
stored pixels with each crop count, so a difference in rates comes from the crops alone, never
from other pictures.  Costs are CPU seconds of this process (on a shared machine the wall clock
swings with the load), with the render's beside them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from atlas.bench.runs import run_ours
from atlas.models import LoadedModel
from atlas.presets import Preset
from atlas.record import target_rates
from atlas.scoring import SCALES, Judge, judge_images

CROP_COUNTS = (16, 8, 6, 4, 3, 2)


@dataclass(frozen=True)
class CropRow:
    """The judging of the same pictures with `crops` crops per scale."""

    crops: int
    cpu_seconds: float  # per picture, every model and scale
    per_class: dict[int, dict[str, dict[str, tuple[float, float]]]]  # class -> scale -> model -> (top-1, top-5)

    def rates(self, classes: Sequence[int]) -> dict[str, dict[str, tuple[float, float]]]:
        """scale -> model -> mean (top-1, top-5) over `classes`."""
        return {scale: {name: tuple(sum(self.per_class[c][scale][name][i] for c in classes) / len(classes)
                                    for i in (0, 1))
                        for name in self.per_class[classes[0]][scale]}
                for scale in SCALES}

    def largest_gap(self, reference: CropRow, classes: Sequence[int]) -> float:
        """The largest difference of a mean rate from the reference's, over every scale, model and rate."""
        mine, theirs = self.rates(classes), reference.rates(classes)
        return max(abs(mine[s][m][i] - theirs[s][m][i]) for s in mine for m in mine[s] for i in (0, 1))


@dataclass(frozen=True)
class JudgingCost:
    """Rows of one crop count each, on pictures rendered once; the first row is the reference (16)."""

    classes: tuple[int, ...]
    render_cpu_seconds: float  # per picture
    rows: tuple[CropRow, ...]

    def to_json(self) -> dict:
        return {"classes": list(self.classes), "render_cpu_seconds": self.render_cpu_seconds,
                "rows": [{"crops": r.crops, "cpu_seconds": r.cpu_seconds, "rates": r.rates(self.classes),
                          "largest_gap": r.largest_gap(self.rows[0], self.classes), "per_class": r.per_class}
                         for r in self.rows]}


def judging_cost(loaded: LoadedModel, judges: Sequence[LoadedModel], preset: Preset, classes: Sequence[int],
                 device: str, *, counts: Sequence[int] = CROP_COUNTS, batch: int = 2) -> JudgingCost:
    """Render each class once at `preset`, then judge those pictures with each of `counts` crops per scale."""
    images, render_cpu = [], time.process_time()
    for start in range(0, len(classes), batch):
        out, _ = run_ours(loaded, preset, batch, device, classes=list(classes[start : start + batch]))
        images.append(out)
    render_cpu = (time.process_time() - render_cpu) / len(classes)
    stack = ((torch.cat(images).clamp(0, 1) * 255).round() / 255).to(device)  # judged as stored, in 8 bits
    panel = [Judge(replace(m, module=m.module.to(device)), role)
             for m, role in [(loaded, "generator"), *((j, "judge") for j in judges)]]
    rows = []
    for count in counts:
        tick = time.process_time()
        judged = judge_images(stack, panel, list(classes), crops=count, seed=0)
        seconds = (time.process_time() - tick) / len(classes)
        rows.append(CropRow(count, seconds, {c: target_rates(j) for c, j in zip(classes, judged, strict=True)}))
    return JudgingCost(tuple(classes), render_cpu, tuple(rows))
