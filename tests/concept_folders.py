"""Image folders whose concepts are known: every image tiles crops of two photographs.

Each image is a `tiles` x `tiles` grid; each tile is a random crop of one of two photos,
chosen at random, so the arrangement differs from image to image while the two "concepts"
(the two photos) stay the same. The tile map of every file is returned, so a test can label
each patch by the photo that fills most of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.photos import photo

PAIR = ("chelsea", "coffee")  # a cat's face and a cup: no tile of one looks like the other


@pytest.fixture
def one_thread():
    """HALS is many small ops: on two shared cores a second thread makes it 10-30x slower, not faster.
    Import this fixture into a test module and mark it autouse there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiled(rng: np.random.Generator, photos: list[np.ndarray], side: int, tiles: int) -> tuple[np.ndarray, np.ndarray]:
    """(side, side, 3) uint8 image and its (tiles, tiles) map of which photo fills each tile.

    Tiles come from the central half of each photo (its subject: the cup, the cat's face), so
    that every tile of a photo shows the same thing and no tile of one photo looks like the other.
    """
    tile = side // tiles
    layout = rng.integers(0, len(photos), size=(tiles, tiles))
    layout.flat[: len(photos)] = rng.permutation(len(photos))  # every image shows every photo
    image = np.zeros((side, side, 3), dtype=np.uint8)
    for (row, col), which in np.ndenumerate(layout):
        source = photos[which]
        height, width = source.shape[:2]
        top = rng.integers(height // 4, max(height // 4 + 1, 3 * height // 4 - tile))
        left = rng.integers(width // 4, max(width // 4 + 1, 3 * width // 4 - tile))
        patch = source[top : top + tile, left : left + tile]
        image[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile] = patch
    return image, layout


def make_folder(root: Path, counts: dict[str, int], side: int, tiles: int = 2, seed: int = 0,
                pair: tuple[str, str] = PAIR) -> dict[str, np.ndarray]:
    """Write root/<wnid>/<i>.png for each class; returns file (relative to root) -> tile map."""
    rng = np.random.default_rng(seed)
    photos = [np.asarray(Image.fromarray(photo(name)).convert("RGB")) for name in pair]
    layouts = {}
    for wnid, count in counts.items():
        (root / wnid).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, layout = tiled(rng, photos, side, tiles)
            Image.fromarray(image).save(root / wnid / f"{i:03d}.png")
            layouts[f"{wnid}/{i:03d}.png"] = layout
    return layouts


def fraction(layout: np.ndarray, side: int, box: tuple[int, int, int, int]) -> float:
    """How much of a (left, top, right, bottom) box of an image with this tile map shows the second photo."""
    tile = side // layout.shape[0]
    pixels = np.kron(layout, np.ones((tile, tile), dtype=int))
    left, top, right, bottom = box
    return float(pixels[top:bottom, left:right].mean())


def majority(layout: np.ndarray, side: int, box: tuple[int, int, int, int]) -> int:
    """The photo that fills most of a box."""
    return int(fraction(layout, side, box) > 0.5)
