"""The user's images: one subfolder per class, named by the class (its name, or its WordNet id
where the model's classes have them, as ImageNet's train/val folders are).

    DIR/n01440764/*.JPEG   DIR/n01443537/*.png   ...      DIR/daisy/*.jpg   DIR/rose/*.jpg   ...

Scanning is cheap (names and stat only) and decides everything a run depends on: which
classes, which files (a deterministic sample of at most `per_class` a class), and a content
fingerprint of that choice (names, sizes, mtimes) for cache keys. Reading happens later, one
image at a time: EXIF orientation applied, any mode (grayscale, CMYK, palette, alpha) made
RGB; a file that cannot be decoded, or whose size or shape is past atlas.image_limits, is
skipped and counted, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from atlas.errors import AtlasError
from atlas.image_limits import size_problem
from atlas.labels import no_class_folder

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".webp")
READ_THREADS = min(8, os.cpu_count() or 1)


@dataclass(frozen=True)
class ClassImages:
    """One class's sample: files relative to the folder root, in name order."""

    index: int
    wnid: str
    files: tuple[str, ...]
    found: int  # image files in the class folder, before the cap
    fingerprint: str


@dataclass(frozen=True)
class ImageFolder:
    root: Path
    classes: tuple[ClassImages, ...]
    not_images: int  # files skipped by their name: no image suffix

    @property
    def images(self) -> int:
        return sum(len(c.files) for c in self.classes)

    @property
    def fingerprint(self) -> str:
        """One hash for the whole selection (every class's fingerprint, in class order)."""
        return _sha256([[c.wnid, c.fingerprint] for c in self.classes])


@dataclass(frozen=True)
class Placement:
    """How a source image maps onto the model's square input: scaled by `scale`, then cropped at (left, top)."""

    scale: float
    left: int
    top: int
    size: tuple[int, int] = (0, 0)  # the source image's (width, height), so a page can place a box on it

    def source_box(self, left: int, top: int, side: int) -> tuple[int, int, int, int]:
        """A square (left, top, side) of the model input as (left, top, right, bottom) in source pixels."""
        return (
            int((left + self.left) / self.scale),
            int((top + self.top) / self.scale),
            int(round((left + side + self.left) / self.scale)),
            int(round((top + side + self.top) / self.scale)),
        )


def _sha256(value: object) -> str:
    return hashlib.sha256(json.dumps(value, separators=(",", ":")).encode()).hexdigest()


def _sample(names: list[str], per_class: int | None, wnid: str) -> list[str]:
    """At most `per_class` names, chosen by a hash of the class and name: stable across runs and machines,
    unbiased by naming order, and adding files to a folder keeps most of the earlier sample."""
    if per_class is None or len(names) <= per_class:
        return sorted(names)
    ranked = sorted(names, key=lambda n: hashlib.sha256(f"{wnid}/{n}".encode()).hexdigest())
    return sorted(ranked[:per_class])


def scan(root: str | Path, folders: Mapping[str, int], per_class: int | None = None,
         classes: Iterable[int] | None = None) -> ImageFolder:
    """The classes and files of an image folder; `classes` (indices) keeps only those.

    `folders` maps folder names to class indices (`atlas.labels.folder_classes`: by class name or
    WordNet id); a folder named otherwise is an error (hidden entries, such as .DS_Store or
    .ipynb_checkpoints, are ignored).
    """
    root = Path(root)
    if not root.is_dir():
        raise AtlasError(
            f"image folder {root} does not exist: pass --images DIR with one subfolder per class (DIR/n01440764/...)")
    if per_class is not None and per_class < 1:
        raise AtlasError(f"images per class must be at least 1, not {per_class}")
    wanted = None if classes is None else set(classes)
    found: list[tuple[int, Path]] = []
    not_images = 0
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            not_images += 1
            continue
        if entry.name not in folders:
            raise AtlasError(f"folder {entry} is not named by a class of the model (its name, or a WordNet id like "
                             f"n01440764): rename or move it out of {root}")
        found.append((folders[entry.name], entry))
    present = {index for index, _ in found}
    if wanted is not None and wanted - present:
        missing = min(wanted - present)
        name = next((w for w, i in folders.items() if i == missing), None)
        where = root / name if name else f"in {root}"
        raise AtlasError(f"class {missing} has no folder {where}: add it, or leave it out of --classes")
    result = []
    for index, folder in sorted(found):
        if wanted is not None and index not in wanted:
            continue
        names = []
        for file in folder.rglob("*"):
            if file.name.startswith(".") or not file.is_file():
                continue
            if file.suffix.lower() in IMAGE_SUFFIXES:
                names.append(file.relative_to(folder).as_posix())
            else:
                not_images += 1
        chosen = _sample(names, per_class, folder.name)
        files = tuple(f"{folder.name}/{name}" for name in chosen)
        stats = [(f, (root / f).stat()) for f in files]
        fingerprint = _sha256([[f, s.st_size, s.st_mtime_ns] for f, s in stats])
        result.append(ClassImages(index, folder.name, files, len(names), fingerprint))
    if not result:
        raise no_class_folder(root)
    return ImageFolder(root, tuple(result), not_images)


