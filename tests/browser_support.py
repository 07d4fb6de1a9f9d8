"""Headless Chromium for the browser tests and screenshots: Debian's build, driven by Playwright.

Playwright never downloads a browser here (`playwright install` is not allowed); it drives
/usr/bin/chromium, or $ATLAS_CHROMIUM.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

from atlas.site.serve import SiteServer

CHROMIUM = Path(os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright):  # noqa: ANN001, ANN201 - Playwright objects
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002, ANN001, ANN002
        pass


@contextlib.contextmanager
def serve_parent(site: Path) -> Iterator[str]:
    """Serve the PARENT of the site folder, so the site lives under a subpath like a GitHub project
    page; yields the site's URL."""
    httpd = SiteServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site.parent)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/{site.name}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            yield browser
        finally:
            browser.close()


LOAD_ALL_IMAGES = """async () => {
  const imgs = [...document.images];
  for (const img of imgs) {
    img.scrollIntoView();
    if (!img.complete) {
      await new Promise(done => { img.addEventListener('load', done, {once: true});
                                  img.addEventListener('error', done, {once: true}); });
    }
  }
  return imgs.map(i => ({src: i.getAttribute('src'), natural: i.naturalWidth, alt: i.getAttribute('alt'),
                         width: i.getAttribute('width'), height: i.getAttribute('height')}));
}"""


@dataclass
class Tab:
    """One browser page on the site, recording console errors and every request it makes."""

    page: object
    base: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # url -> why it failed

    def goto(self, rel: str) -> None:
        self.page.goto(self.base + rel)
        self.page.wait_for_load_state("load")

    @property
    def url(self) -> str:
        return self.page.url

    def images(self) -> list[dict]:
        return self.page.evaluate(LOAD_ALL_IMAGES)

    def assert_clean(self) -> None:
        assert self.errors == []
        outside = [r for r in self.requests if not r.startswith(self.base)]
        assert outside == [], "requests left the site"


def open_tab(browser, base: str, **context) -> Tab:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, **context)
    page = ctx.new_page()
    tab = Tab(page, base)
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(str(e)))
    page.on("request", lambda r: tab.requests.append(r.url))
    page.on("requestfailed", lambda r: tab.failed.__setitem__(r.url, r.failure or ""))
    page.on("dialog", lambda d: (tab.errors.append(f"dialog: {d.message}"), d.dismiss()))
    return tab
