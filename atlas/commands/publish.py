"""`atlas publish`: push a built site to a gh-pages branch as a single commit without history."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="settings file for the default folder (default: ./atlas.toml)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="the built site (default from the config: site)")
    parser.add_argument("--remote", metavar="URL_OR_PATH",
                        help="where to push (default: this project's origin, which must have no uncommitted changes)")
    parser.add_argument("--branch", default="gh-pages", help="branch to replace (default gh-pages)")
    parser.add_argument("--message", help="commit message (default names the project commit)")


def run(args: argparse.Namespace) -> int:
    from atlas.config import load_config
    from atlas.site.publish import publish

    site = args.out if args.out is not None else load_config(args.config).site
    done = publish(site, args.remote, branch=args.branch, message=args.message)
    print(f"atlas publish: pushed {done.files} files from {site} to {done.remote} branch {done.branch} "
          f"as the single commit {done.commit[:12]}")
    return 0
