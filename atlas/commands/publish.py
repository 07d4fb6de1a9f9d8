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
    Flag("--base-path", "the address path the site is served under, which its 404 page roots its links at",
         note="from the remote: /REPO/ on GitHub, / for OWNER.github.io or a site with a CNAME file",
         options=(("metavar", "PATH"),)),
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
                   message=args.message, force=args.force, base_path=args.base_path)
    print(f"atlas publish: pushed {done.files} files from {site} to {done.remote} branch {done.branch} "
          f"as the single commit {done.commit[:12]}")
    if done.base_path is None:
        print(f"atlas publish: 404.html pushed as built, since {done.remote} is not on GitHub: a missing page "
              "below the top folder shows it unstyled; pass --base-path /PATH/ to root its links")
    else:
        print(f"atlas publish: 404.html links rooted at {done.base_path} (--base-path to change it)")
    return 0
