"""The sample site in headless Chromium (Debian's, driven by Playwright): from file:// and from a
server subpath, search, the overlay toggle, keys, images, escaping and the CSP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas.site.build import build
from tests.browser_support import Tab, open_tab
from tests.site_support import MODEL, copy_cache, patch_class_name, sample_site

pytestmark = pytest.mark.browser



@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return sample_site(tmp_path_factory)








def _visible_stage_src(tab: Tab) -> list[str]:
    return tab.page.eval_on_selector_all("#stage img",
                                         "els => els.filter(e => !e.hidden).map(e => e.getAttribute('src'))")


def test_index_grid_from_file_and_from_a_subpath(tab):
    tab.goto(f"{MODEL}/index.html")
    page = tab.page
    assert page.locator("#grid a.tile").count() == 1000
    assert page.locator("#grid a.tile.pending .ph").count() == 993  # a styled placeholder, no <img>
    assert page.locator("#grid a.tile.failed .ph").count() == 1
    assert page.locator("#grid a.tile.ok img").count() == 6
    assert page.locator("#grid a.tile").nth(607).get_attribute("href") == f"../{MODEL}/classes/0607.html"
    images = tab.images()
    assert images and all(i["natural"] > 0 for i in images), images
    assert all(i["alt"] is not None and i["width"] and i["height"] for i in images)  # alt="": the caption names it
    assert page.is_checked("#hide-pending")  # 6 of 1000 rendered: the grid opens on what exists
    page.uncheck("#hide-pending")
    assert page.locator("#grid a.tile:visible").count() == 1000
    page.check("#hide-pending")
    assert page.locator("#grid a.tile:visible").count() == 7
    srcs = page.eval_on_selector_all("#grid img", "els => els.map(e => e.getAttribute('src'))")
    assert len(srcs) == 6 and all(s.endswith("/thumb-overlay.webp") for s in srcs)  # the attribution view first
    page.keyboard.press("t")  # the grid follows the image / attribution toggle too
    srcs = page.eval_on_selector_all("#grid img", "els => els.map(e => e.getAttribute('src'))")
    assert len(srcs) == 6 and all(s.endswith("/thumb.webp") for s in srcs)
    images = tab.images()
    assert images and all(i["natural"] > 0 for i in images)
    tab.assert_clean()


def test_search_by_synonym_index_and_wordnet_id(tab):
    tab.goto(f"{MODEL}/classes/0500.html")
    page = tab.page
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("Tinca")
    first = page.locator("#results [role=option]").first
    assert "tench" in first.inner_text() and first.get_attribute("aria-selected") == "true"
    page.keyboard.press("Enter")
    page.wait_for_url("**/classes/0000.html")

    page.keyboard.press("/")
    page.keyboard.type("crane")  # two classes share the name: 134 (the bird) and 517 (the machine)
    options = page.locator("#results [role=option]")
    assert "0134" in options.nth(0).inner_text() and "0517" in options.nth(1).inner_text()
    page.keyboard.press("ArrowDown")
    assert options.nth(1).get_attribute("aria-selected") == "true"
    assert options.nth(0).get_attribute("aria-selected") == "false"
    page.keyboard.press("Enter")
    page.wait_for_url("**/classes/0517.html")

    page.keyboard.press("/")
    page.keyboard.type("607")
    assert "jack-o'-lantern" in page.locator("#results [role=option]").first.inner_text()
    page.keyboard.press("Enter")
    page.wait_for_url("**/classes/0607.html")
    assert page.locator("h1").inner_text().endswith("jack-o'-lantern")

    page.fill("#q", "n03126707")  # crane (the machine): same name as class 134, other WordNet id
    assert "0517" in page.locator("#results [role=option]").first.inner_text()
    page.fill("#q", "conv_head")
    results = page.locator("#results").inner_text()
    assert "conv_head · channel 42" in results and "c0042" not in results  # a channel is named in words
    # whole words before the starts of words, and those before any substring
    page.fill("#q", "cat")
    names = [n.split("\n")[0] for n in page.locator("#results .r-name").all_inner_texts()]
    assert names[:5] == ["tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"], names
    assert names.index("catamaran") > names.index("Egyptian cat")
    page.fill("#q", "zzzz no such thing")
    assert "No class or channel matches" in page.locator("#results").inner_text()
    tab.assert_clean()


def test_overlay_toggle_and_seeds(tab):
    tab.goto(f"{MODEL}/classes/0967.html")
    page = tab.page
    overlay = _visible_stage_src(tab)  # the attribution view is the default
    assert len(overlay) == 1 and overlay[0].endswith("/detail-overlay.webp")
    assert page.get_attribute("button[data-view=overlay]", "aria-pressed") == "true"
    assert page.locator("button.seed img").first.get_attribute("src").endswith("/thumb-overlay.webp")
    page.click("button[data-view=plain]")
    plain = _visible_stage_src(tab)
    assert len(plain) == 1 and plain[0].endswith("/detail.webp")
    assert page.get_attribute("button[data-view=plain]", "aria-pressed") == "true"
    assert page.locator("button.seed img").first.get_attribute("src").endswith("/thumb.webp")
    page.keyboard.press("t")
    assert _visible_stage_src(tab) == overlay
    page.keyboard.press("t")
    page.click("button.seed[data-seed='1']")
    seed1 = _visible_stage_src(tab)
    assert len(seed1) == 1 and seed1 != plain
    assert page.locator(".seed-panel[data-seed='1']").first.is_visible()
    assert not page.locator(".seed-panel[data-seed='0']").first.is_visible()
    # The chosen view follows the reader to the next page.
    tab.goto(f"{MODEL}/classes/0607.html")
    assert _visible_stage_src(tab)[0].endswith("/detail.webp")
    images = tab.images()
    assert images and all(i["natural"] > 0 for i in images)
    tab.assert_clean()


def test_keys_prev_next_random_and_help(tab, site):
    index = json.loads((site / MODEL / "data/index.json").read_text(encoding="utf-8"))
    rendered = {c["page"] for c in index["classes"] if c["status"] == "ok"}
    tab.goto(f"{MODEL}/classes/0607.html")
    page = tab.page
    # prev/next and the keys step through rendered classes (1, 134, 207, 607, 739, 967), not the pending ones
    for key, expected in [("ArrowRight", "0739"), ("k", "0607"), ("j", "0739"), ("ArrowLeft", "0607"),
                          ("k", "0207"), ("j", "0607")]:
        page.keyboard.press(key)
        page.wait_for_url(f"**/classes/{expected}.html")
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    page.keyboard.press("r")
    page.wait_for_function("!location.pathname.endsWith('/classes/0607.html')")
    assert any(tab.url.endswith(p) for p in rendered)
    tab.goto(f"{MODEL}/layers/conv_head/c0042.html")
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**/layers/conv_head/c0101.html")
    page.keyboard.press("r")
    page.wait_for_url("**/layers/conv_head/c0042.html")  # the only other rendered channel of the layer
    page.click("a[rel=prev]")
    page.wait_for_url("**/layers/conv_head/c0101.html")
    tab.assert_clean()


@pytest.mark.parametrize("scheme", ["file", "http"])
def test_every_image_on_every_kind_of_page_loads(browser, site, server, scheme):
    tab = open_tab(browser, site.as_uri() + "/" if scheme == "file" else server)
    pages = [f"{MODEL}/{rel}" for rel in ["index.html", "classes/0967.html", "classes/0607.html", "classes/0517.html",
                                          "classes/0000.html", "layers/index.html", "layers/blocks.5/index.html",
                                          "layers/blocks.3/index.html", "layers/conv_head/c0042.html", "about.html"]]
    pages += ["index.html", "404.html"]  # the root: the models, and the page a server shows for a missing one
    seen = 0
    for rel in pages:
        tab.goto(rel)
        images = tab.images()
        seen += len(images)
        broken = [i["src"] for i in images if i["natural"] == 0]
        assert broken == [], rel
        # every picture has an alt (test_site_a11y_browser says which may be empty), a width and a height
        assert all(i["alt"] is not None and i["width"] and i["height"] for i in images), rel
        assert tab.page.locator("meta[http-equiv=Content-Security-Policy]").count() == 1
    assert seen >= 20  # thumbnails, detail images (plain and overlay), seeds, neighbours, layer samples
    tab.assert_clean()
    tab.page.context.close()


def test_no_page_scrolls_sideways_on_a_phone(browser, site):
    """At 360 px every kind of page fits the screen, the class page's judging table included."""
    context = browser.new_context(viewport={"width": 360, "height": 800})
    page = context.new_page()
    for rel in ["index.html", "classes/0607.html", "classes/0967.html", "classes/0517.html", "layers/index.html",
                "layers/blocks.5/index.html", "layers/conv_head/c0042.html", "about.html"]:
        page.goto(site.as_uri() + f"/{MODEL}/" + rel)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, rel
    for rel in ["index.html", "404.html"]:
        page.goto(site.as_uri() + "/" + rel)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, rel
    page.goto(site.as_uri() + f"/{MODEL}/classes/0607.html")
    box = page.locator("table.judging").first.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
    context.close()


