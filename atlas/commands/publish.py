"""`atlas publish`: push a built site to a gh-pages branch as a single commit without history."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="settings file for the default folder (default: ./atlas.toml)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="the built site (default from the config: site)")
    parser.add_argument("--remote", metavar="URL_OR_PATH",
                        help="where to push (default: the origin of the git repository holding the config file, "
                             "or the current folder without one; it must have no uncommitted changes)")
    parser.add_argument("--branch", default="gh-pages", help="branch to replace (default gh-pages)")
    parser.add_argument("--message", help="commit message (default names the project commit)")
    parser.add_argument("--force", action="store_true",
                        help="replace the branch even when its last commit was not made by `atlas publish`")


def run(args: argparse.Namespace) -> int:
    from atlas.config import load_config
    from atlas.site.publish import publish

    config = load_config(args.config)
    site = args.out if args.out is not None else config.site
    project = config.source.parent if config.source is not None else Path(".")
    done = publish(site, args.remote, branch=args.branch, project=project, message=args.message, force=args.force)
    print(f"atlas publish: pushed {done.files} files from {site} to {done.remote} branch {done.branch} "
          f"as the single commit {done.commit[:12]}")
    return 0
