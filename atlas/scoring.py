"""The judging protocol: how every picture is scored, the same way for every preset.

Scoring each image at its own optimisation scale flatters presets with large crops (large crops
are easier to classify) and says nothing about the whole picture, which is what a person sees.
So every picture is scored by the generator and the judges (other ImageNet models, which measure
transferability as in the MACO paper) at fixed scales (`SCALES`): on seeded crops of a small scale
(0.20-0.45 of the side) and a large one (0.40-0.80), and on the whole picture resized to each
model's input. Each model's record is its top-5 of the crop-averaged probabilities and, for a
class, how often the class is its top-1 and top-5.

Each picture gets its own boxes, drawn from the protocol's seed and the picture's 8-bit pixels:
every model sees the same crops of a picture wherever it is judged (in its render's batch, alone,
or read back from the cache), and different pictures see different boxes.  With boxes shared by
every picture, one unlucky draw (small boxes at an edge) moved every picture's rate at once, by
5-13 points on small crops, and more pictures did not average it out; drawn per picture, the
error of a few boxes is independent from picture to picture and averages out over a class list
(docs/benchmarks.md, "Which boxes the judges see").
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from atlas.models import LoadedModel
from atlas.record import ModelScores, Scores, TopClass

TOP = 5
# name -> (crop_min, crop_max) as fractions of the side; "whole" is one crop, the full canvas.
SCALES: dict[str, tuple[float, float]] = {"small": (0.20, 0.45), "large": (0.40, 0.80), "whole": (1.0, 1.0)}
# Crops a judge reads at once.  A card wants large batches; a CPU reads an EfficientNet-Lite crop 2-3x
# faster one or two at a time than 32 or 64 at a time (activations that stay in cache): 16-23 ms
# against 40-60 ms a Lite0 crop on 2 AMD EPYC cores (docs/benchmarks.md, "Judging crops drawn per
# picture").
CUDA_CHUNK = 64
CPU_CHUNK = 2


@dataclass(frozen=True)
class Judge:
    """A model that scores images; `role` is "generator" or "judge"."""

    loaded: LoadedModel
    role: str


def pixel_boxes(canvas: int, crops: int, seed: int, crop_min: float, crop_max: float) -> list[tuple[int, int, int]]:
    """(top, left, side) of `crops` square boxes inside the canvas.

    Sides are U[crop_min, crop_max) of the canvas, centres 0.5 + 0.15 N(0, 1) (as the renderer
    draws them), clamped so that a box stays inside.
    """
    generator = torch.Generator().manual_seed(seed)
    sides = crop_min + (crop_max - crop_min) * torch.rand(crops, generator=generator)
    centres = 0.5 + 0.15 * torch.randn(crops, 2, generator=generator)
    boxes = []
    for side_fraction, (cy, cx) in zip(sides.tolist(), centres.tolist(), strict=True):
        side = max(2, min(canvas, round(side_fraction * canvas)))
        top = min(max(round(cy * canvas - side / 2), 0), canvas - side)
        left = min(max(round(cx * canvas - side / 2), 0), canvas - side)
        boxes.append((top, left, side))
    return boxes


def picture_digests(images: torch.Tensor) -> list[bytes]:
    """sha256 of each (3, S, S) picture's 8-bit pixels, whatever device and memory layout it is in:
    what its boxes are drawn from."""
    stored = (images.detach().float() * 255).round().clamp_(0, 255).to(torch.uint8).cpu().contiguous()
    return [hashlib.sha256(picture.numpy().tobytes()).digest() for picture in stored]


def box_seed(seed: int, digest: bytes, crop_min: float, crop_max: float) -> int:
    """The seed of one picture's boxes at one scale: the scales' draws are independent too."""
    material = f"{seed}:{crop_min!r}:{crop_max!r}:".encode() + digest
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "little") >> 1  # torch seeds are < 2**63


def picture_crops(images: torch.Tensor, boxes: Sequence[Sequence[tuple[int, int, int]]], size: int) -> torch.Tensor:
    """(K, 3, S, S) and each picture's n boxes -> (K * n, 3, size, size), image-major."""
    out = [
        F.interpolate(images[k : k + 1, :, top : top + s, left : left + s], size=(size, size), mode="bicubic",
                      antialias=True, align_corners=False)
        for k, picture_boxes in enumerate(boxes) for top, left, s in picture_boxes
    ]
    return torch.cat(out).clamp_(0, 1)


