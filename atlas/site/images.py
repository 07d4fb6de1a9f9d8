"""Image derivatives: WebP thumbnails and detail images, plain and overlay, plus the PNG download.

Each entry's files live in a folder named by a hash of its sources (see `Media`), so a
folder that is complete is up to date and is skipped: rebuilding after a few more renders
touches only the new entries.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from atlas.atomic import atomic_write
from atlas.cache import entry_bytes
from atlas.concepts.store import verified_crop
from atlas.display import overlay_rgba
from atlas.errors import AtlasError
from atlas.record import ATTRIBUTION, IMAGE
from atlas.safe_paths import UnsafeName, read_entry_file
from atlas.site.cache_reader import Entry
from atlas.site.pages import Media, Render

THUMB_QUALITY = 80
DETAIL_QUALITY = 82


def derive_all(renders: Iterable[Render], out: Path, *, workers: int | None = None,
               progress: Callable[[str], None] | None = None, failed: dict[Path, str] | None = None) -> list[str]:
    """Write the missing media of every rendered entry under `out`; returns the site paths written.

    With `failed`, an entry whose files cannot be read or do not match its record is noted
    there (folder -> reason) and skipped, instead of raising.
    """
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
        written = list(pool.map(lambda r: _derive_or_note(r, out, failed), todo))
    return [path for paths in written for path in paths]


def copy_crops(crops: dict[str, Path], out: Path, sha256: Mapping[Path, str],
               failed: dict[Path, str] | None = None) -> list[str]:
    """Copy the crops (site path -> cache file) that the site lacks; returns the site paths written.
    Their names are their content's hash, so a crop already there is the same crop.

    Each is checked against its sha256 in its bank or example set (`sha256`: cache file -> hash)
    and read without following a link. An entry folder with any crop that fails is noted in
    `failed` (folder -> reason) and none of its crops is copied; without `failed`, it raises.
    A full concept atlas has 100,000 crops, so the site's crop folders are listed once rather than
    asked file by file."""
    present = _in_site(out, crops)
    todo: dict[Path, list[tuple[str, Path]]] = {}
    for rel, source in sorted(crops.items()):
        if rel not in present:
            todo.setdefault(source.parent, []).append((rel, source))
    written = []
    for folder, items in todo.items():
        try:
            data = {rel: verified_crop(source, sha256.get(source)) for rel, source in items}
        except AtlasError as exc:
            if failed is None:
                raise
            failed[folder] = str(exc)
            continue
        for rel, content in data.items():
            atomic_write(out / rel, content, durable=False)
            written.append(rel)
    return written


def copy_thumbnails(thumbnails: dict[str, Path], out: Path, sha256: Mapping[Path, str],
                    failed: dict[str, str]) -> list[str]:
    """Copy the source thumbnails of dataset examples (site path -> cache file) that the site lacks;
    returns the site paths written. Each is checked as a crop is (its sha256 in its example set, read
    without following a link) and must be an image; one that fails is noted in `failed` (site path ->
    reason, naming its entry folder) and not copied, and its examples are shown without it: a
    thumbnail only says where an example comes from, so it costs no example its place."""
    present = _in_site(out, thumbnails)
    written = []
    for rel, source in sorted(thumbnails.items()):
        if rel in present:
            continue
        data, problem = _checked_thumbnail(source, sha256.get(source))
        if problem is not None:
            failed[rel] = (f"{source.parent}: source thumbnail {problem}; its examples are shown without it "
                           "(delete that folder and run `atlas concepts` again to rewrite it)")
            continue
        atomic_write(out / rel, data, durable=False)
        written.append(rel)
    return written


def _checked_thumbnail(source: Path, sha256: str | None) -> tuple[bytes, str | None]:
    """(its bytes, None), or (b"", why not): read without following a link, of its sha256, an image."""
    try:
        data = read_entry_file(source.parent, source.name)
    except UnsafeName as exc:
        return b"", str(exc)
    if sha256 is None:
        return b"", f"{source.name} is not listed in its example set's files"
    if hashlib.sha256(data).hexdigest() != sha256:
        return b"", f"{source.name} does not match its sha256"
    try:
        Image.open(io.BytesIO(data)).close()  # the header parses: an image a browser can show
    except (OSError, ValueError, Image.DecompressionBombError):
        return b"", f"{source.name} is not a readable image"
    return data, None


def _in_site(out: Path, paths: Iterable[str]) -> set[str]:
    """Which of the site paths `paths` are files in `out` already, each of their folders listed once
    (a full concept atlas has 100,000 crops), the folders made when missing."""
    present: set[str] = set()
    for folder in {posixpath.dirname(rel) for rel in paths}:
        (out / folder).mkdir(parents=True, exist_ok=True)
        with os.scandir(out / folder) as listing:
            present |= {posixpath.join(folder, e.name) for e in listing if e.is_file(follow_symlinks=False)}
    return present


def _derive_or_note(render: Render, out: Path, failed: dict[Path, str] | None) -> list[str]:
    try:
        return derive(render.entry, render.media, out)
    except (AtlasError, OSError) as exc:
        # AtlasError is the entry's fault (hash, sizes); an OSError is, only when reading the
        # entry: one while writing the site (full disk, read-only) must stop the build.
        source = isinstance(exc, AtlasError) or str(exc.filename or "").startswith(str(render.entry.folder))
        if failed is None or not source:
            raise
        failed[render.entry.folder] = str(exc) if isinstance(exc, AtlasError) else f"unreadable ({exc.strerror})"
        return []


def derive(entry: Entry, media: Media, out: Path) -> list[str]:
    """Write `media`'s missing files for `entry`; returns the site paths written."""
    image_bytes = entry_bytes(entry.folder, IMAGE, entry.image_sha256)
    webps = (media.thumb, media.thumb_overlay, media.detail, media.detail_overlay)
    if all((out / f).is_file() for f in webps):  # only the PNG download is new
        assert media.png is not None
        atomic_write(out / media.png, image_bytes, durable=False)
        return [media.png]
    attribution_bytes = entry_bytes(entry.folder, ATTRIBUTION, entry.attribution_sha256)
    try:
        with Image.open(io.BytesIO(image_bytes)) as im:
            rgb = np.asarray(im.convert("RGB"))
        attribution = np.load(io.BytesIO(attribution_bytes), allow_pickle=False)
        rgba = overlay_rgba(rgb, attribution)
    except (AtlasError, OSError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        # the entry's own bytes, whatever they hold (a hash says only that they were not changed since)
        raise AtlasError(f"cache entry {entry.folder}: cannot read its picture ({exc}); "
                         "delete the entry and re-render it") from exc
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
        atomic_write(out / path, files[path], durable=False)
    return sorted(files)


def _webp(image: Image.Image, size: tuple[int, int], quality: int) -> bytes:
    if image.size != size:
        # premultiplied while resampling, so transparent pixels' colours do not bleed into opaque ones
        mode = image.mode
        image = image.convert("RGBa" if mode == "RGBA" else mode).resize(size, Image.Resampling.LANCZOS).convert(mode)
    buf = io.BytesIO()
    image.save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()
