"""`build()`: render cache -> static site, told as a story (after mkdocs).

Read the cache, gather every page first so that all pages see the same data, derive the
images that are missing, render and write the files that changed, remove what no longer
belongs, then check the result. Neither torch nor timm is imported anywhere on this path.

Ownership: the output folder's `.atlas-site.json` lists every file atlas wrote there. A build
writes it before anything else (listing what it is about to write as well as what the last
build wrote) and again when done, so that an interrupted build leaves a folder the next build
accepts and finishes, and a build removes only files listed there: a CNAME, robots.txt or any
other file a user adds is never touched. A folder with files but no marker is refused.

Every write stays inside the output folder: before writing anything, the build checks each path
it is about to write and refuses the build when one passes through a symbolic link (a folder of
the site replaced by a link would send the write wherever it points), naming the link and
leaving it alone. Crops are copied only after their sha256 matches their bank's.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import posixpath
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from atlas import __version__, judgment, store
from atlas.atomic import atomic_write, is_temporary
from atlas.concepts.store import entry_folder
from atlas.errors import AtlasError
from atlas.record import IMAGE
from atlas.safe_paths import unsafe_destinations
from atlas.site.cache_reader import BadEntry, CacheContents, list_models, read_cache
from atlas.site.check import DEFAULT_BUDGET, Budget, SiteReport, check_site
from atlas.site.compare import index_judgments
from atlas.site.gather import gather
from atlas.site.images import copy_crops, copy_thumbnails, derive_all
from atlas.site.pages import Site
from atlas.site.roster import Roster, model_folder
from atlas.site.write import environment, png_paths, render_site, site_paths, write_changed

# The ownership record: which files of the output folder atlas wrote, and whether the build finished.
MARKER = ".atlas-site.json"


@dataclass
class BuildReport:
    out: Path
    model: str  # the default model (the first); every model built: `models`
    pages: int
    written: list[str] = field(default_factory=list)  # site paths whose content changed
    images_written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # cache entries not shown, by reason
    problems: list[str] = field(default_factory=list)  # invalid cache entries, one line each
    notes: list[str] = field(default_factory=list)  # decisions the build took that a user should know
    png: bool = True  # whether the site holds the full-size PNG downloads
    check: SiteReport | None = None
    models: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SiteMarker:
    """What `.atlas-site.json` says: the files atlas wrote, and whether that build finished."""

    files: frozenset[str]
    complete: bool


def build(cache: Path, out: Path, *, model: str | Sequence[str] | None = None, order: Sequence[str] = (),
          png: bool | None = None, workers: int | None = None, budget: Budget = DEFAULT_BUDGET,
          progress: Callable[[str], None] | None = None) -> BuildReport:
    """Build (or update) the static site of every model in `cache` (or those named by `model`) into
    `out`, each model in its own folder, then check it.

    `order`: model names to put first, in this order (atlas.toml's `models`: the first is the
    default); the others follow by name. `png`: copy the full-size PNGs as downloads (True), leave
    them out (False), or (None) copy them when the site still fits its size budget with them: at a
    512 px canvas they are about three quarters of a full atlas. Raises AtlasError when the cache
    cannot be read, the output folder is not atlas's or cannot be written, or the built site fails
    its checks. A cache entry whose files do not match its record is skipped and reported; a dataset
    example's source thumbnail that fails its checks is left out, its example shown without it, with a
    warning (UserWarning) naming its entry folder.
    """
    cache, out = Path(cache), Path(out)
    say = progress or (lambda _msg: None)
    if workers is not None and workers < 1:
        raise AtlasError(f"--workers must be at least 1, got {workers} (leave it out for one per CPU, at most 8)")
    previous = claim(out)

    every = [read_cache(cache, name) for name in pick_models(cache, model, order)]
    folders: dict[str, str] = {}
    for contents in every:  # one model's pages would overwrite the other's
        name = contents.model.name
        if folders.setdefault(model_folder(name), name) != name:
            raise AtlasError(f"models {folders[model_folder(name)]!r} and {name!r} would share the site folder "
                             f"{model_folder(name)!r}: rename one of them")
    for contents in every:
        for note in contents.notes:
            say(note)
    pairs = [_gathered(contents, bool(png)) for contents in every]
    every = [contents for contents, _ in pairs]
    misjudged: list[str] = []  # a judgment that does not read: skipped like any invalid entry, judged again
    roster = Roster([site for _, site in pairs], index_judgments(store.entries(cache, judgment.KIND.name, misjudged)))
    for site in roster.sites:
        say(f"{site.model.name}: {len(site.pages)} pages, {len(site.renders)} renders")
    try:
        report = _write(every, roster, out, previous, png, workers, budget, say)
    except OSError as exc:
        raise _write_error(exc, out) from exc
    report.problems += misjudged
    return report


def pick_models(cache: Path, model: str | Sequence[str] | None, order: Sequence[str] = ()) -> list[str]:
    """The names of the models to build: `model` (one or several), else every model of the cache,
    those of `order` first."""
    if model is not None:
        return [model] if isinstance(model, str) else list(dict.fromkeys(model))
    found = list(list_models(cache)) if Path(cache).is_dir() else []
    first = [name for name in order if name in found]
    return first + sorted(name for name in found if name not in first) or [None]


def _gathered(contents: CacheContents, with_png: bool) -> tuple[CacheContents, Site]:
    """`contents` (less any example set whose crop is no image) and its model's pages, in its folder."""
    dropped: set[Path] = set()
    while True:
        try:
            return contents, gather(contents, with_png=with_png, prefix=f"{model_folder(contents.model.name)}/")
        except BadEntry as exc:  # a crop that is no image: its example set is skipped like any invalid entry
            if exc.folder in dropped:
                raise
            dropped.add(exc.folder)
            contents = _without(contents, {exc.folder: exc.reason})


