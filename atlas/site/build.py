"""`build()`: render cache -> static site, told as a story (after mkdocs).

Read the cache, gather every page first so that all pages see the same data, derive the
images that are missing, render and write the files that changed, remove what no longer
belongs, then check the result. Neither torch nor timm is imported anywhere on this path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from atlas.errors import AtlasError
from atlas.record import IMAGE
from atlas.site.check import DEFAULT_BUDGET, Budget, SiteReport, check_site
from atlas.site.gather import gather
from atlas.site.images import derive_all
from atlas.site.pages import Site
from atlas.site.records import read_cache
from atlas.site.write import render_site, write_changed

# A folder holding this file was built by atlas, so stale files in it may be removed.
MARKER = "data/manifest.json"


@dataclass
class BuildReport:
    out: Path
    model: str
    pages: int
    written: list[str] = field(default_factory=list)  # site paths whose content changed
    images_written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # cache entries not shown, by reason
    problems: list[str] = field(default_factory=list)  # invalid cache entries, one line each
    notes: list[str] = field(default_factory=list)  # decisions the build took that a user should know
    png: bool = True  # whether the site holds the full-size PNG downloads
    check: SiteReport | None = None


def build(cache: Path, out: Path, *, model: str | None = None, png: bool | None = None, workers: int | None = None,
          budget: Budget = DEFAULT_BUDGET, progress: Callable[[str], None] | None = None) -> BuildReport:
    """Build (or update) the static site for `model` from `cache` into `out`, then check it.

    `png`: copy the full-size PNGs as downloads (True), leave them out (False), or (None)
    copy them when the site still fits its size budget with them: at a 512 px canvas they
    are about three quarters of a full atlas. Raises AtlasError when the cache cannot be
    read or the built site fails its checks.
    """
    cache, out = Path(cache), Path(out)
    say = progress or (lambda _msg: None)
    _check_out(out)

    contents = read_cache(cache, model)
    site: Site = gather(contents, with_png=bool(png))
    say(f"{contents.model.name}: {len(site.pages)} pages, {len(site.renders)} renders")

    images = derive_all(site.renders, out, workers=workers, progress=say)
    files = render_site(site)
    notes = []
    if png is None:
        fits, note = _pngs_fit(site, files, out, budget)
        if fits:
            site = gather(contents, with_png=True)
            images += derive_all(site.renders, out, workers=workers)  # copies only the PNGs
            files = render_site(site)
        else:
            notes.append(note)
            say(note)
    written = write_changed(out, files)

    keep = set(files) | {f for r in site.renders if r.media for f in r.media.files}
    removed = _remove_stale(out, keep)
    say(f"wrote {len(written)} files and {len(images)} images, removed {len(removed)}")

    report = BuildReport(out=out, model=contents.model.name, pages=len(site.pages), written=written,
                         images_written=images, removed=removed, skipped=contents.skipped,
                         problems=list(contents.problems), notes=notes, png=site.with_png)
    report.check = check_site(out, budget)
    return report


def _pngs_fit(site: Site, files: dict[str, bytes], out: Path, budget: Budget) -> tuple[bool, str]:
    """Whether the site, measured without its PNG downloads, still fits `budget` with them."""
    media = {r.media.folder: r for r in site.renders if r.media is not None}
    png_bytes = sum(r.entry.record.files[IMAGE].bytes for r in media.values())
    rest = sum(len(data) for data in files.values())
    rest += sum((out / f).stat().st_size for r in media.values() for f in r.media.files)  # webp only here
    if rest + png_bytes <= budget.site_bytes:
        return True, ""
    return False, (
        f"left out the full-size PNG downloads: {png_bytes / 2**20:.0f} MB of PNGs would take the site "
        f"({rest / 2**20:.0f} MB without them) over its {budget.site_bytes / 2**20:.0f} MB budget; "
        "the JSON records and WebP images are still there (--png forces them in)"
    )


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise AtlasError(f"{out} is a file; pass --out with a folder for the site")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise AtlasError(
            f"{out} is not empty and holds no atlas site ({MARKER}); pass --out with an empty or new folder")


def _remove_stale(out: Path, keep: set[str]) -> list[str]:
    """Delete files under `out` that this build did not produce, and folders left empty."""
    removed = []
    for path in sorted(out.rglob("*"), reverse=True):
        rel = path.relative_to(out).as_posix()
        if rel == ".git" or rel.startswith(".git/"):
            continue  # someone's repository inside the site folder is not ours to clean
        if path.is_symlink() or path.is_file():
            if rel not in keep:
                path.unlink()
                removed.append(rel)
        elif path.is_dir() and not any(path.iterdir()):
            os.rmdir(path)
    return sorted(removed)