def read_rgb(path: str | Path) -> Image.Image | None:
    """The image upright (EXIF orientation) and in RGB, or None when it cannot be decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about odd EXIF and palette transparency; the pixels are fine
            with Image.open(path) as opened:
                if size_problem(opened.size):  # before decoding: a strip or a bomb is skipped like a bad file
                    return None
                opened.load()
                return ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def fit_square(image: Image.Image, side: int) -> tuple[np.ndarray, Placement]:
    """(side, side, 3) uint8: the shorter side resized to `side`, centre-cropped, as models are evaluated."""
    scale = side / min(image.size)
    width, height = max(side, round(image.width * scale)), max(side, round(image.height * scale))
    resized = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - side) // 2, (height - side) // 2
    square = np.asarray(resized.crop((left, top, left + side, top + side)), dtype=np.uint8)
    return square, Placement(scale, left, top, image.size)


@dataclass(frozen=True)
class Squares:
    """Images read and fitted to the model's input: pixels (n, S, S, 3) uint8, where each came from."""

    pixels: np.ndarray
    files: tuple[str, ...]
    placements: tuple[Placement, ...]
    skipped: tuple[str, ...]  # files that could not be decoded


def _read_square(path: Path, side: int) -> tuple[np.ndarray, Placement] | None:
    image = read_rgb(path)
    return None if image is None else fit_square(image, side)


def load_squares(root: str | Path, files: Iterable[str], side: int) -> Squares:
    """Read `files` (relative to `root`) as model-input squares; undecodable files are skipped and listed.

    Decoding and resizing run on a few threads (Pillow releases the GIL there): on a GPU box
    reading on one thread was a quarter of the concept pass (docs/benchmarks.md)."""
    files = list(files)
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        read = list(pool.map(lambda file: _read_square(Path(root) / file, side), files))
    pixels, kept, placements, skipped = [], [], [], []
    for file, result in zip(files, read, strict=True):
        if result is None:
            skipped.append(file)
            continue
        pixels.append(result[0])
        kept.append(file)
        placements.append(result[1])
    array = np.stack(pixels) if pixels else np.zeros((0, side, side, 3), dtype=np.uint8)
    return Squares(array, tuple(kept), tuple(placements), tuple(skipped))


class SourceCrops:
    """Crops cut from the source images at their own resolution and resized to `side` px.

    A patch is a few dozen pixels of the model's input; cutting it again from the source image
    gives a crop a page can show at `side` px without upscaling the input's pixels. A few
    recently opened images are kept, since a class's crops come from few images."""

    def __init__(self, root: str | Path, side: int, keep: int = 32):
        self.root, self.side, self.keep = Path(root), side, keep
        self._open: dict[str, Image.Image | None] = {}

    def cut(self, file: str, box: tuple[int, int, int, int], fallback: np.ndarray) -> np.ndarray:
        """(side, side, 3) uint8 of `box` in `file`; from `fallback` (the input's pixels) when the file
        no longer reads."""
        image = self._image(file)
        region = Image.fromarray(np.ascontiguousarray(fallback, dtype=np.uint8)) if image is None else image.crop(box)
        resized = region.resize((self.side, self.side), Image.Resampling.LANCZOS)
        return np.asarray(resized, dtype=np.uint8)

    def whole(self, file: str, side: int) -> np.ndarray | None:
        """(h, w, 3) uint8 of the whole of `file`, its longest side shrunk to `side` (never enlarged);
        None when the file no longer reads (the input's square would misplace a box given in source pixels)."""
        image = self._image(file)
        if image is None:
            return None
        scale = min(1.0, side / max(image.size))
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return np.asarray(image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), dtype=np.uint8)

    def _image(self, file: str) -> Image.Image | None:
        if file not in self._open:
            if len(self._open) >= self.keep:
                self._open.pop(next(iter(self._open)))
            self._open[file] = read_rgb(self.root / file)
        return self._open[file]