def test_a_phone_reaches_the_class_grid_on_its_first_screen(browser, site):
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto(site.as_uri() + f"/{MODEL}/index.html")
    page.wait_for_selector("#grid .tile:not(.pending)")
    tile = page.locator("#grid .tile:visible").first.bounding_box()
    card = page.locator(".hero .card").bounding_box()
    assert tile is not None and tile["y"] + tile["height"] <= 800, tile
    assert card is not None and card["y"] > tile["y"]  # the model card follows the grid on a phone
    assert not page.locator(".lede .more").is_visible()
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.locator(".lede .more").is_visible()  # the whole lede, and the card beside it, on a desktop
    card = page.locator(".hero .card").bounding_box()
    assert card is not None and card["y"] < page.locator("#grid").bounding_box()["y"]
    context.close()


def test_hostile_label_renders_as_text(browser, tmp_path):
    evil = "Evil \"'<>&</script><img src=x onerror=alert(1)> name"
    cache = copy_cache(tmp_path / "cache")
    patch_class_name(cache, 607, evil)
    out = tmp_path / "site"
    build(cache, out)
    tab = open_tab(browser, out.as_uri() + "/")
    tab.goto(f"{MODEL}/classes/0607.html")
    page = tab.page
    assert page.locator("h1").inner_text() == f"0607 {evil}"
    assert evil in page.title()
    assert page.locator("script").count() == 2 and page.locator("img[src=x]").count() == 0
    page.fill("#q", "onerror")
    assert evil in page.locator("#results").inner_text()
    tab.goto(f"{MODEL}/index.html")
    assert page.locator("#grid a.tile").nth(607).get_attribute("title") == f"0607 {evil}"
    assert page.locator("img[src=x]").count() == 0
    tab.assert_clean()
    tab.page.context.close()


