"""Square patches of the model's input, as CRAFT cuts them: a grid at a stride of 0.8 of the side."""

from __future__ import annotations

import torch
import torch.nn.functional as F

STRIDE_RATIO = 0.8  # CRAFT's stride, as a fraction of the patch side


def patch_grid(side: int, patch: int, stride_ratio: float = STRIDE_RATIO) -> list[tuple[int, int]]:
    """(left, top) of every patch of a `side`-pixel square, row by row (torch's `unfold` positions)."""
    if not 1 <= patch <= side:
        raise ValueError(f"a patch of {patch} px does not fit a {side} px input")
    stride = max(1, round(patch * stride_ratio))
    starts = range(0, side - patch + 1, stride)
    return [(left, top) for top in starts for left in starts]


def cut_patches(images: torch.Tensor, grid: list[tuple[int, int]], patch: int, size: int) -> torch.Tensor:
    """(B, C, S, S) -> (B * len(grid), C, size, size), image-major, each patch resized bilinearly."""
    crops = torch.stack([images[:, :, top : top + patch, left : left + patch] for left, top in grid], dim=1)
    crops = crops.flatten(0, 1)
    if patch == size:
        return crops
    return F.interpolate(crops, size=(size, size), mode="bilinear", align_corners=False, antialias=patch > size)
