"""Screenshots of a built site for docs/screenshots/: the index and a class page, 1280x900.

    .venv/bin/python tests/make_screenshots.py [SITE] [--class 0967] [--dark]

Without SITE it builds the committed sample cache into a temporary folder first. Uses
Debian's Chromium through Playwright (never a downloaded browser).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from browser_support import launch_chromium  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", nargs="?", type=Path)
    parser.add_argument("--class", dest="cls", default="0967", help="class page to shoot (zero-padded index)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--dark", action="store_true", help="also shoot the dark theme (*-dark.png)")
    parser.add_argument("--both-views", action="store_true",
                        help="also shoot the plain image view (*-plain*.png) beside the default attribution view")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = args.site
        if site is None:
            from atlas.site.build import build

            site = Path(tmp) / "site"
            build(REPO / "tests" / "data" / "sample_cache", site)
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = launch_chromium(p)
            for scheme in ["light", "dark"] if args.dark else ["light"]:
                page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
                suffix = "" if scheme == "light" else "-dark"
                views = [("", "overlay"), ("-plain", "plain")] if args.both_views else [("", None)]
                for name, rel in [("index", "index.html"), ("class", f"classes/{args.cls}.html")]:
                    for tag, view in views:
                        page.goto((site / rel).resolve().as_uri())
                        page.wait_for_load_state("load")
                        if view:
                            page.click(f"button[data-view={view}]")
                        # Lazy images below the fold never load; wait only for those on screen.
                        page.wait_for_function(
                            "[...document.images].every(i => i.complete"
                            " || i.getBoundingClientRect().top > innerHeight)",
                            timeout=10_000,
                        )
                        path = args.out / f"{name}{tag}{suffix}.png"
                        page.screenshot(path=str(path))
                        print(path)
                page.close()
            browser.close()


if __name__ == "__main__":
    main()
