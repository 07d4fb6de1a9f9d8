"""Templates and file writing: the gathered site -> {site path: bytes} -> files that changed.

One Jinja environment, autoescaped, with StrictUndefined so that a missing field fails a
test instead of a page. Writing compares content first, so a rebuild rewrites only what
changed and leaves everything else (and its modification time) alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from pathlib import Path

import jinja2

from atlas import __version__
from atlas.atomic import atomic_write
from atlas.errors import AtlasError
from atlas.site.documents import (
    SEARCH_INDEX_PATH,
    index_document,
    manifest_document,
    search_index_script,
    to_json,
    unit_document,
)
from atlas.site.pages import ClassPage, Page, Site, UnitPage

STATIC_FILES = ("atlas.css", "atlas.js", "favicon.svg")
# Pages load nothing from elsewhere; 'self' covers file:// pages too (tested in Chromium).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'none'; font-src 'none'; object-src 'none'; media-src 'none'; frame-src 'none'; "
    "base-uri 'none'; form-action 'none'"
)


HERE = Path(__file__).resolve().parent


def site_folder(name: str) -> Path:
    """`templates` or `static`: inside the package in an installed wheel (setup.py copies them
    there), at the repository root beside atlas/ in a checkout or an editable install."""
    for folder in (HERE / name, HERE.parents[1] / name):
        if folder.is_dir():
            return folder
    raise AtlasError(f"site {name} not found in {HERE} or {HERE.parents[1]}: reinstall atlas (pip install .)")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(site_folder("templates"))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["pct"] = lambda x: "–" if x is None else f"{100 * float(x):.0f}%"
    env.filters["prob"] = lambda x: f"{100 * float(x):.1f}%"
    env.filters["num"] = lambda x: f"{x:,}"
    env.filters["day"] = lambda iso: iso[:10] if iso else "–"
    env.filters["when"] = lambda iso: iso.replace("T", " ").replace("Z", " UTC") if iso else "–"
    return env


def static_file(name: str) -> bytes:
    return (site_folder("static") / name).read_bytes()


def render_site(site: Site, env: jinja2.Environment | None = None, *,
                only: Collection[str] | None = None) -> dict[str, bytes]:
    """Every text file of the site (pages, JSON, scripts, styles), by site path; with `only`, just those."""
    makers = _makers(site, env or environment())
    return {path: make() for path, make in makers.items() if only is None or path in only}


def site_paths(site: Site) -> set[str]:
    """The site paths `render_site` renders, known without rendering anything."""
    return set(_makers(site, None))


def png_paths(site: Site) -> set[str]:
    """The files whose content depends on whether the site holds the PNG downloads: the about page
    and the manifest (`site.with_png`), the page and the document of every unit showing a render
    (its PNG link, its `images.png`: a concept's render is in its class's document)."""
    units = [u for u in [*site.classes, *site.channels]
             if u.ok_renders or (isinstance(u, ClassPage) and any(c.media is not None for c in u.concepts))]
    return {site.about.path, "data/manifest.json", *(u.path for u in units), *(u.data_path for u in units)}


def _makers(site: Site, env: jinja2.Environment | None) -> dict[str, Callable[[], bytes]]:
    """Site path -> the function that renders it: one table for the paths and their contents."""
    assets = {
        "css": "static/atlas.css",
        "js": "static/atlas.js",
        "favicon": "static/favicon.svg",
        "index": SEARCH_INDEX_PATH,
        "csp": CSP,
        "version": __version__,
    }

    def page_file(page: Page) -> bytes:
        assert env is not None
        return env.get_template(page.template).render(page=page, site=site, assets=assets).encode("utf-8")

    def unit_file(unit: UnitPage) -> bytes:
        return to_json(unit_document(site, unit))

    index = functools.cache(lambda: index_document(site))  # the search index's two files share it
    makers: dict[str, Callable[[], bytes]] = {page.path: functools.partial(page_file, page) for page in site.pages}
    makers["data/index.json"] = lambda: to_json(index())
    makers[SEARCH_INDEX_PATH] = lambda: search_index_script(index())
    makers["data/manifest.json"] = lambda: to_json(manifest_document(site))
    for unit in [*site.classes, *site.channels]:
        makers[unit.data_path] = functools.partial(unit_file, unit)
    for name in STATIC_FILES:
        makers[f"static/{name}"] = functools.partial(static_file, name)
    # GitHub Pages would otherwise run Jekyll, which skips some files and slows deploys.
    makers[".nojekyll"] = lambda: b""
    return makers


def write_changed(out: Path, files: dict[str, bytes]) -> list[str]:
    """Write the files whose content differs from what is on disk; returns their site paths."""
    changed = []
    for rel, data in sorted(files.items()):
        path = out / rel
        try:
            if path.read_bytes() == data:
                continue
        except OSError:
            pass
        atomic_write(path, data, durable=False)
        changed.append(rel)
    return changed
