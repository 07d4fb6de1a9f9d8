"""Concepts and dataset examples on the site: gathered into class and channel pages, their crops
copied as WebP, the index's top-concept view, the budgets; and a site without them stays as it was."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from atlas.concepts import store
from atlas.record import ConceptExpression
from atlas.site.build import build
from atlas.site.cache_reader import read_cache
from atlas.site.check import MAX_PAGE_BYTES, inspect_site, page_links
from atlas.site.gather import gather
from atlas.site.write import png_paths, render_site, site_paths
from tests.concept_site_support import CONCEPTS, CROPS, EXAMPLES, concept_cache, render_concepts
from tests.site_support import MODEL, records, sample_site


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return concept_cache(tmp_path_factory.mktemp("concepts") / "cache")


@pytest.fixture(scope="module")
def site(cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("concept-site") / "site"
    build(cache, out)
    return out


def test_gather_orders_concepts_links_neighbours_and_finds_renders(cache):
    gathered = gather(read_cache(cache))
    page = gathered.classes[967]
    assert [c.rank for c in page.concepts] == list(range(1, CONCEPTS + 1))
    assert [c.concept.importance for c in page.concepts] == sorted((c.concept.importance for c in page.concepts),
                                                                   reverse=True)
    assert [c.status for c in page.concepts] == ["ok"] + ["pending"] * (CONCEPTS - 1)
    assert gathered.classes[1].concepts[0].status == "failed"
    first = page.concepts[0]
    objective = first.render.entry.record.objective
    assert objective.kind == "concept" and objective.class_index == 967
    assert [a.page.index for a in first.aligned] == [967, 607, 134, 207, 282]
    assert all(s.page.index == 1 for s in first.similar) and len(first.similar) == 3
    assert first.similar[0].path.startswith("classes/0001.html#concept-")
    assert len(first.crops) == CROPS and all(c.path.startswith("crops/") for c in first.crops)
    assert first.media is not None and gathered.classes[1].concepts[0].media is None
    assert gathered.classes[0].concepts == []
    channel = next(c for c in gathered.channels if (c.layer.name, c.channel) == ("conv_head", 42))
    assert [e.crop.value for e in channel.examples] == [float(EXAMPLES - j) for j in range(EXAMPLES)]
    assert [e.page.index for e in channel.examples] == [0, 967] * (EXAMPLES // 2 - 1) + [1, 1]
    assert all(e.crop.size == (store.CROP_SIDE,) * 2 and e.crop.source_size == (500, 375) for e in channel.examples)
    assert next(c for c in gathered.channels if c.layer.name == "blocks.5").examples == []
    # the concept renders are derived like every other render, and not counted as classes
    assert first.render in gathered.renders
    assert gathered.summary.classes_rendered == gather(read_cache(cache)).summary.classes_rendered == 6


def test_class_page_shows_concepts_within_budget_and_links_resolve(cache, site):
    html = (site / MODEL / "classes" / "0967.html").read_text()
    assert html.count('class="concept"') == CONCEPTS
    assert 'Concept 1 <span class="share"><b>10%</b> of the logit</span>' in html
    assert 'alt="MACO visualization of concept 1 of 0967 espresso"' in html
    assert html.count("not rendered yet") == CONCEPTS - 1
    # the rendered concept opens its dialog from the picture, the others from a button
    assert html.count('class="c-pic"') == 1 and html.count('class="linkish crops-open"') == CONCEPTS - 1
    # its name starts with the words it shows (WCAG 2.5.3), then says whose crops they are
    assert '>all 10 crops, larger</button>' in html and 'aria-label="all 10 crops, larger, of concept 2"' in html
    assert re.search(r'href="0001\.html#concept-\d+">[^<]+ #\d+</a>', html)
    # the sample cache renders few classes: a link to a pending page says so
    assert '<a href="0607.html">jack-o&#39;-lantern</a>' in html
    assert '<a href="0282.html" class="pending">tiger cat</a>' in html
    assert "<b>Aligned classes</b> (cosine)" in html and "<b>Similar concepts</b> (cosine)" in html
    assert "top concept in 10 of 50 images" in html and "top concept in 0" not in html
    # the class's hold on the concept's picture, read from its render's scores, on the rendered card only
    rate = gather(read_cache(cache)).classes[967].concepts[0].hold
    assert html.count("its picture: the class is top-1 on") == 1
    assert f"its picture: the class is top-1 on {100 * rate.top1_rate:.0f}% of large crops" in html
    # the words the cards use are explained before the first card, not after the last
    legend = html.index('<p class="note legend">')
    assert html.index('id="concepts-title"') < legend < html.index('class="concept-list"')
    assert "<b>Aligned classes</b>: the cosine" in html[legend:] and "<b>Weak</b>" in html[legend:]
    # parameters folded and after the concepts; the concepts before the predictions in the side column
    assert '<details class="params">' in html and html.index('class="concepts"') < html.index('class="params"')
    assert "render failed" in (site / MODEL / "classes" / "0001.html").read_text()
    for name in ("0967.html", "0001.html"):
        assert (site / MODEL / "classes" / name).stat().st_size < MAX_PAGE_BYTES  # a full bank of 10 concepts fits
    crops = [link for link in page_links(html) if "/crops/" in link]
    assert len(crops) == CONCEPTS * CROPS
    assert all((site / MODEL / "classes" / link).is_file() for link in crops)
    doc = json.loads((site / MODEL / "data" / "classes" / "0967.json").read_text())
    assert [c["status"] for c in doc["concepts"]["concepts"]][:2] == ["ok", "pending"]
    assert doc["concepts"]["concepts"][0]["render"]["objective"]["kind"] == "concept"


def test_channel_page_shows_dataset_examples_with_their_source_thumbnails(site):
    html = (site / MODEL / "layers" / "conv_head" / "c0042.html").read_text()
    assert "Dataset examples" in html and html.count('alt="Example ') == EXAMPLES
    assert '<a href="../../classes/0967.html" title="espresso">espresso</a>' in html
    assert html.count('<span class="lbl">activation</span> <span class="p">') == EXAMPLES
    # where each example sits in its source image: the source thumbnail with the box laid over it in percent
    assert html.count('alt="Source image of example ') == EXAMPLES and 'class="where"' not in html
    assert '<rect x="4.0%" y="4.0%" width="24.0%" height="32.0%"/>' in html  # (20, 15, 140, 135) of 500 x 375
    assert html.count('width="64" height="48" loading="lazy"') == EXAMPLES
    assert '<div class="u-main">\n<section class="examples"' in html  # beside the picture, the predictions under it
    shown = [link for link in page_links(html) if "/crops/" in link]
    assert len(shown) == len(set(shown)) == 2 * EXAMPLES  # each example's crop and its source's thumbnail
    for link in shown:
        with Image.open(site / MODEL / "layers" / "conv_head" / link) as image:
            assert image.format == "WEBP" and image.size in ((store.CROP_SIDE,) * 2, (128, 96))
    assert "Dataset examples" not in (site / MODEL / "layers" / "blocks.5" / "c0003.html").read_text()
    assert len(html.encode()) < MAX_PAGE_BYTES
    doc = json.loads((site / MODEL / "data" / "layers" / "conv_head" / "c0042.json").read_text())
    assert [e["source_thumbnail"] for e in doc["dataset_examples"]] == [
        link.removeprefix("../../../") for link in shown if link.endswith(".webp")][1::2]


def test_an_example_set_of_the_previous_format_still_shows_its_crops_with_a_sketch(cache, tmp_path):
    """Format 2 had no source thumbnails: its examples show a frame of the source's size with the box in it."""
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    path = next(copy.glob("examples/*/*/examples.json"))
    data = json.loads(path.read_text())
    thumbnails = {e.pop("thumbnail") for c in data["channels"] for e in c["examples"]}
    data["format"], data["files"] = 2, {k: v for k, v in data["files"].items() if k not in thumbnails}
    path.write_text(json.dumps(data))
    report = build(copy, tmp_path / "site")
    assert report.problems == [] and report.check.problems == []
    html = (tmp_path / "site" / MODEL / "layers" / "conv_head" / "c0042.html").read_text()
    assert html.count('alt="Example ') == html.count('<svg class="where" viewBox="0 0 500 375"') == EXAMPLES
    assert '<rect class="box" x="20" y="15" width="120" height="120"/>' in html
    assert "Source image of example" not in html


