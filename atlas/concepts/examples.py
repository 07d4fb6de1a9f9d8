"""Dataset examples: for each channel, the image regions of a folder that activate it most.

One streamed pass: each batch's activation maps update a running top-k per channel (the
peak of each image's map, where it is, which image), so memory stays O(channels x k)
whatever the number of images. An image gives at most one example per channel, its peak,
as Microscope shows them: k examples are k different images.
"""

from __future__ import annotations

import torch


class RunningTopK:
    """The k highest per-image peaks per channel seen so far, with their image ids and positions.

    Ranked by a total order, the peak (highest first) then the image id (lowest first), so the result
    does not depend on the order images come in: the top-k of shards' top-ks is the top-k of one pass."""

    def __init__(self, channels: int, k: int):
        self.k = k
        self.values = torch.full((channels, 0), float("-inf"))
        self.images = torch.zeros((channels, 0), dtype=torch.long)
        self.positions = torch.zeros((channels, 0), dtype=torch.long)  # y * width + x in the map

    def update(self, maps: torch.Tensor, image_ids: torch.Tensor) -> None:
        """Fold in a batch: maps (B, C, H, W), image_ids (B,)."""
        peaks, where = maps.detach().float().flatten(2).max(dim=2)  # (B, C)
        self.fold(peaks.T.cpu(), image_ids.cpu()[None, :].expand(peaks.shape[1], -1), where.T.cpu())

    def fold(self, values: torch.Tensor, images: torch.Tensor, positions: torch.Tensor) -> None:
        """Fold in candidates, (C, n) each: another tracker's top-k, or a batch's peaks."""
        values = torch.cat([self.values, values.float()], dim=1)
        images = torch.cat([self.images, images.long()], dim=1)
        positions = torch.cat([self.positions, positions.long()], dim=1)
        by_image = images.argsort(dim=1, stable=True)
        values, images, positions = (t.gather(1, by_image) for t in (values, images, positions))
        # descending and stable: equal peaks stay in image order; NaN, not comparable, goes last
        order = torch.nan_to_num(values, nan=float("-inf")).argsort(dim=1, descending=True, stable=True)[:, : self.k]
        self.values, self.images, self.positions = (t.gather(1, order) for t in (values, images, positions))


def region(position: int, grid: tuple[int, int], side: int, size: int) -> tuple[int, int, int]:
    """(left, top, size) of a square of `size` px centred on a map cell, kept inside the `side` px input."""
    height, width = grid
    y, x = divmod(position, width)
    centre_x, centre_y = (x + 0.5) * side / width, (y + 0.5) * side / height
    left = min(max(round(centre_x - size / 2), 0), side - size)
    top = min(max(round(centre_y - size / 2), 0), side - size)
    return left, top, size
