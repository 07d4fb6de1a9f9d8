"""The `atlas` command line: the only place that prints errors and exits."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
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
    "concepts": "concepts",
    "match": "match",
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
    "bench": "benchmark the engine against the reference implementations, and measure quality",
    "concepts": "explain classes by their concepts and channels by dataset examples, from an image folder",
    "match": "find the same unit across models: channels whose activation maps agree on an image folder",
}


class UsageError(Exception):
    """A command line argparse refuses (an unknown flag, a value out of its range)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (the usage block hid the reason)."""

    def error(self, message: str):  # argparse's hook; it must not return
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="atlas", description=__doc__)
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
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # argparse would name the top-level program; the command's own help lists its flags
            prog = f"atlas {args.command}" if args.command else "atlas"
            raise UsageError(f"{prog}: error: unrecognized arguments: {' '.join(extra)} (see `{prog} --help`)")
    except UsageError as exc:  # exit code 2, as argparse's own: the command line itself is wrong
        print(exc, file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f"atlas.commands.{COMMANDS[args.command]}")
    try:
        with _sigterm_raises():
            return int(module.run(args) or 0)
    except AtlasError as exc:
        print(f"atlas {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file problem no layer below foresaw: still one line that names the file
        where = f" {exc.filename}" if exc.filename else ""
        print(f"atlas {args.command}: error: cannot access{where} ({exc.strerror or exc}); "
              "check the path, its permissions and the free disk space", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"atlas {args.command}: interrupted; everything finished so far is kept, "
              "run the same command again to go on", file=sys.stderr)
        return 130
    except Terminated:
        print(f"atlas {args.command}: terminated (SIGTERM); everything finished so far is kept, "
              "run the same command again to go on", file=sys.stderr)
        return 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM (a job scheduler's time limit, `kill`), raised where the process is, like Ctrl-C.

    A BaseException, so that no `except Exception` on the way up mistakes it for a failure."""


@contextlib.contextmanager
def _sigterm_raises():
    def raise_terminated(_signum, _frame):
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread (main() called from a worker): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