def test_csp_blocks_requests_outside_the_site(tab):
    tab.goto(f"{MODEL}/index.html")
    outside = "http://127.0.0.1:9/probe.png"
    directive = tab.page.evaluate(
        """url => new Promise(done => {
             document.addEventListener('securitypolicyviolation', e => done(e.violatedDirective), {once: true});
             const img = new Image(); img.src = url; document.body.appendChild(img);
           })""",
        outside,
    )
    assert directive == "img-src"
    assert tab.page.evaluate("fetch('http://127.0.0.1:9/x').then(() => 'sent', () => 'blocked')") == "blocked"
    # Playwright reports the attempts, and that Chromium stopped them before they left the page.
    tried = {r for r in tab.requests if r.startswith("http://127.0.0.1:9/")}
    assert tried <= {outside, "http://127.0.0.1:9/x"}
    assert set(tab.failed) >= tried and all("csp" in why.lower() for url, why in tab.failed.items() if url in tried)
    assert tab.errors and all("Content Security Policy" in e or "Failed to fetch" in e for e in tab.errors)


@pytest.mark.parametrize(("scheme", "dark"), [("light", False), ("dark", True)])
def test_light_and_dark_themes_and_visible_focus(browser, site, scheme, dark):
    tab = open_tab(browser, site.as_uri() + "/", color_scheme=scheme)
    tab.goto(f"{MODEL}/classes/0607.html")
    rgb = tab.page.evaluate("getComputedStyle(document.body).backgroundColor")
    r, g, b = (int(v) for v in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    assert ((r + g + b) / 3 < 60) is dark
    tab.page.keyboard.press("Tab")
    tab.page.keyboard.press("Tab")
    outline = tab.page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    tab.assert_clean()
    tab.page.context.close()


def test_a_class_page_without_concepts_keeps_its_answer_on_the_first_screen(tab):
    tab.goto(f"{MODEL}/classes/0607.html")
    page = tab.page
    assert page.locator(".concepts").count() == 0
    tops = page.evaluate("""() => ['h1', '#stage', '.preds'].map(
      s => document.querySelector(s).getBoundingClientRect().top)""")
    assert all(top < 900 for top in tops), tops
    assert page.locator("details.params").get_attribute("open") is None
    tab.assert_clean()