def _write(every: list[CacheContents], roster: Roster, out: Path, previous: SiteMarker | None, png: bool | None,
           workers: int | None, budget: Budget, say: Callable[[str], None]) -> BuildReport:
    env = environment()
    owned = previous.files if previous else frozenset()
    writes = site_paths(roster) | _media_paths(roster, with_png=True)
    _refuse_links(out, writes | {MARKER})
    # Claim every path this build may write before writing any, so a kill at any moment
    # leaves a folder whose atlas files are all listed.
    write_marker(out, SiteMarker(owned | writes, complete=False))
    if previous is not None and not previous.complete:
        _sweep_temporaries(out)

    corrupt: dict[Path, str] = {}
    images = derive_all(roster.renders, out, workers=workers, progress=say, failed=corrupt)
    crop_sha256 = {path: sha for contents in every for path, sha in contents.crop_sha256().items()}
    images += copy_crops(roster.crops, out, crop_sha256, failed=corrupt)
    if corrupt:  # shown as not rendered (a bank or example set: as not computed), like any other invalid entry
        every = [_without(contents, corrupt) for contents in every]
        roster = Roster([gather(contents, with_png=roster.with_png, prefix=site.prefix)
                         for contents, site in zip(every, roster.sites, strict=True)], roster.judged)
        # a crop whose name (its content's hash) a skipped entry shared with a good one: now from the good one
        crop_sha256 = {path: sha for contents in every for path, sha in contents.crop_sha256().items()}
        images += copy_crops(roster.crops, out, crop_sha256)
    unshown: dict[str, str] = {}  # source thumbnails that failed their checks: their examples go without them
    images += copy_thumbnails(roster.thumbnails, out, crop_sha256, unshown)
    roster.drop_thumbnails(unshown)
    for why in unshown.values():
        warnings.warn(why, stacklevel=2)
    files = render_site(roster, env)  # the whole site, once
    notes = [note for contents in every for note in contents.notes]
    if png is None:
        # measured with the pages that link the PNGs: their links are bytes of the site too
        roster.include_pngs()
        with_pngs = files | render_site(roster, env, only=png_paths(roster))
        fits, note = _pngs_fit(roster, with_pngs, out, budget)
        if fits:
            files = with_pngs
            images += derive_all(roster.renders, out, workers=workers)  # copies only the PNGs
        else:
            roster.include_pngs(False)
            notes.append(note)
            say(note)
    written = write_changed(out, files)

    keep = set(files) | _media_paths(roster, with_png=roster.with_png)
    removed = _remove_owned(out, owned - keep)
    write_marker(out, SiteMarker(frozenset(keep), complete=True))
    say(f"wrote {len(written)} files and {len(images)} images, removed {len(removed)}")

    names = [site.model.name for site in roster.sites]
    report = BuildReport(out=out, model=names[0], pages=len(roster.pages), written=written,
                         images_written=images, removed=removed, skipped=_skipped(every),
                         problems=list(dict.fromkeys(p for contents in every for p in contents.problems)),
                         notes=list(dict.fromkeys(notes)), png=roster.with_png, models=names)
    report.check = check_site(out, budget)
    return report