def test_a_source_thumbnail_keeps_its_box_inside_the_image():
    from atlas.site.concept_views import SourceThumbnail

    shown = SourceThumbnail.of("crops/a.webp", Path("a.webp"), (250, 0, 375, 375), (500, 375))
    assert shown.size == (64, 48) and shown.box == (50.0, 0.0, 25.0, 100.0)
    tall = SourceThumbnail.of("crops/a.webp", Path("a.webp"), (-40, 300, 9999, 200), (300, 600))
    assert tall.size == (24, 48) and tall.box == (0.0, 50.0, 100.0, 0.0)  # clamped to the image, never negative
    assert SourceThumbnail.of("crops/a.webp", Path("a.webp"), (0, 0, 1, 1), (0, 375)) is None


def test_index_offers_the_top_concept_view(site):
    assert 'data-by="concept"' in (site / MODEL / "index.html").read_text()
    index = json.loads((site / MODEL / "data" / "index.json").read_text())
    by_index = {c["index"]: c for c in index["classes"]}
    assert (site / by_index[967]["concept_thumb"]).is_file()
    assert "concept_thumb" not in by_index[1] and "concept_thumb" not in by_index[607]
    # until its picture exists, a concept stands in by its top crop's name; no class without concepts lists one
    assert "concept_crop" not in by_index[967] and (site / by_index[1]["concept_crop"]).is_file()
    assert sum("concept_crop" in c for c in index["classes"]) == 1


