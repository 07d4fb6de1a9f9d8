"""The same unit across models on channel pages: read torch-free from the stored matches (atlas.matches)."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings

import pytest

from atlas import matches as store
from atlas.site.cache_reader import read_cache
from atlas.site.gather import _same_units, gather
from atlas.site.roster import link_same_units
from atlas.site.write import render_site
from atlas.store import file_path
from tests.site_support import MODEL, SAMPLE_CACHE, copy_cache


def _stored(cache, weights: str) -> store.MatchSet:
    ours = store.Side(MODEL, weights, (("conv_head", 1280), ("blocks.5", 192)))
    other = store.Side("resnet50", "f" * 64, (("layer4", 2048),))
    value = store.MatchSet(store.key_of(other, ours, "listing", {"grid": 7}), (other, ours),
                           {"listing_sha256": "listing", "count": 500, "skipped": 0}, {"grid": 7},
                           (store.Match("layer4", 17, "conv_head", 42, 0.8125),
                            store.Match("layer4", 9, "blocks.5", 3, 0.5)),
                           1.5, "cpu", "2026-12-02T00:00:00Z")
    store.write(cache, value)
    return value


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    cache = copy_cache(tmp_path_factory.mktemp("matches") / "cache")
    weights = json.loads((cache / "models" / f"{MODEL}.json").read_text())["weights_sha256"]
    _stored(cache, weights)
    hostile = file_path(cache, "matches", "ab" + "0" * 62)
    hostile.parent.mkdir(parents=True)
    hostile.write_text("[1, NaN]")
    return cache


def _channel(site, layer: str, channel: int):
    return next(p for p in site.channels if p.layer.name == layer and p.channel == channel)


def test_a_channel_page_shows_the_same_unit_in_another_model(cache, tmp_path, capsys):
    """One build (the sample's takes minutes on two shared cores): the page, and the hostile file's one line."""
    from atlas.cli import main

    out = tmp_path / "site"
    assert main(["build", "--cache", str(cache), "--out", str(out)]) == 0
    page = (out / MODEL / "layers" / "conv_head" / "c0042.html").read_text(encoding="utf-8")
    assert "The same unit in other models" in page
    assert "resnet50" in page and "layer4 · channel 17" in page and "r = 0.81" in page
    assert "resnet50 · layer4 channel" in page and "has no page in this atlas" in page  # no link
    unmatched = (out / MODEL / "layers" / "conv_head" / "c0101.html").read_text(encoding="utf-8")
    assert "The same unit in other models" not in unmatched
    hostile = file_path(cache, "matches", "ab" + "0" * 62)
    lines = [line for line in capsys.readouterr().err.splitlines() if "matches" in line]
    assert lines == [f"atlas build: warning: skipped stored matches {hostile}: NaN is not a finite number"]


def test_a_match_links_to_the_other_models_channel_page_where_the_site_has_it(cache):
    contents = read_cache(cache)
    with pytest.warns(UserWarning, match="skipped stored matches"):  # the fixture's hostile file
        site = gather(contents)
        target = _channel(site, "blocks.5", 17)
    # the lookup a site of several models will pass: resnet50's layer4 channel 17 has a page
        _same_units(contents, site.layers, {("resnet50", "f" * 64, "layer4", 17): target})
    shown = _channel(site, "conv_head", 42).same_units
    assert [(u.match.model, u.match.layer, u.match.channel, u.page) for u in shown] == \
        [("resnet50", "layer4", 17, target)]
    path = _channel(site, "conv_head", 42).path
    html = render_site(site, only={path})[path].decode()
    assert '<a class="tile ok" href="../blocks.5/c0017.html"' in html and "no page in this atlas" not in html
    tile = html[html.index('<a class="tile ok" href="../blocks.5/c0017.html"'):]
    tile = tile[:tile.index("</a>")]
    # the linked page's picture, decorative beside the caption that names it
    assert re.search(r'<img src="[^"]*/media/[^"]+" [^>]*alt="">', tile) and "channel 17" in tile


def test_in_an_atlas_of_several_models_a_match_links_to_the_other_models_page(cache):
    """Each model's part is gathered alone; the atlas then links a match to the page the other model has."""
    contents = read_cache(cache)
    other = dataclasses.replace(contents, model=dataclasses.replace(contents.model, name="resnet50",
                                                                     weights_sha256="f" * 64))
    with pytest.warns(UserWarning, match="skipped stored matches"):
        ours, theirs = gather(contents, prefix=f"{MODEL}/"), gather(other, prefix="resnet50/")
    target = _channel(theirs, "blocks.5", 17)
    renamed = {("resnet50", "f" * 64, "blocks.5", 17): target}
    for page in ours.channels:  # the stored match names resnet50's layer4; the renamed copy has blocks.5
        page.same_units = [dataclasses.replace(u, match=dataclasses.replace(u.match, layer="blocks.5"))
                           for u in page.same_units]
    assert all(u.page is None for u in _channel(ours, "conv_head", 42).same_units)
    link_same_units([ours, theirs])
    assert [u.page for u in _channel(ours, "conv_head", 42).same_units] == [renamed[("resnet50", "f" * 64,
                                                                                       "blocks.5", 17)]]


def test_a_site_without_matches_and_a_hostile_matches_file(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not any(p.same_units for p in gather(read_cache(SAMPLE_CACHE)).channels)
    path = file_path(cache, "matches", "ab" + "0" * 62)
    path.parent.mkdir(parents=True)
    path.write_text('{"format": 1, "kind": "matches", "matches": [["conv_head", -1]]}')
    with pytest.warns(UserWarning, match="skipped stored matches"):
        site = gather(read_cache(cache))
    assert not any(p.same_units for p in site.channels)