def _skipped(every: list[CacheContents]) -> dict[str, int]:
    """The cache entries no model of the site shows, by reason. Every model's reader counts the
    entries that are no entry (unfinished, invalid) alike; an entry of another built model is not skipped."""
    skipped = Counter(every[0].skipped)
    skipped["other model"] -= sum(len(c.entries) + len(c.concept_entries) + c.skipped.get("other weights", 0)
                                  for c in every[1:])
    return {reason: n for reason, n in skipped.items() if n > 0}


def _media_paths(site: Site | Roster, *, with_png: bool) -> set[str]:
    media = {f for r in site.renders if r.media for f in dataclasses.replace(r.media, with_png=with_png).files}
    return media | set(site.crops) | set(site.thumbnails)


def _refuse_links(out: Path, paths: set[str]) -> None:
    """Raise, before anything is written, when a path the build would write is not plainly inside `out`."""
    refused = unsafe_destinations(out, sorted(paths))
    if refused:
        more = f" (and {len(refused) - 1} more paths)" if len(refused) > 1 else ""
        raise AtlasError(f"{next(iter(refused.values()))}{more}: nothing was written; remove the link "
                         f"from {out} (atlas leaves it alone) or build into another --out")


def _without(contents: CacheContents, corrupt: dict[Path, str]) -> CacheContents:
    """`contents` less the entries (renders, banks, example sets) whose files turned out not to match their records."""
    skipped = Counter(contents.skipped)
    skipped["invalid"] += len(corrupt)
    root = contents.root
    banks = {k: b for k, b in contents.banks.items() if root is None or entry_folder(root, b) not in corrupt}
    return dataclasses.replace(
        contents,
        entries=tuple(e for e in contents.entries if e.folder not in corrupt),
        concept_entries=tuple(e for e in contents.concept_entries if e.folder not in corrupt),
        banks=banks,
        # no similar-concept link to, or from, a class whose bank is gone
        similar={(index, position): tuple(s for s in near if s.class_index in banks)
                 for (index, position), near in contents.similar.items() if index in banks},
        examples={k: x for k, x in contents.examples.items() if root is None or entry_folder(root, x) not in corrupt},
        skipped=dict(skipped),
        problems=(*contents.problems, *(f"{folder}: {why}" for folder, why in sorted(corrupt.items()))),
    )