def test_concepts_and_examples_alone_make_a_site_before_any_picture(cache, site, tmp_path):
    """No render yet (`atlas concepts` alone): the classes show their concepts' top crops in the index,
    which opens on them, and the example channels have pages with their examples."""
    alone = tmp_path / "cache"
    shutil.copytree(cache, alone)
    shutil.rmtree(alone / "entries")
    out = tmp_path / "site"
    build(alone, out)
    index = json.loads((out / MODEL / "data" / "index.json").read_text())
    crops = {c["index"]: c["concept_crop"] for c in index["classes"] if "concept_crop" in c}
    assert sorted(crops) == [1, 967] and not any("concept_thumb" in c for c in index["classes"])
    assert all(path.startswith("crops/") and (out / path).is_file() for path in crops.values())
    home = (out / MODEL / "index.html").read_text()
    assert 'data-toggle="by" data-default="concept"' in home
    assert "0 rendered · 0 failed · 1,000 pending · 2 with concepts" in home
    assert "0 in 0 layers · 2 with dataset examples" in home and "2 with examples</span>" in home
    layer = (out / MODEL / "layers" / "conv_head" / "index.html").read_text()
    assert 'data-toggle="layer-by" data-default="example"' in layer
    assert "0 channels rendered of 1,280, 2 with dataset examples" in layer
    channels = {ch["channel"]: ch for la in index["layers"] for ch in la["channels"]}
    assert sorted(channels) == [42, 101] and all(ch["status"] == "pending" for ch in channels.values())
    page = (out / MODEL / "layers" / "conv_head" / "c0042.html").read_text()
    assert "Not rendered yet" in page and page.count('alt="Example ') == EXAMPLES
    # browsing goes from one page that shows something to the next, not through the 998 empty ones
    goldfish = (out / MODEL / "classes" / "0001.html").read_text()
    assert re.findall(r'href="(\d{4}\.html)"[^>]*>', goldfish)[:2] == ["0967.html", "0967.html"]
    assert 'href="c0101.html"' in page
    manifest = json.loads((out / MODEL / "data" / "manifest.json").read_text())
    assert manifest["counts"]["classes_with_concepts"] == 2 and manifest["counts"]["classes_rendered"] == 0
    # with pictures, the views open on them
    assert 'data-toggle="by">' in (site / MODEL / "index.html").read_text()
    assert 'data-toggle="layer-by">' in (site / MODEL / "layers" / "conv_head" / "index.html").read_text()


