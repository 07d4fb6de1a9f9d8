"""Magnitude spectra for MACO: the shipped default, user files, resizing, and computing one.

A spectrum is float32 (3, N, N//2+1): the mean |rfft2| per channel of N x N images
that were ImageNet-normalised and colour-decorrelated (pixel rows times inverse(M),
M = atlas.param.COLOR_RECORRELATION). The default is the MACO authors' file, shipped
in atlas/data/ with its MIT notice and checked by SHA-256.
"""

from __future__ import annotations

import hashlib
import io
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from atlas.errors import AtlasError
from atlas.param import COLOR_RECORRELATION

DEFAULT_SPECTRUM_NAME = "maco_imagenet_spectrum_decorrelated.npy"
DEFAULT_SPECTRUM_SHA256 = "a4810ea049ef9a0fe4e3f26660188e53222281879b333e8fd61377f7491aafc8"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm"}


def default_spectrum_path() -> Path:
    return Path(str(resources.files("atlas") / "data" / DEFAULT_SPECTRUM_NAME))


def spectrum_sha256(source: str | Path | np.ndarray | torch.Tensor | None = None) -> str:
    """SHA-256 of a spectrum file's bytes (None: the default), or of an array saved with np.save.

    Both agree for files written by np.save, so a computed spectrum and the file it was
    saved to have the same hash (it goes into cache keys).
    """
    if source is None:
        source = default_spectrum_path()
    if isinstance(source, (str, Path)):
        try:
            return hashlib.sha256(Path(source).read_bytes()).hexdigest()
        except OSError as exc:
            raise AtlasError(f"cannot read spectrum file {source}: {exc.strerror}; check the path") from exc
    array = source.detach().cpu().numpy() if isinstance(source, torch.Tensor) else np.asarray(source)
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32))
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def load_spectrum(path: str | Path | None = None) -> np.ndarray:
    """The default spectrum (hash-checked), or a user .npy of shape (3, N, N//2+1)."""
    if path is None:
        path = default_spectrum_path()
        if spectrum_sha256(path) != DEFAULT_SPECTRUM_SHA256:
            raise AtlasError(f"the packaged spectrum {path} is damaged (SHA-256 mismatch): reinstall atlas")
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise AtlasError(f"spectrum file {path} {what}: create one with `atlas spectrum DIR -o FILE`")
    try:
        spectrum = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise AtlasError(f"cannot read spectrum {path} as a .npy array ({exc}); save it with numpy.save") from exc
    check_spectrum(spectrum, str(path))
    return spectrum.astype(np.float32)


def check_spectrum(spectrum: np.ndarray, what: str = "spectrum") -> None:
    shape = spectrum.shape
    if len(shape) != 3 or shape[0] != 3 or shape[1] < 2 or shape[2] != shape[1] // 2 + 1:
        raise AtlasError(f"{what} has shape {shape}; a spectrum is (3, N, N//2+1), as `atlas spectrum` writes")
    if not np.all(np.isfinite(spectrum)) or np.any(spectrum < 0):
        raise AtlasError(f"{what} holds negative or non-finite magnitudes: recompute it with `atlas spectrum`")