def _pngs_fit(site: Site | Roster, files: dict[str, bytes], out: Path, budget: Budget) -> tuple[bool, str]:
    """Whether the site fits `budget` with its PNG downloads: `files` are the pages that link them."""
    renders = {r.media.folder: r for r in site.renders if r.media is not None}  # one per media folder
    png_bytes = sum(r.entry.record.files[IMAGE].bytes for r in renders.values())
    rest = sum(len(data) for data in files.values())
    webp = (f for r in renders.values() for f in dataclasses.replace(r.media, with_png=False).files)
    rest += sum((out / f).stat().st_size for f in webp)  # derived already; the PNGs are not copied yet
    rest += sum(path.stat().st_size for path in site.crops.values())  # copied after this measure
    rest += sum((out / rel).stat().st_size for rel in site.thumbnails)  # copied, those that passed their checks
    rest += (out / MARKER).stat().st_size  # listing every path this build may write: at least the final one
    if rest + png_bytes <= budget.site_bytes:
        return True, ""
    return False, (
        f"left out the full-size PNG downloads: {png_bytes / 2**20:.0f} MB of PNGs would take the site "
        f"({rest / 2**20:.0f} MB without them) over its {budget.site_bytes / 2**20:.0f} MB budget; "
        "the JSON records and WebP images are still there (--png forces them in)"
    )


def claim(out: Path) -> SiteMarker | None:
    """The marker of `out`, None for a missing or empty folder. Raises AtlasError when `out`
    holds files but no marker (atlas did not make it), or the marker is damaged."""
    if out.exists() and not out.is_dir():
        raise AtlasError(f"{out} is a file; pass --out with a folder for the site")
    marker = read_marker(out)
    if marker is None and out.is_dir() and any(not is_temporary(p.name) for p in out.iterdir()):
        raise AtlasError(
            f"{out} is not empty and holds no atlas site (no {MARKER}), so atlas will not write or delete "
            f"anything in it: pass --out with an empty or new folder (a site built by an older atlas: delete it first)"
        )
    return marker


def read_marker(out: Path) -> SiteMarker | None:
    """What `out`'s marker says, None when it has none; raises AtlasError when it is damaged."""
    path = out / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, list) or not all(isinstance(f, str) and _owned_path(f) for f in files):
            raise ValueError("'files' must list relative paths inside the folder")
        return SiteMarker(frozenset(files), bool(data.get("complete")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AtlasError(
            f"{path} is damaged ({exc}), so atlas cannot tell its files from yours: move your own files "
            f"(CNAME, ...) out of {out}, delete it and build again"
        ) from exc


def write_marker(out: Path, marker: SiteMarker) -> None:
    data = {"generator": "atlas", "version": __version__, "complete": marker.complete, "files": sorted(marker.files)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / MARKER, (json.dumps(data, indent=0) + "\n").encode())


def _owned_path(rel: str) -> bool:
    """Whether a marker may list `rel`: a plain relative path inside the folder, never .git or the marker."""
    norm = posixpath.normpath(rel)
    parts = norm.split("/")
    return bool(rel) and norm == rel and not rel.startswith("/") and ".." not in parts and ".git" not in parts \
        and rel != MARKER


def _remove_owned(out: Path, paths: set[str] | frozenset[str]) -> list[str]:
    """Delete these files (atlas's, from the last build) and the folders they leave empty."""
    removed = []
    root = out.resolve()
    for rel in sorted(paths):
        path = out / rel
        if not (path.is_symlink() or path.is_file()) or not path.parent.resolve().is_relative_to(root):
            continue  # gone already, or a folder on the way was replaced by a link to elsewhere
        path.unlink()
        removed.append(rel)
        folder = path.parent
        while folder != out:
            try:
                folder.rmdir()
            except OSError:  # not empty: a user's file, or atlas files still in use
                break
            folder = folder.parent
    return removed


def _sweep_temporaries(out: Path) -> None:
    """Remove the temporaries of a build that was killed mid-write (atlas's names only)."""
    for folder, dirs, names in os.walk(out):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            if is_temporary(name):
                Path(folder, name).unlink(missing_ok=True)


def _write_error(exc: OSError, out: Path) -> AtlasError:
    where = exc.filename or out
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return AtlasError(f"disk full while writing {where}; free some space and run `atlas build` again (it resumes)")
    return AtlasError(
        f"cannot write {where} ({exc.strerror or exc}); make {out} writable or pick another folder with --out")
