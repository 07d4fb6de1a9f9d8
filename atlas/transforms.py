"""Random crops and noise, batched: K canvases x n crops each -> one (K*n, 3, s, s) model batch.

Every sample draws from its own generators, so a batch of K renders the same images
as K separate runs. Crop geometry is drawn on the CPU (a few numbers per step, the
same on every device); noise is drawn on the render device (millions of numbers).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from atlas.presets import Preset

CENTRE_STD = 0.15  # crop centres 0.5 + 0.15 * N(0, 1), as in horama and xplique
ANNEAL_STD = 0.05  # xplique's spread of annealed crop sides
MAX_SCALE = 2.0  # largest canvas-pixels-per-input-pixel sampled without prefiltering


def crop_boxes(generators: Sequence[torch.Generator], preset: Preset, step: int) -> torch.Tensor:
    """(K, n, 3) crop boxes [centre x, centre y, side] as fractions of the canvas, on the CPU.

    Sides are U[crop_min, crop_max), or annealed N(mean_t, 0.05) clamped to
    [crop_min, crop_max]. Centres are clamped so that every crop lies inside the canvas.
    """
    n = preset.crops
    schedule = preset.anneal_schedule
    boxes = []
    for g in generators:
        centres = 0.5 + CENTRE_STD * torch.randn((n, 2), generator=g)
        if schedule is None:
            sides = preset.crop_min + (preset.crop_max - preset.crop_min) * torch.rand((n,), generator=g)
        else:
            sides = _anneal_mean(schedule, step, preset.steps) + ANNEAL_STD * torch.randn((n,), generator=g)
            sides = sides.clamp(preset.crop_min, preset.crop_max)
        half = sides[:, None] / 2
        centres = torch.minimum(torch.maximum(centres, half), 1 - half)
        boxes.append(torch.cat([centres, sides[:, None]], dim=1))
    return torch.stack(boxes)


def _anneal_mean(schedule: tuple[float, float], step: int, steps: int) -> float:
    start, end = schedule
    return start + (end - start) * step / max(1, steps - 1)


def nominal_side(preset: Preset, step: int) -> float:
    """The largest crop side to expect at `step`, known before drawing (sets the prefilter)."""
    schedule = preset.anneal_schedule
    if schedule is None:
        return preset.crop_max
    return min(preset.crop_max, _anneal_mean(schedule, step, preset.steps) + 2 * ANNEAL_STD)


def pool_factor(canvas: int, size: int, side: float) -> int:
    """Smallest integer f such that a crop of `side` samples at most MAX_SCALE canvas/f pixels per input pixel."""
    return max(1, int(-(-(side * canvas) // (MAX_SCALE * size))))


def crop_resize(images: torch.Tensor, boxes: torch.Tensor, size: int, pool: int = 1) -> torch.Tensor:
    """(K, C, S, S) images and (K, n, 3) boxes -> (K*n, C, size, size) crops, differentiable in `images`.

    One bilinear grid_sample for all crops: each sample's n crops are laid side by side
    in one (size, n*size) sampling grid over that sample's canvas, so nothing is copied.
    Aliasing: bilinear sampling is alias-free when upsampling and mild up to 2 canvas
    pixels per output pixel, the most our presets reach (e.g. a 0.25 crop of a 1280
    canvas at 224 px is 1.43); the MACO spectrum puts 0.1% of its power above a quarter
    of the sampling rate, the band that folds back at a scale of 2. Beyond 2 (`pool` > 1,
    chosen by pool_factor from the preset, never from a batch's random draws) the canvas
    is first area-averaged by `pool`, a box prefilter, which brings the scale back under 2.
    """
    k, n = boxes.shape[:2]
    if pool > 1:
        pooled = -(-images.shape[-1] // pool)
        images = F.interpolate(images, size=(pooled, pooled), mode="area")
    boxes = boxes.to(device=images.device, dtype=images.dtype)
    # pixel centres of the output, as fractions of a crop side
    t = (torch.arange(size, device=images.device, dtype=images.dtype) + 0.5) / size
    lo = boxes[..., :2] - boxes[..., 2:] / 2  # (K, n, 2) top-left corner, fractions
    u = lo[..., None, :] + boxes[..., None, 2:] * t[:, None]  # (K, n, size, 2): x and y along the crop
    gx = (2 * u[..., 0] - 1)[:, :, None, :].expand(k, n, size, size)  # align_corners=False coordinates
    gy = (2 * u[..., 1] - 1)[:, :, :, None].expand(k, n, size, size)
    grid = torch.stack([gx, gy], dim=-1).permute(0, 2, 1, 3, 4).reshape(k, size, n * size, 2)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.view(k, -1, size, n, size).permute(0, 3, 1, 2, 4).reshape(k * n, -1, size, size)


def add_noise(crops: torch.Tensor, sigma: float, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """crops + sigma * N(0,1) + sigma * (U(0,1) - 0.5); sample k's crops use generators[k]."""
    if sigma == 0:
        return crops
    k = len(generators)
    shape = (crops.shape[0] // k, *crops.shape[1:])
    normal = torch.empty((k, *shape), device=crops.device, dtype=crops.dtype)
    uniform = torch.empty_like(normal)
    for i, g in enumerate(generators):
        normal[i].normal_(generator=g)
        uniform[i].uniform_(generator=g)
    noise = sigma * (normal + uniform - 0.5)
    return crops + noise.view_as(crops)


def whole_view(images: torch.Tensor, size: int) -> torch.Tensor:
    """(K, C, S, S) -> (K, C, size, size): the whole canvas, area-prefiltered (antialiased) as it shrinks."""
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


class RandomCrops:
    """Per-step augmentation of K canvases: crops resized to the model input, plus noise.

    Sample k's rows are its random crops, then its whole views (the preset's `whole_views`).
    """

    def __init__(
        self,
        preset: Preset,
        size: int,
        geometry: Sequence[torch.Generator],
        noise: Sequence[torch.Generator],
    ):
        self.preset = preset
        self.size = size
        self.geometry = list(geometry)
        self.noise = list(noise)
        self._boxes: torch.Tensor | None = None  # (steps, K, n, 3) on the images' device

    def __call__(self, images: torch.Tensor, step: int) -> torch.Tensor:
        if self._boxes is None:
            # Every step's boxes drawn up front (the same draws in the same order) and copied once:
            # a host-to-device copy each step would wait for the previous step's kernels (a
            # pageable copy synchronises its stream), leaving a GPU idle while the host launches.
            steps = range(self.preset.steps)
            self._boxes = torch.stack([crop_boxes(self.geometry, self.preset, s) for s in steps]).to(images.device)
        pool = pool_factor(images.shape[-1], self.size, nominal_side(self.preset, step))
        crops = crop_resize(images, self._boxes[step], self.size, pool)
        views = self.preset.whole_views
        if views:
            k, rest = images.shape[0], crops.shape[1:]
            whole = whole_view(images, self.size)[:, None].expand(k, views, *rest)
            crops = torch.cat([crops.view(k, -1, *rest), whole], dim=1).reshape(-1, *rest)
        return add_noise(crops, self.preset.noise, self.noise)
