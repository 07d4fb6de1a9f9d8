"""Accessibility of the built site in headless Chromium: language, headings, landmarks and the skip
link; alt text; a name for every control; toggles that say their state and work from the keyboard;
a visible focus outline; text contrast (WCAG 2 AA) in the light and the dark theme; reduced motion;
single-key shortcuts that can be turned off. Each check runs on the pages a reader spends time on:
a class page with concepts and seeds, a channel page with dataset examples, a model's index and the
compare page of an atlas of two models."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from atlas.cache import Cache
from atlas.kind import content_key
from atlas.record import ATTRIBUTION, IMAGE, loads
from atlas.site.build import build
from tests.browser_support import open_tab
from tests.concept_site_support import concept_cache
from tests.site_support import MODEL, records

pytestmark = pytest.mark.browser

OTHER = "efficientnet_lite1"  # a second model: its pictures are copies of some of the first's
CLASS, CHANNEL, INDEX, COMPARE = (f"{MODEL}/classes/0967.html", f"{MODEL}/layers/conv_head/c0042.html",
                                  f"{MODEL}/index.html", "compare/0967.html")
PAGES = [CLASS, CHANNEL, INDEX, COMPARE]
MORE = ["index.html", f"{MODEL}/layers/index.html", f"{MODEL}/layers/conv_head/index.html", f"{MODEL}/about.html"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("a11y")
    cache = concept_cache(root / "cache")
    info = json.loads((cache / "models" / f"{MODEL}.json").read_text())
    (cache / "models" / f"{OTHER}.json").write_text(json.dumps(dict(info, name=OTHER)))
    for folder, data in records(cache):
        if data["objective"]["id"] == "class:607":  # its generator reads it as tiger cat: the index marks its tile
            generator = next(m for m in data["judging"]["whole"]["models"] if m["role"] == "generator")
            generator["top5"][0] = {"index": 282, "prob": 0.61}
            (folder / "record.json").write_text(json.dumps(data))
        if data["objective"]["id"] in ("class:967", "class:607") and data["seed_index"] == 0:
            record = loads((folder / "record.json").read_bytes())
            files = {name: (folder / name).read_bytes() for name in (IMAGE, ATTRIBUTION)}
            Cache(cache).write_entry(content_key({OTHER: data["objective"]["id"]}), files,
                                     dataclasses.replace(record, model=dataclasses.replace(record.model, name=OTHER)))
    build(cache, root / "site", order=[MODEL, OTHER])
    return root / "site"


def _open(browser, site: Path, rel: str, **context):  # noqa: ANN001, ANN202 - Playwright objects
    tab = open_tab(browser, site.as_uri() + "/", **context)
    tab.goto(rel)
    return tab


# Colour maths as WCAG 2 defines it, and what is painted behind a point: the element's own background,
# its ancestors' and whatever the hit test finds under them, down to the first opaque one; a picture
# under a translucent layer counts as black and as white, and a striped background by each stripe.
COLOURS = """
  const parse = (c) => {
    let m = c.match(/^rgba?\\(([^)]+)\\)/);
    if (m) { const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
             return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; }
    m = c.match(/^color\\(srgb ([^)]+)\\)/);
    if (m) { const p = m[1].split(/[\\s\\/]+/).filter(Boolean).map(Number);
             return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1]; }
    throw new Error("unread colour " + c);
  };
  const over = (top, below) => [0, 1, 2].map(i => top[i] * top[3] + below[i] * (1 - top[3])).concat([1]);
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const picture = (e) => ["IMG", "VIDEO", "CANVAS"].includes(e.tagName)
    || /url\\(/.test(getComputedStyle(e).backgroundImage);
  const behind = (el, x, y) => {
    const chain = [];
    for (let e = el; e; e = e.parentElement) chain.push(e);
    const hits = document.elementsFromPoint(x, y);
    const i = hits.findIndex(h => chain.includes(h));
    return i < 0 ? chain : chain.slice(0, chain.indexOf(hits[i])).concat(hits.slice(i));
  };
  const backgrounds = (el, x, y) => {
    const layers = [];
    let found = [[255, 255, 255, 1]];
    for (const e of behind(el, x, y)) {
      if (picture(e)) { found = [[0, 0, 0, 1], [255, 255, 255, 1]]; break; }
      const s = getComputedStyle(e);
      const color = parse(s.backgroundColor);
      const stripes = (s.backgroundImage.match(/rgba?\\([^)]+\\)|color\\(srgb [^)]+\\)/g) || []).map(parse);
      if (color[3] >= 1) { found = [color]; layers.push({ color: [0, 0, 0, 0], stripes }); break; }
      layers.push({ color, stripes });
    }
    for (const layer of layers.reverse()) {
      found = found.map(c => over(layer.color, c));
      if (layer.stripes.length) found = found.flatMap(c => [c, ...layer.stripes.map(s => over(s, c))]);
    }
    return found;
  };
  const worst = (fg, el, x, y) => Math.min(...backgrounds(el, x, y).map(bg => ratio(over(fg, bg), bg)));
