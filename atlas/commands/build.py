"""`atlas build`: the static site from the render cache; checks its own output. Never imports torch."""

from __future__ import annotations

import argparse
import sys
import warnings

from atlas import flags
from atlas.flags import Bounded, Flag

# Every flag of `atlas build`, with its default (`--cache` and `--out` replace the config's keys).
FLAGS = (
    Flag("--config", "settings file for the default folders", type=flags.path, note="./atlas.toml",
         options=(("metavar", "FILE"),)),
    Flag("--cache", "render cache to read", key="cache", type=flags.path, options=(("metavar", "DIR"),)),
    Flag("--out", "site folder to write", key="site", type=flags.path, options=(("metavar", "DIR"),)),
    Flag("--model", "a model to build (repeat for several); each model's pages go in a folder named by it",
         note="every model of the cache, those of the config's models first", options=(("metavar", "NAME"),
                                                                                       ("action", "append"))),
    Flag("--workers", "threads for image derivatives", type=Bounded(1, 64),
         note="the CPU count, at most 8 (atlas.site.build)", options=(("metavar", "N"),)),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_flags(parser, FLAGS)
    downloads = parser.add_mutually_exclusive_group()
    downloads.add_argument("--png", dest="png", action="store_const", const=True,
                           help="always copy the full-size PNG downloads "
                                "(default: only when the site stays within its size budget)")
    downloads.add_argument("--no-png", dest="png", action="store_const", const=False,
                           help="leave out the full-size PNG downloads (the largest part of a big site)")


def run(args: argparse.Namespace) -> int:
    from atlas.config import load_config
    from atlas.site.build import build

    config = flags.merge(load_config(args.config), args, FLAGS)
    cache, out = config.cache, config.site
    order = [entry.model for entry in config.models] or [config.model]
    # a skipped stored file (atlas.matches), a source thumbnail left out (atlas.site.build): one line each
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        report = build(cache, out, model=args.model, order=order, png=args.png, workers=args.workers,
                       progress=lambda msg: print(f"atlas build: {msg}", flush=True))
    for message in dict.fromkeys(str(w.message) for w in caught):  # a gather run twice warns twice
        print(f"atlas build: warning: {message}", file=sys.stderr)
    for problem in report.problems:
        print(f"atlas build: warning: skipped invalid cache entry {problem}", file=sys.stderr)
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items()))
    if skipped:
        print(f"atlas build: cache entries not shown: {skipped}")
    check = report.check
    assert check is not None
    page, page_bytes = check.largest_page
    invalid = (f"; skipped {len(report.problems)} invalid cache entries (warnings above; `atlas render` "
               "renders them again)") if report.problems else ""
    print(f"atlas build: {', '.join(report.models)}: {report.pages} pages, {check.files} files, "
          f"{check.total_bytes / 2**20:.1f} MB; largest page {page} ({page_bytes / 1024:.1f} KB); "
          f"{check.links} links checked{invalid}")
    print(f"atlas build: site ready in {out} (open {out / 'index.html'}, or run `atlas serve --out {out}`)")
    return 0