def _model_input(crops: torch.Tensor, judge: LoadedModel, value_range: tuple[float, float] | None) -> torch.Tensor:
    """[0, 1] pixels -> what the model reads: the renderer's value range, or the model's mean/std."""
    if value_range is not None:
        low, high = value_range
        return crops * (high - low) + low
    mean = torch.tensor(judge.mean, device=crops.device).view(1, 3, 1, 1)
    std = torch.tensor(judge.std, device=crops.device).view(1, 3, 1, 1)
    return (crops - mean) / std


@torch.no_grad()
def _probabilities(judge: LoadedModel, crops: torch.Tensor, value_range: tuple[float, float] | None,
                   chunk: int | None) -> torch.Tensor:
    device = next(judge.module.parameters()).device
    chunk = chunk or (CPU_CHUNK if device.type == "cpu" else CUDA_CHUNK)
    out = []
    for start in range(0, crops.shape[0], chunk):
        x = _model_input(crops[start : start + chunk].to(device), judge, value_range)
        out.append(judge.module(x).float().softmax(dim=-1))
    return torch.cat(out).cpu()  # one trip to the host per model and scale, not one per chunk


def score_images(
    images: torch.Tensor,
    judges: Sequence[Judge],
    targets: Sequence[int | None],
    *,
    crops: int = 16,
    seed: int = 0,
    crop_min: float = 0.2,
    crop_max: float = 0.25,
    value_range: tuple[float, float] | None = None,
    chunk: int | None = None,  # by the judge's device: CPU_CHUNK or CUDA_CHUNK
    digests: Sequence[bytes] | None = None,
) -> list[Scores]:
    """The record's scores of each image: per model the top-5 of the crop-averaged
    probabilities, and for class targets how often the target is top-1/top-5.  `digests` are the
    images' `picture_digests`, where the caller has them already."""
    count, _, canvas, _ = images.shape
    digests = picture_digests(images) if digests is None else digests
    boxes = [pixel_boxes(canvas, crops, box_seed(seed, d, crop_min, crop_max), crop_min, crop_max) for d in digests]
    per_image: list[list[ModelScores]] = [[] for _ in range(count)]
    for judge in judges:
        size = judge.loaded.input_size
        device = next(judge.loaded.module.parameters()).device  # crops resized where the judge runs
        probs = _probabilities(judge.loaded, picture_crops(images.float().to(device), boxes, size), value_range, chunk)
        probs = probs.view(count, crops, -1)
        mean = probs.mean(dim=1)
        top = mean.topk(min(TOP, mean.shape[1]), dim=1)
        per_crop_top = probs.topk(min(TOP, probs.shape[2]), dim=2).indices  # (K, n, 5)
        for k, target in enumerate(targets):
            top5 = tuple(TopClass(int(i), round(float(p), 6))
                         for i, p in zip(top.indices[k], top.values[k], strict=True))
            hit = target is not None and 0 <= target < mean.shape[1]
            per_image[k].append(ModelScores(
                judge.loaded.name, judge.role, top5,
                target_top1_rate=float((per_crop_top[k, :, 0] == target).float().mean()) if hit else None,
                target_top5_rate=float((per_crop_top[k] == target).any(dim=1).float().mean()) if hit else None,
                target_prob=round(float(mean[k, target]), 6) if hit else None,
            ))
    return [Scores(crops, seed, tuple(models), (crop_min, crop_max), per_picture_boxes=True) for models in per_image]


def judge_images(
    images: torch.Tensor,
    judges: Sequence[Judge],
    targets: Sequence[int | None],
    *,
    crops: int = 16,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
) -> list[dict[str, Scores]]:
    """One {scale: scores} dict per image, at every scale of `SCALES`: the record's "judging"."""
    digests = picture_digests(images)
    per_scale = {
        name: score_images(images, judges, targets, crops=1 if low == 1.0 else crops, seed=seed,
                           crop_min=low, crop_max=high, value_range=value_range, digests=digests)
        for name, (low, high) in SCALES.items()
    }
    return [{name: per_scale[name][k] for name in SCALES} for k in range(images.shape[0])]
