"""One judging protocol for every preset: scores at fixed scales, whatever scale the image was made at.

Scoring each image at its own optimisation scale flatters presets with large crops (large crops
are easier to classify) and says nothing about the whole picture, which is what a person sees.
So every picture is scored by the generator and the judges on seeded crops of a small scale
(0.20-0.45 of the side) and a large one (0.40-0.80), and on the whole picture resized to each
model's input. Each picture's crops depend only on the seed and its pixels (atlas.scoring), so
every preset is judged alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from atlas.record import Scores
from atlas.scoring import Judge, picture_digests, score_images

# name -> (crop_min, crop_max) as fractions of the side; "whole" is one crop, the full canvas.
SCALES: dict[str, tuple[float, float]] = {"small": (0.20, 0.45), "large": (0.40, 0.80), "whole": (1.0, 1.0)}


def judge_images(
    images: torch.Tensor,
    judges: Sequence[Judge],
    targets: Sequence[int | None],
    *,
    crops: int = 16,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
) -> list[dict[str, Scores]]:
    """One {scale: scores} dict per image: the record's "judging"."""
    digests = picture_digests(images)
    per_scale = {
        name: score_images(images, judges, targets, crops=1 if low == 1.0 else crops, seed=seed,
                           crop_min=low, crop_max=high, value_range=value_range, digests=digests)
        for name, (low, high) in SCALES.items()
    }
    return [{name: per_scale[name][k] for name in SCALES} for k in range(images.shape[0])]

