"""The rendered chunks of a quality row, kept so that a row cut short resumes where it stopped.

A row at the `atlas` preset on a CPU takes hours (about 2 minutes an image on one thread), longer
than a session may run. Each chunk of pictures is kept as it was judged: 8-bit RGB, with the seconds
its render took, in `<folder>/<key>.npz`. The key is the sha256 of everything the chunk's pictures
depend on (the engine's version, the spectrum, the model's weights, the preset, the classes, the
render options, the device), so a changed setting renders again and never reads another setting's
pictures. A file that does not read back as such a chunk is rendered again and replaced.
"""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atlas.atomic import atomic_write
from atlas.kind import content_key
from atlas.models import LoadedModel
from atlas.presets import Preset
from atlas.settings import ENGINE_VERSION
from atlas.spectrum import spectrum_sha256

FORMAT = 1  # bumped when the file or what the key covers changes


def chunk_key(loaded: LoadedModel, preset: Preset, classes: Sequence[int], device: str, runner: str,
              options: Mapping[str, Any]) -> str:
    """The key of one chunk: the classes rendered together in one call, with everything else they depend on
    (`options` are the render's: objective, parameterisation, seed, precision)."""
    return content_key({
        "format": FORMAT, "engine_version": ENGINE_VERSION, "spectrum_sha256": spectrum_sha256(None),
        "model": loaded.name, "weights_sha256": loaded.weights_sha256,
        "preset": preset.to_dict(), "classes": [int(c) for c in classes], "device": torch.device(device).type,
        "runner": runner, "options": dict(options),
    })


def save_chunk(folder: Path, key: str, images: torch.Tensor, seconds: float) -> None:
    """Keep `images` (N x 3 x H x W in [0, 1], as rendered) at 8 bits, and their render time."""
    pixels = (images.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    np.savez(buffer, images=pixels, seconds=np.float64(seconds))
    atomic_write(folder / f"{key}.npz", buffer.getvalue(), durable=False)


def load_chunk(folder: Path, key: str, count: int, canvas: int) -> tuple[torch.Tensor, float] | None:
    """The chunk `key` as (images in [0, 1], seconds), or None when it was never kept or does not read back as
    `count` pictures of `canvas` pixels (then it is rendered again)."""
    path = folder / f"{key}.npz"
    if not path.is_file() or path.is_symlink():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            pixels, seconds = data["images"], float(data["seconds"])
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        print(f"bench: {path} does not read back ({exc}); rendering its chunk again", file=sys.stderr)
        return None
    if pixels.dtype != np.uint8 or pixels.shape != (count, 3, canvas, canvas) or not np.isfinite(seconds) \
            or seconds < 0:
        print(f"bench: {path} is not {count} pictures of {canvas} px; rendering its chunk again", file=sys.stderr)
        return None
    return torch.from_numpy(pixels).float() / 255, seconds
