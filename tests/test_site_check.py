"""The site checker: links resolve inside the site, pages and the site fit their budgets."""

from __future__ import annotations

import os
import shutil

import pytest

from atlas.errors import AtlasError
from atlas.site.build import build
from atlas.site.check import MAX_PAGE_BYTES, Budget, check_site, inspect_site, page_links
from tests.site_support import MODEL, copy_cache, records, sample_site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return sample_site(tmp_path_factory)


@pytest.fixture()
def site_copy(site, tmp_path):
    return shutil.copytree(site, tmp_path / "site")


def test_sample_site_passes_and_fits_its_budget(site):
    report = check_site(site)
    assert report.problems == []
    assert report.links > 20_000  # every page's links, plus the search index's
    assert report.largest_page[1] <= MAX_PAGE_BYTES
    assert report.largest_page[0].startswith(f"{MODEL}/classes/")  # class pages are the fullest
    assert (site / "index.html").stat().st_size < 10 * 1024  # 1000 tiles, drawn by script
    assert report.total_bytes < 20 * 2**20


def test_page_links_reads_attributes_not_text():
    html = """<a title="not src=x.png" href='a.html'><img alt="&lt;img src=y&gt;" src=b.png
              data-overlay="c&amp;d.webp"><IMG SRCSET="e.webp 1x, f.webp 2x"> text src=z.png"""
    assert page_links(html) == ["a.html", "b.png", "c&d.webp", "e.webp", "f.webp"]


def test_a_crops_base_on_a_container_holds_for_every_crop_list_in_it():
    html = """<ol data-crops-base="../../crops/"><li><p data-crops="a b"></p></li><li><p data-crops="c"></p></li></ol>
              <p data-crops-base="x/" data-crops="d">"""
    assert page_links(html) == ["../../crops/a.webp", "../../crops/b.webp", "../../crops/c.webp", "x/d.webp"]


@pytest.mark.parametrize(
    ("link", "why"),
    [
        ("missing.html", "does not exist"),
        ("https://example.org/x.js", "points outside the site"),
        ("//cdn.example.org/x.js", "points outside the site"),
        ("/index.html", "root-relative"),
        ("layers/", "names a folder"),
        ("../../etc/passwd", "leaves the site folder"),
    ],
)
def test_checker_fails_on_a_bad_link(site_copy, link, why):
    page = site_copy / MODEL / "about.html"
    html = page.read_text(encoding="utf-8").replace("</main>", f'<a href="{link}">x</a></main>')
    page.write_text(html, encoding="utf-8")
    with pytest.raises(AtlasError, match=why):
        check_site(site_copy)


def test_checker_fails_on_a_missing_image_and_a_broken_index_entry(site_copy):
    detail = next(site_copy.glob("media/*/detail.webp"))
    detail.unlink()
    problems = inspect_site(site_copy).problems
    assert problems and all("detail.webp" in p and "does not exist" in p for p in problems)
    thumb = next(site_copy.glob("media/*/thumb.webp"))
    thumb.unlink()  # only the search index (and so the grids) and a few pages point at thumbnails
    problems = inspect_site(site_copy).problems
    assert any(p.startswith("data/search-index.js:") and thumb.parent.name in p for p in problems)


def test_checker_fails_on_symlinks_and_budgets(site_copy):
    assert check_site(site_copy, Budget(page_bytes=64 * 1024))
    with pytest.raises(AtlasError, match=rf"{MODEL}/classes/\d{{4}}\.html is .* KB, over the 8 KB limit per page"):
        check_site(site_copy, Budget(page_bytes=8 * 1024))
    with pytest.raises(AtlasError, match="over the 1 MB budget .*leave out the full-size PNG"):
        check_site(site_copy, Budget(site_bytes=2**20))
    with pytest.raises(AtlasError, match="over the 0 MB limit per file"):
        check_site(site_copy, Budget(file_bytes=100 * 1024))
    os.symlink(site_copy / "index.html", site_copy / "home.html")
    with pytest.raises(AtlasError, match="home.html is a symlink"):
        check_site(site_copy)


def test_build_fails_clearly_when_over_budget(tmp_path):
    with pytest.raises(AtlasError, match="site check failed .*over the"):
        build(copy_cache(tmp_path / "cache"), tmp_path / "site", budget=Budget(site_bytes=2**20))


def test_a_class_with_many_seeds_stays_under_the_page_budget(tmp_path):
    # Extra seeds add images, predictions and parameters to a page: six seeds must still fit.
    import hashlib
    import json

    cache = copy_cache(tmp_path / "cache")
    folder, record = next((f, r) for f, r in records(cache) if r["objective"]["id"] == "class:967")
    for seed in range(2, 6):
        key = hashlib.sha256(f"seed {seed}".encode()).hexdigest()
        new = cache / "entries" / key[:2] / key
        shutil.copytree(folder, new)
        copied = dict(record, key=key, seed=seed, seed_index=seed)
        (new / "record.json").write_text(json.dumps(copied), encoding="utf-8")
    report = build(cache, tmp_path / "site")
    page = (tmp_path / "site" / MODEL / "classes/0967.html").stat().st_size
    assert report.check.largest_page == (f"{MODEL}/classes/0967.html", page)
    assert page <= MAX_PAGE_BYTES
    assert (tmp_path / "site" / MODEL / "classes/0967.html").read_text(encoding="utf-8").count('class="seed"') == 6
