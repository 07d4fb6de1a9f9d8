"""Concepts and dataset examples in headless Chromium, from file:// and from a server subpath:
pictures and crops load, the crops dialog opens by click or key and closes on Escape with focus
back, similar-concept links land on their anchor, and the index's top-concept view persists."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas.site.build import build
from tests.browser_support import Tab
from tests.concept_site_support import CONCEPTS, CROPS, concept_cache

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("concept-browser")
    out = root / "site"
    build(concept_cache(root / "cache"), out)
    return out




def _dialog_images(tab: Tab) -> list[int]:
    return tab.page.evaluate("""async () => {
      const imgs = [...document.querySelectorAll('#crops img')];
      await Promise.all(imgs.map(i => i.complete ? null : new Promise(done => {
        i.addEventListener('load', done, {once: true}); i.addEventListener('error', done, {once: true}); })));
      return imgs.map(i => i.naturalWidth);
    }""")


def test_class_page_concepts_and_their_crops(tab):
    tab.goto("classes/0967.html")
    page = tab.page
    assert page.locator("li.concept").count() == CONCEPTS
    images = tab.images()
    assert images and all(i["natural"] > 0 for i in images), images
    assert any(i["alt"] == "MACO visualization of concept 1 of 0967 espresso" for i in images)
    assert not page.locator("#crops").is_visible()
    opener = page.get_by_role("button", name="Show the 10 crops of concept 2")
    opener.click()
    assert page.locator("#crops").is_visible()
    assert page.locator("#crops h2").inner_text() == "10 crops of concept 2"
    widths = _dialog_images(tab)
    assert len(widths) == CROPS and all(w == 64 for w in widths)
    assert page.evaluate("document.activeElement.id") == "crops-close"
    page.keyboard.press("Escape")
    assert not page.locator("#crops").is_visible()
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Show the 10 crops of concept 2"
    # by key: Tab to the next concept's button, Enter opens its crops, the Close button shuts them
    page.keyboard.press("Tab")
    while page.evaluate("document.activeElement.getAttribute('aria-label') || ''") != \
            "Show the 10 crops of concept 3":
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.locator("#crops h2").inner_text() == "10 crops of concept 3"
    page.keyboard.press("Enter")  # on the focused Close button
    assert not page.locator("#crops").is_visible()
    page.keyboard.press("j")  # shortcuts work again once it is closed
    page.wait_for_url("**/classes/0968.html")
    tab.assert_clean()


def test_similar_concept_links_land_on_their_anchor(tab):
    tab.goto("classes/0967.html")
    page = tab.page
    link = page.locator("#concept-1 .c-links a[href*='#concept-']").first
    target = link.get_attribute("href").split("#")[1]
    link.click()
    page.wait_for_url(f"**/classes/0001.html#{target}")
    assert page.evaluate("document.querySelector(':target').id") == target
    assert "render failed" in page.locator("#concept-1").inner_text()
    tab.assert_clean()


def test_channel_page_dataset_examples(tab):
    tab.goto("layers/conv_head/c0042.html")
    page = tab.page
    examples = page.locator(".example-list img")
    assert examples.count() == 9
    images = tab.images()
    assert all(i["natural"] == 48 for i in images if "/crops/" in i["src"])
    assert len([i for i in images if "/crops/" in i["src"]]) == 9
    page.locator(".example-list a", has_text="espresso").first.click()
    page.wait_for_url("**/classes/0967.html")
    tab.assert_clean()


def test_index_shows_classes_by_their_top_concept_on_request(tab):
    tab.goto("index.html")
    page = tab.page
    tile = page.locator("#grid a.tile").nth(967).locator("img")
    logit = tile.get_attribute("src")
    assert page.get_attribute("button[data-by=logit]", "aria-pressed") == "true"
    page.click("button[data-by=concept]")
    tile = page.locator("#grid a.tile").nth(967).locator("img")
    concept = tile.get_attribute("src")
    view = logit.rsplit("/", 1)[1]  # the picture or its attribution view, whichever the grid shows
    assert concept != logit and concept.endswith(f"/{view}")
    assert page.locator("#grid a.tile").nth(607).locator("img").get_attribute("src").endswith(f"/{view}")
    assert all(i["natural"] > 0 for i in tab.images())
    tab.goto("classes/0000.html")
    tab.goto("index.html")  # the choice persists, like the other view toggles
    assert page.locator("#grid a.tile").nth(967).locator("img").get_attribute("src") == concept
    assert page.get_attribute("button[data-by=concept]", "aria-pressed") == "true"
    tab.assert_clean()
