"""Concepts and dataset examples in headless Chromium, from file:// and from a server subpath:
pictures and crops load, the crops dialog opens by click or key and closes on Escape with focus
back, similar-concept links land on their anchor, and the index's top-concept view persists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas.site.build import build
from tests.browser_support import Tab
from tests.concept_site_support import CONCEPTS, CROPS, EXAMPLES, concept_cache
from tests.site_support import MODEL, records

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("concept-browser")
    out = root / "site"
    cache = concept_cache(root / "cache")
    # the generator calls its picture of class 607 another class
    folder, data = next((f, d) for f, d in records(cache) if d["objective"]["id"] == "class:607")
    generator = next(m for m in data["judging"]["whole"]["models"] if m["role"] == "generator")
    generator["top5"][0] = {"index": 282, "prob": 0.61}
    (folder / "record.json").write_text(json.dumps(data))
    build(cache, out)
    return out




def _dialog_images(tab: Tab) -> list[int]:
    return tab.page.evaluate("""async () => {
      const imgs = [...document.querySelectorAll('#crops img')];
      await Promise.all(imgs.map(i => i.complete ? null : new Promise(done => {
        i.addEventListener('load', done, {once: true}); i.addEventListener('error', done, {once: true}); })));
      return imgs.map(i => i.naturalWidth);
    }""")


def _top(tab: Tab, selector: str) -> float:
    return tab.page.evaluate(f"document.querySelector({selector!r}).getBoundingClientRect().top")


def test_class_page_leads_with_its_concepts_and_their_crops(tab):
    tab.goto(f"{MODEL}/classes/0967.html")
    page = tab.page
    assert page.locator("li.concept").count() == CONCEPTS
    # at 1280x900 the first card, its picture, share and crops are on the first screen, beside the picture
    card = page.locator("#concept-1")
    box = card.locator(".c-pic img").bounding_box()
    assert box["y"] + box["height"] <= 900 and box["width"] >= 160, box
    assert "10% of the logit" in card.locator("h3").inner_text()
    strip = card.locator(".c-crops img")
    assert strip.count() == CROPS and strip.first.bounding_box()["y"] < 900  # no click needed
    assert _top(tab, "#stage") < 900 and page.locator("#stage").bounding_box()["x"] < box["x"]
    # the parameters are folded, after the concepts
    assert page.locator("details.params").get_attribute("open") is None
    assert _top(tab, "details.params") > _top(tab, "#concept-1")
    images = tab.images()  # scrolls every image into view, so the lazy crops load too
    assert images and all(i["natural"] > 0 for i in images), images
    crops = [i for i in images if "/crops/" in i["src"]]
    assert len(crops) == CONCEPTS * CROPS and all(i["natural"] == 128 for i in crops)
    assert any(i["alt"] == "MACO visualization of concept 1 of 0967 espresso" for i in images)
    # the picture follows the attribution toggle
    assert card.locator(".c-pic img").get_attribute("src").endswith("/thumb-overlay.webp")
    page.keyboard.press("t")
    assert card.locator(".c-pic img").get_attribute("src").endswith("/thumb.webp")
    page.keyboard.press("t")
    tab.assert_clean()


def test_the_concept_dialog_opens_from_the_picture_and_the_button(tab):
    tab.goto(f"{MODEL}/classes/0967.html")
    page = tab.page
    assert not page.locator("#crops").is_visible()
    picture = page.locator("#concept-1 .c-pic")
    picture.click()
    assert page.locator("#crops").is_visible()
    assert page.locator("#crops h2").inner_text() == "Concept 1 of 0967 espresso · 10% of the logit"
    assert page.locator("#crops .crops-pic").get_attribute("src").endswith("/detail-overlay.webp")
    widths = _dialog_images(tab)
    assert len(widths) == CROPS + 1 and all(w > 0 for w in widths)
    assert page.evaluate("document.activeElement.id") == "crops-close"
    page.keyboard.press("Escape")
    assert not page.locator("#crops").is_visible()
    assert page.evaluate("document.activeElement.classList.contains('c-pic')")
    # a concept without a picture: its button, by key; the dialog shows its crops alone
    for _ in range(200):  # Tab to it (bounded: a renamed button fails the test instead of hanging it)
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == "all 10 crops, larger, of concept 3":
            break
    page.keyboard.press("Enter")
    assert page.locator("#crops h2").inner_text() == "Concept 3 of 0967 espresso · 8% of the logit"
    assert page.locator("#crops .crops-pic").count() == 0
    assert len(_dialog_images(tab)) == CROPS
    page.keyboard.press("Enter")  # on the focused Close button
    assert not page.locator("#crops").is_visible()
    page.keyboard.press("j")  # shortcuts work again once it is closed; j goes to the next rendered class
    page.wait_for_url("**/classes/0001.html")
    tab.assert_clean()


def test_shares_and_the_rest_add_up_to_the_logit_as_shown(tab):
    tab.goto(f"{MODEL}/classes/0967.html")
    cells = tab.page.evaluate("""() => [...document.querySelectorAll('table.shares tbody tr')].map(
      tr => [...tr.querySelectorAll('td')].slice(1).map(td => td.textContent))""")
    total = tab.page.evaluate("document.querySelector('table.shares tfoot td:nth-child(3)').textContent")
    number = lambda text: float(text.replace("\u2212", "-").rstrip("%"))  # noqa: E731
    assert len(cells) == CONCEPTS + 1
    assert abs(sum(number(v) for v, _ in cells) - number(total)) <= 0.005 * len(cells)
    assert abs(sum(number(p) for _, p in cells) - 100) <= 0.5 * len(cells)
    text = tab.page.inner_text("main")
    assert "-0%" not in text and "\u22120%" not in text and "top concept of 0" not in text
    tab.assert_clean()


def test_a_phone_reads_name_picture_concepts_then_the_rest(browser, site, server):
    errors: list[str] = []
    for base in (site.as_uri() + "/", server):
        context = browser.new_context(viewport={"width": 375, "height": 800})
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + f"{MODEL}/classes/0967.html")
        tops = page.evaluate("""() => ['h1', '#stage', '.concepts', '.preds', 'details.params'].map(
          s => document.querySelector(s).getBoundingClientRect().top)""")
        assert tops == sorted(tops), tops
        assert tops[2] < 1600  # the concepts come right after the picture
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        # the sections fold into a menu that works without script
        assert not page.locator(".top nav.nav").is_visible()
        assert not page.get_by_role("link", name="Layers").first.is_visible()
        page.click(".menu summary")
        page.locator(".menu nav a", has_text="Layers").click()
        page.wait_for_url("**/layers/index.html")
        # search results as wide as the screen
        page.fill("#q", "cat")
        box = page.locator("#results").bounding_box()
        assert box["width"] >= 375 - 2 * 14, box
        assert errors == []
        context.close()


def test_similar_concept_links_land_on_their_anchor(tab):
    tab.goto(f"{MODEL}/classes/0967.html")
    page = tab.page
    link = page.locator("#concept-1 .c-links a[href*='#concept-']").first
    target = link.get_attribute("href").split("#")[1]
    link.click()
    page.wait_for_url(f"**/classes/0001.html#{target}")
    assert page.evaluate("document.querySelector(':target').id") == target
    assert "render failed" in page.locator("#concept-1").inner_text()
    tab.assert_clean()


SOURCE_BOXES = """() => [...document.querySelectorAll('.example-list li')].map(li => {
  const img = li.querySelector('.ex-src img'), rect = li.querySelector('.ex-src rect');
  const edges = r => r && [r.left, r.top, r.right, r.bottom];
  return {natural: img && img.naturalWidth, image: edges(img && img.getBoundingClientRect()),
          box: edges(rect && rect.getBoundingClientRect())};
})"""


def test_channel_page_dataset_examples(tab):
    tab.goto(f"{MODEL}/layers/conv_head/c0042.html")
    page = tab.page
    examples = page.locator(".example-list img.crop")
    assert examples.count() == EXAMPLES
    # beside the picture, above the fold, shown at 128 px or more: all sixteen on the first screen
    first = examples.first.bounding_box()
    assert first["y"] < 900 and first["width"] >= 128 and first["x"] > page.locator("#stage").bounding_box()["x"]
    bottoms = [b["y"] + b["height"] for b in (examples.nth(i).bounding_box() for i in range(EXAMPLES))]
    assert all(bottom <= 900 for bottom in bottoms), bottoms
    images = tab.images()
    crops = [i for i in images if "/crops/" in i["src"]]
    assert len(crops) == 2 * EXAMPLES and all(i["natural"] == 128 for i in crops)  # each crop, and its source's
    # every example shows its source thumbnail, loaded, with the region's box inside it
    shown = page.evaluate(SOURCE_BOXES)
    assert len(shown) == EXAMPLES and all(s["natural"] == 128 for s in shown)
    for s in shown:
        (left, top, right, bottom), (x0, y0, x1, y1) = s["image"], s["box"]
        assert left - 1 <= x0 < x1 <= right + 1 and top - 1 <= y0 < y1 <= bottom + 1, s
        assert x1 - x0 < right - left  # the region is a part of the source, drawn to scale
    page.locator(".example-list a", has_text="espresso").first.click()
    page.wait_for_url("**/classes/0967.html")
    tab.assert_clean()


def test_channel_page_on_a_phone_fits_the_screen(browser, site):
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto((site / MODEL / "layers" / "conv_head" / "c0042.html").as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for box in page.evaluate(SOURCE_BOXES):
        assert box["image"][0] >= 0 and box["image"][2] <= 375
    context.close()


def test_index_shows_classes_by_their_top_concept_on_request(tab):
    tab.goto(f"{MODEL}/index.html")
    page = tab.page
    tile = page.locator("#grid a.tile").nth(967).locator("img")
    logit = tile.get_attribute("src")
    assert page.get_attribute("button[data-by=logit]", "aria-pressed") == "true"
    assert page.inner_text("button[data-by=logit]") == "Class picture"
    assert "most important concept" in page.get_attribute("button[data-by=concept]", "title")
    page.click("button[data-by=concept]")
    tile = page.locator("#grid a.tile").nth(967).locator("img")
    concept = tile.get_attribute("src")
    view = logit.rsplit("/", 1)[1]  # the picture or its attribution view, whichever the grid shows
    assert concept != logit and concept.endswith(f"/{view}")
    assert page.locator("#grid a.tile").nth(607).locator("img").get_attribute("src").endswith(f"/{view}")
    assert all(i["natural"] > 0 for i in tab.images())
    tab.goto(f"{MODEL}/classes/0000.html")
    tab.goto(f"{MODEL}/index.html")  # the choice persists, like the other view toggles
    assert page.locator("#grid a.tile").nth(967).locator("img").get_attribute("src") == concept
    assert page.get_attribute("button[data-by=concept]", "aria-pressed") == "true"
    tab.assert_clean()


def test_a_layer_shows_its_channels_by_their_top_example_on_request(tab):
    tab.goto(f"{MODEL}/layers/conv_head/index.html")
    page = tab.page
    tiles = page.locator("#grid a.tile img")
    assert tiles.first.get_attribute("src").endswith("overlay.webp")
    assert page.locator("#grid a.tile .cap").first.inner_text() == "channel 42"
    assert page.locator("#grid a.tile").first.get_attribute("title") == "conv_head · channel 42"
    page.click("button[data-layer-by=example]")
    srcs = [tiles.nth(i).get_attribute("src") for i in range(tiles.count())]
    assert srcs and all("/crops/" in s for s in srcs)
    assert all(i["natural"] > 0 for i in tab.images())
    tab.assert_clean()


def test_a_picture_the_generator_calls_another_class_says_so(tab):
    tab.goto(f"{MODEL}/index.html")
    page = tab.page
    mark = page.locator("#grid a.tile").nth(607).locator(".called-mark")
    assert mark.get_attribute("title") == f"{MODEL} calls this picture tiger cat"
    assert mark.get_attribute("aria-label") == mark.get_attribute("title") and mark.is_visible()
    assert page.locator("#grid .called-mark").count() == 1
    legend = page.locator("p.called-legend")  # the mark explained in words, for a reader who cannot hover
    assert legend.is_visible() and "reads it as another class (1 class)" in legend.inner_text()
    assert legend.bounding_box()["y"] < page.locator("#grid").bounding_box()["y"]
    tab.goto(f"{MODEL}/classes/0607.html")
    note = page.locator("p.called")
    assert note.is_visible() and note.inner_text().startswith(f"{MODEL} calls this picture tiger cat")
    note.locator("a").click()
    page.wait_for_url("**/classes/0282.html")
    tab.assert_clean()


def _site_keeping(root: Path, kinds: tuple[str, ...]) -> Path:
    """The concept site built from its cache less every render whose objective is not of `kinds`."""
    import shutil

    cache = concept_cache(root / "cache")
    for folder, data in list(records(cache)):
        if data["objective"]["kind"] not in kinds:
            shutil.rmtree(folder)
    build(cache, root / "site")
    return root / "site"


@pytest.fixture(scope="module")
def concepts_alone(tmp_path_factory) -> Path:
    """Before any render: banks and dataset examples only."""
    return _site_keeping(tmp_path_factory.mktemp("concepts-alone"), ())


def test_before_any_picture_the_index_and_layers_open_on_photo_patches(browser, concepts_alone):
    from tests.browser_support import open_tab

    tab = open_tab(browser, concepts_alone.as_uri() + "/")
    page = tab.page
    tab.goto(f"{MODEL}/index.html")
    # no choice saved yet: the classes by their top concept, pending classes hidden, the two banks' crops shown
    assert page.is_checked("#hide-pending")
    assert page.get_attribute("button[data-by=concept]", "aria-pressed") == "true"
    tiles = page.locator("#grid a.tile:visible")
    assert tiles.count() == 2
    assert [tiles.nth(i).locator(".cap").inner_text().split() for i in range(2)] == [
        ["0001", "goldfish"], ["0967", "espresso"]]
    assert all(tiles.nth(i).locator(".photo-mark").inner_text() == "photo" for i in range(2))
    assert "has no picture yet" in tiles.first.get_attribute("title")
    srcs = [tiles.nth(i).locator("img").get_attribute("src") for i in range(2)]
    assert all("/crops/" in s and s.endswith(".webp") for s in srcs)
    loaded = [i for i in tab.images() if "/crops/" in i["src"]]
    assert len(loaded) == 2 and all(i["natural"] > 0 for i in loaded)
    # the class picture view has nothing to show but pending tiles, which "Hide pending" hides
    page.click("button[data-by=logit]")
    assert page.locator("#grid a.tile:visible").count() == 0
    page.uncheck("#hide-pending")
    assert page.locator("#grid a.tile:visible").count() == 1000
    tab.goto(f"{MODEL}/index.html")  # the reader's choice is kept over the site's default
    assert page.get_attribute("button[data-by=logit]", "aria-pressed") == "true"
    assert page.locator("#grid a.tile:visible").count() == 1000
    page.click("button[data-by=concept]")
    tab.goto(f"{MODEL}/layers/conv_head/index.html")
    assert page.get_attribute("button[data-layer-by=example]", "aria-pressed") == "true"
    channels = page.locator("#grid a.tile img")
    assert channels.count() == 2 and all("/crops/" in channels.nth(i).get_attribute("src") for i in range(2))
    assert page.locator("#grid a.tile .photo-mark").count() == 0  # the examples' view is all photos
    channels.first.click()
    page.wait_for_url("**/layers/conv_head/c0042.html")
    assert page.locator(".example-list img").count() >= EXAMPLES
    tab.assert_clean()
    page.context.close()


@pytest.fixture(scope="module")
def concept_pictures_alone(tmp_path_factory) -> Path:
    """Concept pictures but no class or channel picture (the notebook's `add(visualize(model, explained))`):
    class 967's top concept rendered, class 1's failed."""
    return _site_keeping(tmp_path_factory.mktemp("concept-pictures-alone"), ("concept",))


def test_concept_pictures_without_class_pictures_open_the_index_on_them(browser, concept_pictures_alone):
    from tests.browser_support import open_tab

    tab = open_tab(browser, concept_pictures_alone.as_uri() + "/")
    page = tab.page
    tab.goto(f"{MODEL}/index.html")
    assert page.get_attribute("button[data-by=concept]", "aria-pressed") == "true" and page.is_checked("#hide-pending")
    tiles = page.locator("#grid a.tile:visible")
    assert tiles.count() == 2
    goldfish, espresso = tiles.nth(0), tiles.nth(1)
    assert espresso.locator(".cap").inner_text().split() == ["0967", "espresso"]
    assert "/media/" in espresso.locator("img").get_attribute("src") and espresso.locator(".photo-mark").count() == 0
    assert "/crops/" in goldfish.locator("img").get_attribute("src")  # its concept's render failed
    assert goldfish.locator(".photo-mark").count() == 1 and "has no picture yet" in goldfish.get_attribute("title")
    assert all(i["natural"] > 0 for i in tab.images())
    # its class page has no class picture, but the toggle works on its concept's picture
    tab.goto(f"{MODEL}/classes/0967.html")
    assert page.is_enabled("button[data-view=plain]")
    page.click("button[data-view=plain]")
    assert page.locator(".concept img").first.get_attribute("src").endswith("/thumb.webp")
    tab.assert_clean()
    page.context.close()


def test_on_a_phone_a_class_without_its_picture_reaches_its_concepts_on_the_first_screen(browser, concepts_alone):
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto((concepts_alone / MODEL / "classes" / "0967.html").as_uri())
    stage = page.locator("#stage").bounding_box()
    assert stage["height"] < 200  # the placeholder says it in a line or two, not in a 347 px square
    assert page.evaluate("document.querySelector('.concepts').getBoundingClientRect().top") < 800
    context.close()
