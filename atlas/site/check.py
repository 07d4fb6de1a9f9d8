"""Checks on a built site: every link resolves to a file in it, and it fits its size budget.

Links are every href/src/srcset in the HTML, plus every path the search index (which the
grids are drawn from) points at. Only relative links to files are allowed: the site must
work from file:// and from a GitHub Pages project subpath, and request nothing from elsewhere.
"""

from __future__ import annotations

import html
import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from atlas.errors import AtlasError
from atlas.site.concept_views import CROP_EXT
from atlas.site.documents import SEARCH_INDEX_GLOBAL, SEARCH_INDEX_PATH

# A class page with a full bank of 10 rendered concepts is 30.8 KB with two seeds and adds about
# 3.6 KB a seed (34.3 KB with 3, 37.9 KB with 4; about 6.5 KB gzipped, as GitHub Pages serves it).
MAX_PAGE_BYTES = 40 * 1024
MAX_SITE_BYTES = 300 * 1024 * 1024
MAX_FILE_BYTES = 50 * 1024 * 1024
# Start tags with their attributes, tokenized so that text inside a quoted value (a title
# mentioning "src=x", say) is never read as an attribute. Pages hold no inline scripts.
START_TAG = re.compile(r"""<[a-zA-Z][^\s/>]*((?:\s+[^\s=/>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*/?>""")
ATTRIBUTE = re.compile(r"""([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
# Attributes holding a URL; data-plain/data-overlay are the two sources of a togglable image.
URL_ATTRIBUTES = {"href", "src", "srcset", "poster", "data-plain", "data-overlay"}
# A concept's crops, which its dialog shows: names in data-crops, each data-crops-base + name + ".webp"; the base
# is given once, on the crop lists' container or on the list itself, and holds for the lists after it.
CROPS_ATTRIBUTES = ("data-crops-base", "data-crops")


@dataclass(frozen=True)
class Budget:
    page_bytes: int = MAX_PAGE_BYTES
    site_bytes: int = MAX_SITE_BYTES
    file_bytes: int = MAX_FILE_BYTES


DEFAULT_BUDGET = Budget()


@dataclass
class SiteReport:
    files: int = 0
    total_bytes: int = 0
    largest_page: tuple[str, int] = ("", 0)
    largest_file: tuple[str, int] = ("", 0)
    links: int = 0
    bytes_by_kind: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def page_links(text: str) -> list[str]:
    """Every URL in the attributes of an HTML page (srcset split into its URLs)."""
    links = []
    base = ""
    for tag in START_TAG.finditer(text):
        crops = {}
        for attr in ATTRIBUTE.finditer(tag.group(1)):
            name = attr.group(1).lower()
            if name not in URL_ATTRIBUTES and name not in CROPS_ATTRIBUTES:
                continue
            value = html.unescape(next((g for g in attr.groups()[1:] if g is not None), ""))
            if name in CROPS_ATTRIBUTES:
                crops[name] = value
            elif name == "srcset":
                links += [part.strip().split(" ")[0] for part in value.split(",") if part.strip()]
            else:
                links.append(value)
        base = crops.get("data-crops-base", base)
        links += [f"{base}{name}{CROP_EXT}" for name in crops.get("data-crops", "").split()]
    return links


def _kind(rel: str) -> str:
    if rel.endswith(".html"):
        return "html"
    if rel.endswith(".png"):
        return "png downloads"
    if rel.endswith(".webp"):
        return "webp"
    return "data, scripts and styles"


def inspect_site(site: Path, budget: Budget = DEFAULT_BUDGET) -> SiteReport:
    """Measure `site` and list every broken link and budget overrun (raises nothing)."""
    site = Path(site)
    report = SiteReport()
    if not (site / "index.html").is_file():
        report.problems.append(f"{site} has no index.html")
        return report
    entries = _walk(site)
    files = {rel for rel, entry in entries if entry.is_file(follow_symlinks=False)}
    for rel, entry in entries:
        path = site / rel
        if entry.is_symlink():
            report.problems.append(f"{rel} is a symlink (GitHub Pages and downloads need real files)")
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        size = entry.stat(follow_symlinks=False).st_size
        report.files += 1
        report.total_bytes += size
        report.bytes_by_kind[_kind(rel)] = report.bytes_by_kind.get(_kind(rel), 0) + size
        if size > report.largest_file[1]:
            report.largest_file = (rel, size)
        if size > budget.file_bytes:
            report.problems.append(
                f"{rel} is {size / 2**20:.1f} MB, over the {budget.file_bytes / 2**20:.0f} MB limit per file")
        if rel.endswith(".html"):
            if size > report.largest_page[1]:
                report.largest_page = (rel, size)
            if size > budget.page_bytes:
                report.problems.append(f"{rel} is {size / 1024:.1f} KB, "
                                       f"over the {budget.page_bytes / 1024:.0f} KB limit per page "
                                       "(each extra seed adds about 3.3 KB: render fewer seeds per objective)")
            for link in page_links(path.read_text(encoding="utf-8")):
                report.links += 1
                problem = _resolve(files, rel, link)
                if problem:
                    report.problems.append(f"{rel}: {problem}")
    if report.total_bytes > budget.site_bytes:
        by_size = sorted(report.bytes_by_kind.items(), key=lambda kv: -kv[1])
        kinds = ", ".join(f"{k} {v / 2**20:.0f} MB" for k, v in by_size)
        report.problems.append(
            f"the site is {report.total_bytes / 2**20:.0f} MB, "
            f"over the {budget.site_bytes / 2**20:.0f} MB budget ({kinds}); "
            "build without --png (or with --no-png) to leave out the full-size PNG downloads"
        )
    for link in _index_links(site, report):
        report.links += 1
        problem = _resolve(files, "index.html", link)
        if problem:
            report.problems.append(f"{SEARCH_INDEX_PATH}: {problem}")
    return report


def _walk(site: Path) -> list[tuple[str, os.DirEntry]]:
    """(site path, entry) of everything under `site`, in path order, not into linked folders. One scandir
    per folder, whose entries know their type: a full concept atlas has 100,000 crops, and a stat or two
    per file through pathlib took 20 s of its build."""
    found = []
    folders = [""]
    while folders:
        folder = folders.pop()
        with os.scandir(site / folder) as listing:
            for entry in listing:
                rel = f"{folder}/{entry.name}" if folder else entry.name
                if entry.is_dir(follow_symlinks=False):
                    folders.append(rel)
                found.append((rel, entry))
    return sorted(found, key=lambda item: item[0].split("/"))


# every file a unit of the search index names, which its grids and search load
INDEX_FILES = ("thumb", "thumb_overlay", "concept_thumb", "concept_thumb_overlay", "concept_crop", "example")


def _index_links(site: Path, report: SiteReport) -> list[str]:
    path = site / SEARCH_INDEX_PATH
    prefix = f"window.{SEARCH_INDEX_GLOBAL} = "
    try:
        text = path.read_text(encoding="utf-8").strip()
        if not (text.startswith(prefix) and text.endswith(";")):
            raise ValueError(f"does not start with {prefix!r}")
        index = json.loads(text[len(prefix) : -1])
    except (OSError, ValueError) as exc:
        report.problems.append(f"{SEARCH_INDEX_PATH} is unreadable ({exc})")
        return []
    links = []
    try:
        models = [(m["home"], m["classes"], m["layers"]) for m in index["models"]]
    except (KeyError, TypeError) as exc:
        report.problems.append(f"{SEARCH_INDEX_PATH} lists its models without {exc}")
        return []
    for home, classes, layers in models:
        for unit in [*classes, *(c for layer in layers for c in layer["channels"])]:
            links += [unit["page"]] + [unit[k] for k in INDEX_FILES if unit.get(k)]
        links += [home] + [layer["page"] for layer in layers]
    return links


def _resolve(files: set[str], page: str, link: str) -> str | None:
    """None when `link`, on the page at site path `page`, names one of `files`; else what is wrong."""
    parts = urlsplit(link)
    if parts.scheme or parts.netloc:
        return f"{link!r} points outside the site (only relative links are allowed)"
    if not parts.path:
        return None  # "#fragment": a link within the page
    if parts.path.startswith("/"):
        return f"{link!r} is root-relative, which breaks under file:// and a project subpath"
    if parts.path.endswith("/"):
        return f"{link!r} names a folder; link the .html file (file:// shows no index pages)"
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path)))
    if target == ".." or target.startswith("../"):
        return f"{link!r} leaves the site folder"
    if target not in files:
        return f"{link!r} does not exist"
    return None


def check_site(site: Path, budget: Budget = DEFAULT_BUDGET) -> SiteReport:
    """`inspect_site`, raising an AtlasError that lists the problems when there are any."""
    report = inspect_site(site, budget)
    if report.problems:
        shown = "; ".join(report.problems[:5])
        more = f" (and {len(report.problems) - 5} more)" if len(report.problems) > 5 else ""
        raise AtlasError(f"site check failed for {site}: {shown}{more}")
    return report
