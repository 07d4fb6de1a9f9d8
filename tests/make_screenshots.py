"""Screenshots of a built site for docs/screenshots/: the index, a class page with concepts and a
channel page with dataset examples, at 1280x900 and 375x800.

    .venv/bin/python tests/make_screenshots.py [SITE] [--class 0967] [--channel conv_head/c0042] [--dark]

Without SITE it builds the committed sample cache, with the test concept banks and dataset
examples of tests/concept_site_support.py, into a temporary folder first. With SITE (a built
atlas, e.g. of a real cache) `--only-class --name class-real --colors 256` shoots its class page
alone as class-real*.png, each reduced to a 256-colour palette (the README's real screenshots), and
`--concepts-first` the index of a site built from `atlas concepts` alone. Uses Debian's Chromium
through Playwright (never a downloaded browser).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser_support import launch_chromium  # noqa: E402

PHONE = {"width": 375, "height": 800}
DESKTOP = {"width": 1280, "height": 900}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", nargs="?", type=Path)
    parser.add_argument("--class", dest="cls", default="0967", help="class page to shoot (zero-padded index)")
    parser.add_argument("--channel", default="conv_head/c0042", help="channel page to shoot (layer folder/cNNNN)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--dark", action="store_true", help="also shoot the dark theme (*-dark.png)")
    parser.add_argument("--both-views", action="store_true",
                        help="also shoot the plain image view (*-plain*.png) beside the default attribution view")
    parser.add_argument("--only-class", action="store_true", help="shoot the class page only (a site of no channels)")
    parser.add_argument("--models", action="store_true",
                        help="shoot a several-model site's root index and the compare page of --class instead")
    parser.add_argument("--concepts-first", action="store_true",
                        help="shoot the index of a site of concepts alone (no render yet) as concepts-first*.png")
    parser.add_argument("--name", default="class", help="file name of the class page's shots (default class)")
    parser.add_argument("--model", help="the model folder of the site to shoot (default: the test atlas's model)")
    parser.add_argument("--colors", type=int, default=0,
                        help="reduce each shot to this many colours (Pillow's quantize; 0: keep it full colour)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = args.site
        if site is None:
            from atlas.site.build import build
            from tests.concept_site_support import concept_cache

            site = Path(tmp) / "site"
            build(concept_cache(Path(tmp) / "cache"), site)
        args.out.mkdir(parents=True, exist_ok=True)
        from tests.site_support import MODEL  # the test atlas's one model: its pages are in its folder

        folder = args.model or MODEL
        shots = [("index", f"{folder}/index.html", DESKTOP), (args.name, f"{folder}/classes/{args.cls}.html", DESKTOP),
                 (f"{args.name}-phone", f"{folder}/classes/{args.cls}.html", PHONE),
                 ("channel", f"{folder}/layers/{args.channel}.html", DESKTOP),
                 # on a phone the examples come under the picture: the shot starts at them
                 ("channel-phone", f"{folder}/layers/{args.channel}.html#examples-title", PHONE),
                 ("index-phone", f"{folder}/index.html", PHONE)]
        if args.only_class:
            shots = shots[1:3]
        if args.concepts_first:
            shots = [("concepts-first", f"{folder}/index.html", DESKTOP),
                     ("concepts-first-phone", f"{folder}/index.html", PHONE)]
        if args.models:  # a site of several models: its root index of model cards and a compare page
            shots = [("models-index", "index.html", DESKTOP), ("models-index-phone", "index.html", PHONE),
                     ("compare", f"compare/{args.cls}.html", DESKTOP),
                     ("compare-phone", f"compare/{args.cls}.html", PHONE)]
        with sync_playwright() as p:
            browser = launch_chromium(p)
            for scheme in ["light", "dark"] if args.dark else ["light"]:
                suffix = "" if scheme == "light" else "-dark"
                views = [("", "overlay"), ("-plain", "plain")] if args.both_views else [("", None)]
                for name, rel, viewport in shots:
                    page = browser.new_page(viewport=viewport, color_scheme=scheme)
                    for tag, view in views:
                        path, _, anchor = rel.partition("#")
                        page.goto((site / path).resolve().as_uri() + (f"#{anchor}" if anchor else ""))
                        page.wait_for_load_state("load")
                        if view:
                            page.click(f"button[data-view={view}]")
                        # Lazy images below the fold never load; wait only for those on screen.
                        # (polled with evaluate: wait_for_function evaluates a string, which the CSP forbids)
                        for _ in range(100):
                            if page.evaluate("() => [...document.images].every(i => i.complete"
                                             " || i.getBoundingClientRect().top > innerHeight)"):
                                break
                            page.wait_for_timeout(100)
                        path = args.out / f"{name}{tag}{suffix}.png"
                        page.screenshot(path=str(path))
                        if args.colors:
                            reduce_colours(path, args.colors)
                        print(path, f"{path.stat().st_size // 1024} KB")
                    page.close()
            browser.close()


def reduce_colours(path: Path, colors: int) -> None:
    """A palette PNG of `colors` colours (pngquant-like, by Pillow): a page shot is a third of its size."""
    from PIL import Image

    with Image.open(path) as shot:
        reduced = shot.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    reduced.save(path, optimize=True)


if __name__ == "__main__":
    main()
