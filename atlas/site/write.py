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
import markupsafe

from atlas import __version__
from atlas.atomic import atomic_write
from atlas.errors import AtlasError
from atlas.site.documents import (
    SEARCH_INDEX_PATH,
    atlas_index,
    index_document,
    manifest_document,
    search_index_script,
    to_json,
    unit_document,
)
from atlas.site.pages import ClassPage, Page, Site, UnitPage
from atlas.site.roster import Roster

Built = Site | Roster  # one model's site, or the atlas of every model (each in its folder)

STATIC_FILES = ("atlas.css", "atlas.js", "nojs.css", "favicon.svg")
# Pages load nothing from elsewhere; 'self' covers file:// pages too (tested in Chromium). Every fetch
# directive left out (connect-src, font-src, ...) falls back to default-src; base-uri and form-action do
# not. A constant of our own, so it goes into the page as it is, not with every quote escaped.
CSP = markupsafe.Markup(
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
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


def render_site(site: Built, env: jinja2.Environment | None = None, *,
                only: Collection[str] | None = None) -> dict[str, bytes]:
    """Every text file of the site (pages, JSON, scripts, styles), by site path; with `only`, just those."""
    makers = _makers(site, env or environment())
    return {path: make() for path, make in makers.items() if only is None or path in only}


def site_paths(site: Built) -> set[str]:
    """The site paths `render_site` renders, known without rendering anything."""
    return set(_makers(site, None))


def png_paths(site: Built) -> set[str]:
    """The files whose content depends on whether the site holds the PNG downloads: the about page
    and the manifest (`site.with_png`), the page and the document of every unit showing a render
    (its PNG link, its `images.png`: a concept's render is in its class's document)."""
    if isinstance(site, Roster):
        return {path for one in site.sites for path in png_paths(one)}
    units = [u for u in [*site.classes, *site.channels]
             if u.ok_renders or (isinstance(u, ClassPage) and any(c.media is not None for c in u.concepts))]
    return {site.about.path, site.manifest_path, *(u.path for u in units), *(u.data_path for u in units)}


def _makers(built: Built, env: jinja2.Environment | None) -> dict[str, Callable[[], bytes]]:
    """Site path -> the function that renders it: one table for the paths and their contents. Every
    model's pages and documents are in its folder; the static files, the search index (of every
    model) and the 404 page (the default model's) are shared, at the root."""
    sites = built.sites if isinstance(built, Roster) else [built]
    makers: dict[str, Callable[[], bytes]] = {}
    for site in reversed(sites):  # the default model's 404 page last, so that it is the one kept
        makers.update(_site_makers(site, env))
    if isinstance(built, Roster):
        for page in built.own_pages:
            makers[page.path] = functools.partial(_page_file, env, page, built.default)
    makers[SEARCH_INDEX_PATH] = lambda: search_index_script(atlas_index(sites))
    for name in STATIC_FILES:
        makers[f"static/{name}"] = functools.partial(static_file, name)
    # GitHub Pages would otherwise run Jekyll, which skips some files and slows deploys.
    makers[".nojekyll"] = lambda: b""
    return makers


ASSETS = {
    "css": "static/atlas.css",
    "nojs_css": "static/nojs.css",
    "js": "static/atlas.js",
    "favicon": "static/favicon.svg",
    "index": SEARCH_INDEX_PATH,
    "csp": CSP,
    "version": __version__,
}


def _page_file(env: jinja2.Environment | None, page: Page, site: Site) -> bytes:
    assert env is not None
    return env.get_template(page.template).render(page=page, site=site, assets=ASSETS).encode("utf-8")


def _site_makers(site: Site, env: jinja2.Environment | None) -> dict[str, Callable[[], bytes]]:
    """One model's pages and documents."""
    def unit_file(unit: UnitPage) -> bytes:
        return to_json(unit_document(site, unit))

    makers: dict[str, Callable[[], bytes]] = {
        page.path: functools.partial(_page_file, env, page, site) for page in site.pages}
    makers[site.index_path] = lambda: to_json(index_document(site))
    makers[site.manifest_path] = lambda: to_json(manifest_document(site))
    for unit in [*site.classes, *site.channels]:
        makers[unit.data_path] = functools.partial(unit_file, unit)
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