def _power_weights(size: int) -> torch.Tensor:
    """How often each rfft2 column appears in the full spectrum (conjugate symmetry)."""
    weights = torch.full((size // 2 + 1,), 2.0, dtype=torch.float64)
    weights[0] = 1.0
    if size % 2 == 0:
        weights[-1] = 1.0
    return weights


def resize_spectrum(spectrum: np.ndarray | torch.Tensor, size: int) -> np.ndarray:
    """A spectrum for another canvas side: (3, N, N//2+1) -> (3, size, size//2+1), float32.

    The spectrum is a function of frequency in cycles per pixel, so we resample it at
    the new grid's frequencies (fftfreq rows, rfftfreq columns), bilinearly in
    frequency space: the full axis is fftshifted into ascending order and padded by
    one wrapped row at each end, so no interpolation crosses from +1/2 to -1/2 wrongly.
    The reference instead resizes the grid as if it were an image, which blends the
    DC bin (the per-channel mean, ~3x its neighbours) into the lowest frequencies and
    gives large canvases a spurious low-frequency bias. Here the DC bin is first
    replaced by the mean of its neighbours for interpolation, and the DC value is set
    separately, scaled by sqrt(new AC power / old AC power), which keeps each
    channel's pixel mean / pixel std ratio (DC / sqrt(sum of |F|^2 over the rest))
    what the source gives. Resizing to the same size returns the input.
    """
    source = torch.as_tensor(np.asarray(spectrum), dtype=torch.float64)
    check_spectrum(source.numpy())
    n = source.shape[1]
    if size < 2:
        raise AtlasError(f"cannot resize a spectrum to {size} px; use a canvas of at least 2 px")
    if size == n:
        return source.numpy().astype(np.float32)

    filled = source.clone()
    neighbours = torch.stack([source[:, 1, 0], source[:, -1, 0], source[:, 0, 1]])
    filled[:, 0, 0] = neighbours.mean(0)
    shifted = torch.fft.fftshift(filled, dim=1)  # rows now at ascending frequencies
    padded = torch.cat([shifted[:, -1:], shifted, shifted[:, :1]], dim=1)
    first = float(torch.fft.fftshift(torch.fft.fftfreq(n))[0]) - 1.0 / n  # frequency of padded row 0

    fy = torch.fft.fftfreq(size, dtype=torch.float64)
    fx = torch.fft.rfftfreq(size, dtype=torch.float64)
    rows = (fy - first) * n  # fractional row index into `padded`
    cols = fx * n
    grid = torch.stack(
        [
            (cols / (padded.shape[2] - 1) * 2 - 1)[None, :].expand(size, -1),
            (rows / (padded.shape[1] - 1) * 2 - 1)[:, None].expand(-1, fx.shape[0]),
        ],
        dim=-1,
    )
    resized = F.grid_sample(padded[None], grid[None], mode="bilinear", padding_mode="border", align_corners=True)[0]

    def ac_power(spec: torch.Tensor, side: int) -> torch.Tensor:
        power = (spec**2 * _power_weights(side)).sum(dim=(1, 2))
        return power - spec[:, 0, 0] ** 2

    resized[:, 0, 0] = 0.0
    resized[:, 0, 0] = source[:, 0, 0] * torch.sqrt(ac_power(resized, size) / ac_power(source, n))
    return resized.numpy().astype(np.float32)


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise AtlasError(f"{folder} is not a folder: pass a folder of images (jpg, png, ...)")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise AtlasError(f"no images in {folder}: it needs .jpg/.png/... files (subfolders are searched too)")
    return files


def decorrelated_image(path: Path, size: int) -> np.ndarray:
    """(3, size, size) float64: resized (shorter side) and centre-cropped, ImageNet-normalised, decorrelated."""
    from PIL import Image, UnidentifiedImageError

    from atlas.image_limits import size_problem

    try:
        with Image.open(path) as opened:
            problem = size_problem(opened.size)
            image = opened.convert("RGB") if problem is None else None
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        reason = " ".join(str(exc).split())[:100] or exc.__class__.__name__
        raise AtlasError(f"cannot read image {path} ({reason}): remove it from the folder or convert it") from exc
    if image is None:
        raise AtlasError(f"image {path} is not read: {problem}; remove it from the folder or shrink it")
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    rgb = np.asarray(image, dtype=np.float64) / 255.0
    rgb = (rgb - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    decorrelated = rgb.reshape(-1, 3) @ np.linalg.inv(np.array(COLOR_RECORRELATION, dtype=np.float64))
    return decorrelated.reshape(size, size, 3).transpose(2, 0, 1)


def compute_spectrum(folder: str | Path, size: int = 512, progress: bool = True) -> np.ndarray:
    """Mean |rfft2| per decorrelated channel of every image under `folder`: float32 (3, size, size//2+1)."""
    from tqdm import tqdm

    files = _image_files(Path(folder))
    total = np.zeros((3, size, size // 2 + 1), dtype=np.float64)
    for path in tqdm(files, desc="spectrum", unit="image", disable=not progress):
        total += np.abs(np.fft.rfft2(decorrelated_image(path, size)))
    return (total / len(files)).astype(np.float32)