def test_a_site_without_concepts_is_the_site_of_before(cache, site, tmp_path, tmp_path_factory):
    """Dropping the banks and examples: the rebuild removes the crops and gives the plain sample site."""
    plain = sample_site(tmp_path_factory)
    out = tmp_path / "site"
    shutil.copytree(site, out)
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    shutil.rmtree(copy / "concepts")
    shutil.rmtree(copy / "examples")
    build(copy, out)
    assert not (out / "crops").exists()
    ours = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    theirs = {p.relative_to(plain).as_posix(): p.read_bytes() for p in plain.rglob("*") if p.is_file()}
    # the concept renders stay in the cache but show nowhere: the media of their picture go too
    assert ours == theirs


def test_an_unrendered_bank_shows_placeholders_and_the_store_is_read_torch_free(cache):
    import subprocess
    import sys

    assert all(b.model == MODEL for b in store.banks(cache))
    gathered = gather(read_cache(cache))
    assert [c.media for c in gathered.classes[1].concepts] == [None] * CONCEPTS
    script = ("import sys; from pathlib import Path; from atlas.site.cache_reader import read_cache; "
              "from atlas.site.gather import gather; site = gather(read_cache(Path(sys.argv[1]))); "
              "assert site.classes[967].concepts; "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm')))")
    done = subprocess.run([sys.executable, "-c", script, str(cache)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_the_link_check_sees_a_missing_crop(site, tmp_path):
    out = tmp_path / "site"
    shutil.copytree(site, out)
    assert inspect_site(out).problems == []
    victim = sorted((out / "crops").iterdir())[0]
    victim.unlink()
    problems = inspect_site(out).problems
    assert problems and all(f"{victim.name}' does not exist" in p for p in problems)


def test_the_link_check_reads_the_stand_in_crops_the_index_names(site, tmp_path):
    out = tmp_path / "site"
    shutil.copytree(site, out)
    script = out / "data" / "search-index.js"
    text = script.read_text()
    named = re.search(r'"concept_crop":"(crops/[0-9a-f]+\.webp)"', text)[1]
    script.write_text(text.replace(named, "crops/0000000000000000.webp"))
    assert any("0000000000000000.webp' does not exist" in p for p in inspect_site(out).problems)


def test_a_class_of_two_seeds_and_ten_rendered_concepts_fits_the_page_budget(cache, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    render_concepts(copy, 967, CONCEPTS)  # class 967 has two seeds in the sample cache
    report = build(copy, tmp_path / "site")
    html = (tmp_path / "site" / MODEL / "classes" / "0967.html").read_text()
    assert html.count("MACO visualization of concept") == CONCEPTS and "not rendered yet" not in html
    assert report.check.largest_page[0] == f"{MODEL}/classes/0967.html"
    assert report.check.largest_page[1] < MAX_PAGE_BYTES


def test_pngs_switched_on_after_gathering_change_only_the_files_png_paths_names(cache, tmp_path):
    # the build measures a site gathered without PNGs, and re-renders only png_paths when they fit
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    for folder, data in records(copy):  # class 967 keeps only its concept's picture
        if data["objective"]["id"] == "class:967":
            shutil.rmtree(folder)
    contents = read_cache(copy)
    gathered = gather(contents, with_png=False)
    assert gathered.classes[967].concepts[0].media is not None and not gathered.classes[967].renders
    without = render_site(gathered)
    gathered.include_pngs()
    with_pngs = render_site(gathered)
    assert with_pngs == render_site(gather(contents, with_png=True))
    changed = {path for path, data in without.items() if with_pngs[path] != data}
    assert {"about.html", "data/manifest.json", "data/classes/0967.json", "classes/0607.html"} <= changed
    assert changed <= png_paths(gathered) and site_paths(gathered) == set(without)


def test_a_class_page_with_ten_rendered_concepts_and_four_seeds_builds_within_the_page_budget(tmp_path):
    import dataclasses

    from atlas.cache import Cache
    from atlas.kind import content_key
    from atlas.record import ATTRIBUTION, IMAGE, loads

    cache = concept_cache(tmp_path / "cache")
    weak = ConceptExpression(0.123, 10, CONCEPTS)  # the longest text a card says of its picture
    render_concepts(cache, 967, CONCEPTS, expressions=[weak] * CONCEPTS)
    folder = next(f for f, r in records(cache) if r["objective"]["id"] == "class:967" and r["seed_index"] == 1)
    record = loads((folder / "record.json").read_bytes())
    files = {name: (folder / name).read_bytes() for name in (IMAGE, ATTRIBUTION)}
    for seed in (2, 3):  # seeds 0 and 1 are in the sample cache
        Cache(cache).write_entry(content_key({"extra seed": seed}), files,
                                 dataclasses.replace(record, seed=seed, seed_index=seed))
    report = build(cache, tmp_path / "site")  # the build checks every page against the budget
    html = (tmp_path / "site" / MODEL / "classes" / "0967.html").read_text()
    assert html.count('class="seed"') == 4 and html.count('<img src="../../media/') >= CONCEPTS
    assert report.check.problems == [] and report.check.largest_page[0] == f"{MODEL}/classes/0967.html"
    assert 30 * 1024 < report.check.largest_page[1] <= MAX_PAGE_BYTES


def _shown(text: str) -> float:
    return float(text.replace("\u2212", "-").rstrip("%"))


def test_the_share_rows_and_the_rest_add_up_to_the_logit(site):
    html = (site / MODEL / "classes" / "0967.html").read_text()
    table = html[html.index('<table class="shares"'):html.index("</table>", html.index('<table class="shares"'))]
    rows = re.findall(r"<tr[^>]*><th>(.*?)</th><td class=\"bar\">.*?</td><td>([^<]+)</td><td>([^<]+)</td></tr>", table)
    assert len(rows) == CONCEPTS + 1 and rows[-1][0] == "rest: bias and unexplained"
    logit = _shown(re.search(r"= class logit, mean</th><td></td><td>([^<]+)</td>", table).group(1))
    assert logit == 100.0
    values = [_shown(v) for _, v, _ in rows]
    assert abs(sum(values) - logit) <= 0.005 * len(values)  # to the rounding shown
    assert abs(sum(_shown(p) for _, _, p in rows) - 100) <= 0.5 * len(rows)
    # bars relative to the largest contribution (the rest, 45 here), which fills its track
    assert 'width="100.0%"' in table and 'width="22.2%"' in table  # concept 1: 10 / 45
    assert "-0" not in table and "\u22120" not in table


def test_shares_of_a_negative_logit_are_drawn_negative_and_said_in_words(cache, tmp_path):
    import dataclasses

    from atlas.site.concept_views import ShareTable, percent, signed

    assert signed(-0.001) == "0.00" and percent(-0.004) == "0%" and signed(-1.5) == "\u22121.50"
    bank = gather(read_cache(cache)).classes[967].bank
    values = (-3.0, 1.0, -0.001, 0, 0, 0, 0, 0, 0, 0)
    concepts = tuple(dataclasses.replace(c, importance=v) for c, v in zip(bank.concepts, values, strict=True))
    table = ShareTable.of(dataclasses.replace(bank, concepts=concepts, logit=-4.0, residual=-1.0, rest=-0.999))
    assert not table.positive and all(r.share_text == "" for r in table.rows)
    assert [r.value_text for r in table.rows[:3]] == ["\u22123.00", "+1.00", "0.00"]
    assert table.rows[0].negative and not table.rows[2].negative
    assert sum(r.value for r in table.rows) == pytest.approx(table.logit)
    # the largest magnitude (3) fills its side of the axis; a negative bar ends at the axis
    first = table.rows[0]
    assert first.start + first.width == pytest.approx(table.axis)
    assert table.rows[1].start == pytest.approx(table.axis)
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    path = next((copy / "concepts").glob("*/*/bank.json"))
    data = json.loads(path.read_text())
    data["logit"] = -2.0
    data["residual"] = -2.0 - sum(c["importance"] for c in data["concepts"]) - data["rest"]
    path.write_text(json.dumps(data))
    build(copy, tmp_path / "site")
    index = data["class_index"]
    html = (tmp_path / "site" / MODEL / "classes" / f"{index:04d}.html").read_text()
    assert "is \u22122.00, not positive" in html and "of the logit</span>" not in html


def test_the_page_names_the_class_the_generator_sees_instead(cache, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    folder, data = next((f, d) for f, d in records(copy)
                        if d["objective"]["id"] == "class:967" and d["seed_index"] == 0)
    generator = next(m for m in data["judging"]["whole"]["models"] if m["role"] == "generator")
    generator["top5"][0] = {"index": 282, "prob": 0.61}
    (folder / "record.json").write_text(json.dumps(data))
    build(copy, tmp_path / "site")
    html = (tmp_path / "site" / MODEL / "classes" / "0967.html").read_text()
    assert f'<b>{MODEL}</b> calls this picture <a href="0282.html">tiger cat</a> (61.0% on the whole picture)' in html
    index = json.loads((tmp_path / "site" / MODEL / "data" / "index.json").read_text())
    called = {c["index"]: c.get("called") for c in index["classes"]}
    assert called[967] == f"{MODEL} calls this picture tiger cat"
    assert [i for i, text in called.items() if text] == [967]


def test_prev_and_next_skip_pending_pages(site):
    html = (site / MODEL / "classes" / "0967.html").read_text()
    rendered = sorted(int(p.stem) for p in (site / MODEL / "classes").glob("*.html")
                      if 'class="status ok"' in (p.read_text()))
    at = rendered.index(967)
    prev, nxt = rendered[at - 1], rendered[(at + 1) % len(rendered)]
    assert f'rel="prev" href="{prev:04d}.html"' in html and f'rel="next" href="{nxt:04d}.html"' in html
    pending = (site / MODEL / "classes" / "0002.html").read_text()
    assert 'rel="next" href="' + f"{min(i for i in rendered if i > 2):04d}.html" + '"' in pending


def test_a_concept_card_says_how_strongly_its_picture_expresses_its_concept(cache, tmp_path):
    """Measured pictures say their own concept's share and rank; one that shows other concepts more is
    marked weak (and dimmed by the stylesheet); a picture rendered before the measure says nothing."""
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    strong, weak = ConceptExpression(0.64, 1, CONCEPTS), ConceptExpression(0.3, 2, CONCEPTS)
    render_concepts(copy, 967, 3, expressions=[strong, weak])
    build(copy, tmp_path / "site")
    html = (tmp_path / "site" / MODEL / "classes" / "0967.html").read_text()
    card = r'<li class="concept[^"]*" id="concept-(\d+)">(.*?)</li>'
    cards = {int(n): body for n, body in re.findall(card, html, re.S)}
    assert "holds its concept: 64% of its concept weight, 1st of 10" in cards[1]
    assert "<b>weak</b>, shows others more: 30% of its concept weight, 2nd of 10" in cards[2]
    assert "concept weight" not in cards[3] and "concept weight" not in cards[4]  # not measured; not rendered
    assert re.findall(r'<li class="concept weak" id="concept-(\d+)"', html) == ["2"]
    assert ".concept.weak .c-pic img" in (tmp_path / "site" / "static" / "atlas.css").read_text()