"""

# Every visible text node, and the search box's placeholder: its worst contrast and what it needs
# (3:1 for large text, 24 px or 18.66 px bold, else 4.5:1). Text of a disabled control needs none.
TEXT_CONTRAST = "() => {" + COLOURS + """
  const opacity = (el) => {
    let o = 1;
    for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
    return o;
  };
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || el.closest(":disabled")) continue;
    if (!el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const rect = [...range.getClientRects()].find(r => r.width > 1 && r.height > 1);
    if (!rect) continue;  // nothing drawn, or a one-pixel screen-reader-only box
    const s = getComputedStyle(el);
    const fg = parse(s.color);
    fg[3] *= opacity(el);
    const size = parseFloat(s.fontSize), large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
    const x = rect.left + Math.min(rect.width / 2, 4), y = rect.top + rect.height / 2;
    found.push({ text: node.textContent.trim().slice(0, 40), where: el.tagName + "." + el.className,
                 ratio: worst(fg, el, x, y), need: large ? 3 : 4.5 });
  }
  for (const input of document.querySelectorAll("input[placeholder]")) {
    if (!input.checkVisibility() || input.value) continue;
    const r = input.getBoundingClientRect(), fg = parse(getComputedStyle(input, "::placeholder").color);
    found.push({ text: input.placeholder, where: "placeholder", need: 4.5,
                 ratio: worst(fg, input, r.left + 4, r.top + r.height / 2) });
  }
  return found;
}"""

# The focused element: its outline, how it contrasts with what is behind it, what clips it.
FOCUSED = "() => {" + COLOURS + """
  const el = document.activeElement;
  const s = getComputedStyle(el), r = el.getBoundingClientRect();
  const reach = parseFloat(s.outlineWidth) + parseFloat(s.outlineOffset);
  const clippedBy = [];
  for (let e = el.parentElement; e; e = e.parentElement) {
    const c = getComputedStyle(e);
    if (c.overflowX === "visible" && c.overflowY === "visible") continue;
    const b = e.getBoundingClientRect();
    if (r.left - reach < b.left - 0.5 || r.right + reach > b.right + 0.5 || r.top - reach < b.top - 0.5
        || r.bottom + reach > b.bottom + 0.5) clippedBy.push(e.tagName + "." + e.className);
  }
  const x = Math.max(0, r.left - reach), y = Math.max(0, r.top + r.height / 2);
  return { what: el.outerHTML.slice(0, 90), style: s.outlineStyle, width: parseFloat(s.outlineWidth),
           contrast: s.outlineStyle === "none" ? 0 : worst(parse(s.outlineColor), el.parentElement, x, y),
           shown: el.checkVisibility({ visibilityProperty: true }) && r.width > 0 && r.height > 0, clippedBy };
}"""


def _tall(tab) -> None:  # noqa: ANN001 - a Tab
    """The whole page in one viewport, so that the hit test reaches every line."""
    height = tab.page.evaluate("document.documentElement.scrollHeight")
    tab.page.set_viewport_size({"width": 1280, "height": min(height, 8000)})


def test_the_contrast_check_sees_grey_on_grey(browser, site):
    """The contrast check itself: #777 on #eee (3.9:1) is too faint for body text (4.5:1), enough for
    large text (3:1)."""
    tab = _open(browser, site, INDEX)
    tab.page.evaluate("""() => {
      const main = document.querySelector('main');
      main.replaceChildren();
      main.style.background = '#eee';
      for (const size of ['15px', '26px']) {
        const p = document.createElement('p');
        p.textContent = 'grey on grey';
        p.style.color = '#777';
        p.style.fontSize = size;
        main.appendChild(p);
      }
    }""")
    grey = [t for t in tab.page.evaluate(TEXT_CONTRAST) if t["text"] == "grey on grey"]
    assert [(round(t["ratio"], 1), t["need"]) for t in grey] == [(3.9, 4.5), (3.9, 3)]
    tab.page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("rel", PAGES)
def test_text_contrast_meets_wcag_aa(browser, site, rel, scheme):
    tab = _open(browser, site, rel, color_scheme=scheme)
    _tall(tab)
    texts = tab.page.evaluate(TEXT_CONTRAST)
    assert len(texts) > 40  # the page's text, not an empty walk
    assert rel != INDEX or any(t["text"] == "!" for t in texts)  # the mark on a tile the generator misreads
    low = {(t["where"], t["text"], round(t["ratio"], 2)) for t in texts if t["ratio"] < t["need"]}
    assert low == set(), sorted(low)
    tab.assert_clean()
    tab.page.context.close()


@pytest.mark.parametrize("rel", PAGES + MORE)
def test_language_one_h1_heading_order_landmarks_and_a_skip_link(browser, site, rel):
    tab = _open(browser, site, rel)
    page = tab.page
    assert page.get_attribute("html", "lang") == "en"
    levels = page.eval_on_selector_all("h1, h2, h3, h4, h5, h6", "hs => hs.filter(h => !h.closest('dialog'))"
                                                                  ".map(h => Number(h.tagName[1]))")
    assert levels[0] == 1 and levels.count(1) == 1, levels
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:], strict=False)), levels  # no level skipped
    for landmark in ["body > header", "main", "body > footer"]:
        assert page.locator(landmark).count() == 1, landmark
    assert page.locator("header nav").count() >= 1
    # the first Tab reaches the skip link, shown on screen; it leads into <main>
    page.keyboard.press("Tab")
    skip = page.evaluate("""() => {
      const a = document.activeElement, r = a.getBoundingClientRect();
      const onScreen = r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.width > 20;
      return [a.textContent, a.getAttribute('href'), onScreen];
    }""")
    assert skip == ["Skip to content", "#main", True]
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("!!document.activeElement.closest('main')")
    tab.assert_clean()
    tab.page.context.close()


@pytest.mark.parametrize("rel", PAGES + MORE)
def test_pictures_have_alt_text_unless_their_link_or_button_names_them(browser, site, rel):
    tab = _open(browser, site, rel)
    tab.images()  # lazy ones too
    shown = tab.page.evaluate("""() => [...document.images].map(img => {
      const control = img.closest('a, button');
      let words = '';
      if (control) {
        const copy = control.cloneNode(true);
        copy.querySelectorAll('img, [aria-hidden=true]').forEach(e => e.remove());
        words = copy.textContent.trim() + (control.getAttribute('aria-label') || '');
      }
      return { src: img.getAttribute('src'), alt: img.getAttribute('alt'), words };
    })""")
    assert shown or rel.endswith("about.html")
    for img in shown:
        if img["words"]:  # the link or button says it: the picture is decoration, read once
            assert img["alt"] == "", img
        else:
            assert img["alt"] and re.search(r"[A-Za-z]", img["alt"]), img
    tab.page.context.close()


# Every link, button, field and disclosure in the accessibility tree (Chromium's own computation).
NAMED = {"link", "button", "textbox", "searchbox", "combobox", "checkbox", "DisclosureTriangle", "dialog", "table",
         "meter"}


@pytest.mark.parametrize("rel", PAGES + MORE)
def test_every_control_has_a_name_that_includes_its_words(browser, site, rel):
    tab = _open(browser, site, rel)
    page = tab.page
    tree = page.context.new_cdp_session(page).send("Accessibility.getFullAXTree")["nodes"]
    controls = [(n["role"]["value"], n.get("name", {}).get("value", "")) for n in tree
                if not n.get("ignored") and n.get("role", {}).get("value") in NAMED]
    assert len(controls) > 10
    unnamed = [c for c in controls if not re.search(r"[A-Za-z0-9]", c[1])]
    assert unnamed == []
    # an aria-label says at least what the control shows (WCAG 2.5.3), and only where it is allowed
    labelled = page.evaluate("""() => [...document.querySelectorAll('[aria-label]')].map(e => {
      const copy = e.cloneNode(true);
      copy.querySelectorAll('[aria-hidden=true]').forEach(x => x.remove());
      return { tag: e.tagName, role: e.getAttribute('role'), label: e.getAttribute('aria-label'),
               shows: /^(A|BUTTON|SUMMARY)$/.test(e.tagName) ? copy.textContent.trim() : '' };
    })""")
    for e in labelled:
        assert e["role"] or e["tag"] not in ("DIV", "SPAN", "P", "DL", "B", "I", "CODE"), e  # ignored there
        if re.search(r"[A-Za-z0-9]", e["shows"]):
            assert e["shows"].lower() in e["label"].lower(), e
    tab.page.context.close()


def _tab_to(page, selector: str) -> None:  # noqa: ANN001 - a Playwright page
    for _ in range(300):
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reaches {selector}")


def _pressed(page, selector: str) -> list[str]:  # noqa: ANN001
    return page.eval_on_selector_all(selector, "bs => bs.map(b => b.getAttribute('aria-pressed'))")


def test_the_toggles_say_their_state_and_work_from_the_keyboard(browser, site):
    tab = _open(browser, site, CLASS)
    page = tab.page
    assert _pressed(page, "[data-view]") == ["false", "true"] and _pressed(page, "button.seed") == ["true", "false"]
    stage = "() => [...document.querySelectorAll('#stage img')].filter(i => !i.hidden).map(i => i.getAttribute('src'))"
    _tab_to(page, "[data-view=plain]")
    page.keyboard.press("Space")
    assert _pressed(page, "[data-view]") == ["true", "false"]
    shown = page.evaluate(stage)
    assert len(shown) == 1 and shown[0].endswith("/detail.webp")
    page.keyboard.press("Tab")  # to the attribution view
    page.keyboard.press("Enter")
    assert _pressed(page, "[data-view]") == ["false", "true"]
    assert page.evaluate(stage)[0].endswith("/detail-overlay.webp")
    _tab_to(page, "button.seed[data-seed='1']")
    page.keyboard.press("Enter")
    assert _pressed(page, "button.seed") == ["false", "true"]
    assert page.evaluate(stage) == [page.get_attribute("#stage img[data-seed='1']", "src")]
    tab.goto(INDEX)
    assert _pressed(page, "[data-by]") == ["true", "false"]
    _tab_to(page, "[data-by=concept]")
    page.keyboard.press("Space")
    assert _pressed(page, "[data-by]") == ["false", "true"]
    tab.assert_clean()
    tab.page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("rel", PAGES + MORE[:2])
def test_every_focus_stop_shows_an_outline_that_nothing_clips(browser, site, rel, scheme):
    tab = _open(browser, site, rel, color_scheme=scheme)
    page = tab.page
    stops = []
    for _ in range(400):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement === document.body"):
            break
        stops.append(page.evaluate(FOCUSED))
        if len(stops) > 1 and stops[-1]["what"] == stops[0]["what"]:
            break
    assert len(stops) > 10
    bad = [s for s in stops if s["style"] == "none" or s["width"] < 2 or s["contrast"] < 3 or s["clippedBy"]
           or not s["shown"]]
    assert bad == []
    tab.page.context.close()


def test_reduced_motion_stops_every_transition(browser, site):
    moving = """() => [...document.querySelectorAll('*')].filter(e => { const s = getComputedStyle(e);
      return s.transitionDuration.split(',').some(d => parseFloat(d) > 0) || s.animationName !== 'none'; }).length"""
    for motion, expected in [("no-preference", True), ("reduce", False)]:
        tab = _open(browser, site, INDEX, reduced_motion=motion)
        assert (tab.page.evaluate(moving) > 0) is expected, motion  # the tiles lift on hover, unless reduced
        tab.goto(CLASS)
        assert (tab.page.evaluate(moving) > 0) is expected, motion
        tab.page.context.close()


def test_single_key_shortcuts_can_be_turned_off(browser, site):
    tab = _open(browser, site, CLASS)
    page = tab.page
    page.keyboard.press("?")
    assert page.locator("#help").is_visible() and page.is_checked("#keys-on")
    _tab_to(page, "#keys-on")
    page.keyboard.press("Space")
    page.keyboard.press("Escape")
    page.keyboard.press("t")
    assert _pressed(page, "[data-view]") == ["false", "true"]  # t is a letter again
    tab.goto(CHANNEL)  # the choice holds on the next page
    page.keyboard.press("t")
    page.keyboard.press("?")
    assert _pressed(page, "[data-view]") == ["false", "true"] and not page.locator("#help").is_visible()
    page.click("#help-open")  # the button still opens the help, and its switch turns them back on
    page.check("#keys-on")
    page.keyboard.press("Escape")
    page.keyboard.press("t")
    assert _pressed(page, "[data-view]") == ["true", "false"]
    tab.assert_clean()
    tab.page.context.close()


@pytest.mark.parametrize("rel", PAGES + MORE)
def test_without_javascript_no_control_is_left_doing_nothing(browser, site, rel):
    """Search, shortcuts, the toggles, sorting and random are the script's: without it they are hidden
    (static/nojs.css, linked inside <noscript>), while links, the menu and the pictures stay."""
    tab = _open(browser, site, rel, java_script_enabled=False)
    page = tab.page
    shown = page.evaluate("""() => [...document.querySelectorAll('button, input, select, textarea')]
      .filter(e => e.getClientRects().length > 0).map(e => e.outerHTML.slice(0, 80))""")
    assert shown == []
    assert any(r.endswith("/static/nojs.css") for r in tab.requests) and tab.failed == {}
    assert page.locator("main a[href]").count() > 0
    if rel == CLASS:  # the crops of a concept are drawn by script: the page says so
        assert "turn it on to see them" in page.inner_text("main")
    tab.page.context.close()

    tab = _open(browser, site, rel)  # with script: every control, no note, and the style sheet never loads
    assert tab.page.locator("#help-open").is_visible() and tab.page.locator("#q").is_visible()
    assert "turn it on to see them" not in tab.page.inner_text("main")
    assert not any(r.endswith("nojs.css") for r in tab.requests)
    tab.assert_clean()
    tab.page.context.close()
