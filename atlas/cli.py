"""The `atlas` command line: the only place that prints errors and exits."""

from __future__ import annotations

import argparse
import importlib
import sys

from atlas import __version__
from atlas.errors import AtlasError

# command name -> module under atlas.commands; imported lazily so that
# site commands start in milliseconds and never import torch.
COMMANDS = {
    "render": "render",
    "build": "build",
    "serve": "serve",
    "publish": "publish",
    "layers": "layers",
    "spectrum": "spectrum",
    "eval": "evaluate",
    "bench": "bench",
}

# One line per command; here, not in the command modules, so that `atlas --help` imports none of them.
HELP = {
    "render": "render MACO visualizations into the cache",
    "build": "build the static site from the cache",
    "serve": "serve a built site on localhost",
    "publish": "push a built site to a gh-pages branch",
    "layers": "list the layers of a model that an atlas can visualize",
    "spectrum": "compute a magnitude spectrum from a folder of images",
    "eval": "score rendered class images against real photos (plausibility, FID)",
    "bench": "benchmark the engine against the reference implementations",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atlas", description=__doc__)
    parser.add_argument("--version", action="version", version=f"atlas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        if name == command:
            importlib.import_module(f"atlas.commands.{module}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f"atlas.commands.{COMMANDS[args.command]}")
    try:
        return int(module.run(args) or 0)
    except AtlasError as exc:
        print(f"atlas {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"atlas {args.command}: interrupted; everything finished so far is kept", file=sys.stderr)
        return 130
