"""Image derivatives: WebP thumbnails and detail images, plain and overlay, plus the PNG download.

Each entry's files live in a folder named by a hash of its sources (see `Media`), so a
folder that is complete is up to date and is skipped: rebuilding after a few more renders
touches only the new entries.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from atlas.display import overlay_rgba
from atlas.errors import AtlasError
from atlas.site.pages import Media, Render
from atlas.site.records import Entry

THUMB_QUALITY = 80
DETAIL_QUALITY = 82


def derive_all(renders: Iterable[Render], out: Path, *, workers: int | None = None,
               progress: Callable[[str], None] | None = None) -> list[str]:
    """Write the missing media of every rendered entry under `out`; returns the site paths written."""
    # Identical sources share one media folder: derive each folder once.
    unique = {r.media.folder: r for r in renders if r.media is not None}
    todo = [r for r in unique.values() if not all((out / f).is_file() for f in r.media.files)]
    if not todo:
        return []
    if progress:
        progress(f"deriving images for {len(todo)} renders")
    # Pillow releases the GIL while decoding, resizing and encoding, so threads scale.
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        written = list(pool.map(lambda r: derive(r.entry, r.media, out), todo))
    return [path for paths in written for path in paths]


def derive(entry: Entry, media: Media, out: Path) -> list[str]:
    """Write `media`'s missing files for `entry`; returns the site paths written."""
    image_bytes = _verified(entry.image_path, entry.image_sha256)
    webps = (media.thumb, media.thumb_overlay, media.detail, media.detail_overlay)
    if all((out / f).is_file() for f in webps):  # only the PNG download is new
        assert media.png is not None
        write_atomic(out / media.png, image_bytes)
        return [media.png]
    attribution_bytes = _verified(entry.attribution_path, entry.attribution_sha256)
    with Image.open(io.BytesIO(image_bytes)) as im:
        rgb = np.asarray(im.convert("RGB"))
    attribution = np.load(io.BytesIO(attribution_bytes), allow_pickle=False)
    try:
        rgba = overlay_rgba(rgb, attribution)
    except AtlasError as exc:
        raise AtlasError(f"cache entry {entry.folder}: {exc}; delete the entry and re-render it") from exc
    plain = Image.fromarray(rgba[..., :3])
    # The attribution stays an alpha channel, so the overlay fades into the page's own background
    # in either theme, instead of onto white as the reference codes composite it.
    overlay = Image.fromarray(rgba, "RGBA")
    files = {
        media.thumb: _webp(plain, media.thumb_size, THUMB_QUALITY),
        media.thumb_overlay: _webp(overlay, media.thumb_size, THUMB_QUALITY),
        media.detail: _webp(plain, media.detail_size, DETAIL_QUALITY),
        media.detail_overlay: _webp(overlay, media.detail_size, DETAIL_QUALITY),
    }
    if media.png:
        files[media.png] = image_bytes
    for path in sorted(files):
        write_atomic(out / path, files[path])
    return sorted(files)


def _verified(path: Path, sha256: str | None) -> bytes:
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise AtlasError(f"{path} does not match the sha256 in its record: delete the entry and re-render it")
    return data


def _webp(image: Image.Image, size: tuple[int, int], quality: int) -> bytes:
    if image.size != size:
        # premultiplied while resampling, so transparent pixels' colours do not bleed into opaque ones
        mode = image.mode
        image = image.convert("RGBa" if mode == "RGBA" else mode).resize(size, Image.Resampling.LANCZOS).convert(mode)
    buf = io.BytesIO()
    image.save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
