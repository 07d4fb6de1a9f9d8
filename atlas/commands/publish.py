"""`atlas publish`: push a built site to a gh-pages branch as a single commit without history."""

from __future__ import annotations

import argparse
from pathlib import Path

from atlas import flags
from atlas.flags import Flag

# Every flag of `atlas publish`, with its default (`--out` replaces the config's `site`).
FLAGS = (
    Flag("--config", "settings file for the default folder", type=flags.path, note="./atlas.toml",
         options=(("metavar", "FILE"),)),
    Flag("--out", "the built site", key="site", type=flags.path, options=(("metavar", "DIR"),)),
    Flag("--remote", "where to push; it must have no uncommitted changes",
         note="the origin of the git repository holding the config file, or the current folder without one",
         options=(("metavar", "URL_OR_PATH"),)),
    Flag("--branch", "branch to replace", default="gh-pages"),
    Flag("--message", "commit message", note="one naming the project commit"),
    Flag("--force", "replace the branch even when its last commit was not made by `atlas publish`",
         options=(("action", "store_true"),)),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_flags(parser, FLAGS)


def run(args: argparse.Namespace) -> int:
    from atlas.config import load_config
    from atlas.site.publish import publish

    config = flags.merge(load_config(args.config), args, FLAGS)
    site = config.site
    project = config.source.parent if config.source is not None else Path(".")
    done = publish(site, args.remote, branch=flags.value(args, FLAGS, "--branch"), project=project,
                   message=args.message, force=args.force)
    print(f"atlas publish: pushed {done.files} files from {site} to {done.remote} branch {done.branch} "
          f"as the single commit {done.commit[:12]}")
    return 0
