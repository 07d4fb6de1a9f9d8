"""Command-line flags: the table each command declares, their bounds, and the one merge of the
given flags over the config.

Each command module keeps one tuple of `Flag`s.  A flag that replaces a config key names it
(`key="concepts.patch"`): its default is the config's (`atlas.config` owns it, and the file can
change it) and its bounds are the ones the config file is read with, so `--concepts 0` and
`concepts = 0` are refused alike.  A flag of the command alone carries its own default in the
table.  A flag that is not given is None after parsing, and only None means "not given": 0 or
an empty value is checked against the bounds, never replaced by the default.

Torch-free: `atlas build --help` reads these tables too.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas import specs
from atlas.config import RANGES, Config, Selection, override
from atlas.errors import AtlasError
from atlas.presets import get_preset

SELECTION = "selection."  # keys of the selection (`[cpu]` or the full atlas) rather than of the config


@dataclass(frozen=True)
class Bounded:
    """An argparse type: an integer in [low, high], or one of `words` (like "auto")."""

    low: int
    high: int
    words: tuple[str, ...] = ()

    @property
    def __name__(self) -> str:  # argparse names the type in some messages
        return "integer"

    def describe(self) -> str:
        words = "".join(f' or "{w}"' for w in self.words)
        return f"an integer from {self.low} to {self.high}{words}"

    def __call__(self, text: str) -> int | str:
        if text in self.words:
            return text
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not self.low <= value <= self.high:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}")
        return value


def path(text: str) -> Path:
    """An argparse type: a file or folder; an empty one is refused rather than read as the working folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path names no file or folder: give one, or leave the flag out")
    return Path(text)


def preset_name(text: str) -> str:
    """An argparse type: the name of a preset (atlas.presets), checked before anything loads."""
    try:
        get_preset(text)
    except AtlasError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def class_spec(text: str) -> str:
    """An argparse type: a well-formed class spec (atlas.specs; its range needs the model)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} names no class: write none for no class, "
                                         "or a spec like 0-99 or all")
    try:
        specs.check_spec(text, "class")
    except AtlasError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def config_range(key: str, words: tuple[str, ...] = ()) -> Bounded:
    """The bounds the config file reads `key` with (atlas.config.RANGES)."""
    low, high = RANGES[key]
    return Bounded(low, high, words)


@dataclass(frozen=True)
class Flag:
    """One option of a command.

    `key`: the config key it replaces (dotted for a table, `selection.` for the selection that
    runs), or None for a flag of the command alone, whose default is `default` (a value, or a
    mapping "cpu"/"gpu" -> value when it depends on the device).  `convert` turns the parsed
    value into the config's (a list of judges into a tuple, "auto" into None)."""

    name: str
    help: str
    key: str | None = None
    default: Any = None
    type: Callable[[str], Any] | None = None
    convert: Callable[[Any], Any] | None = None
    options: tuple[tuple[str, Any], ...] = ()  # other add_argument keywords: metavar, nargs, action
    note: str | None = None  # the default in words, when the module named there decides it

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    def default_text(self) -> str:
        if self.note is not None:
            return self.note
        if self.key is not None:
            if self.key.startswith(SELECTION):
                return "from the config"
            value = _get(Config(), self.key)
            return f"from the config: {'none' if value is None else value}"
        if isinstance(self.default, Mapping):
            return ", ".join(f"{v} on a {k.upper()}" for k, v in self.default.items())
        return str(self.default)

    def default_for(self, device: str) -> Any:
        """The table's default of a flag of the command alone, on `device`."""
        if isinstance(self.default, Mapping):
            return self.default["gpu" if device.startswith("cuda") else "cpu"]
        return self.default


# The rows several commands' tables share, each written once.
CONFIG = Flag("--config", "settings file", type=path, note="./atlas.toml", options=(("metavar", "FILE"),))
CACHE = Flag("--cache", "cache folder", key="cache", type=path, options=(("metavar", "DIR"),))
DEVICE = Flag("--device", "auto, cpu, cuda, cuda:N or mps", key="device", options=(("metavar", "D"),))
CHECKPOINT = Flag("--checkpoint", "load the model's weights from a state dict", key="checkpoint", type=path,
                  options=(("metavar", "PATH"),))
RANDOM_WEIGHTS = Flag("--random-weights", "random initial weights (for tests and demos)", key="random_weights",
                      options=(("action", "store_true"), ("default", None)))


def labels_flag(note: str) -> Flag:
    """`--labels`, with where the class names come from when it is not given (`note`)."""
    return Flag("--labels", "class names of the model's head, one a line in class-index order", key="labels",
                type=path, note=note, options=(("metavar", "FILE"),))


def add_flags(parser: argparse.ArgumentParser, flags: Sequence[Flag]) -> None:
    """Declare `flags`; each help says the default and, for a bounded one, the range."""
    for flag in flags:
        options = dict(flag.options)
        bounds = f"; {flag.type.describe()}" if isinstance(flag.type, Bounded) else ""
        help_text = flag.help
        if options.get("required"):
            help_text = f"{flag.help} (required{bounds})"
        elif options.get("action") not in ("store_true", "store_const"):
            help_text = f"{flag.help} (default {flag.default_text()}{bounds})"
        if flag.type is not None:
            options["type"] = flag.type
        if options.get("action") != "store_true":
            options.setdefault("default", None)  # None, and only None, means "not given"
        parser.add_argument(flag.name, help=help_text, **options)


def given(args: argparse.Namespace, flag: Flag) -> bool:
    """Whether the command line gives `flag` (only a missing flag is None after parsing)."""
    return getattr(args, flag.dest, None) is not None


def converted(args: argparse.Namespace, flag: Flag) -> Any:
    """A given flag's value as the config holds it ("auto" may become None)."""
    found = getattr(args, flag.dest)
    return flag.convert(found) if flag.convert is not None else found


def value(args: argparse.Namespace, flags: Sequence[Flag], name: str, device: str = "cpu") -> Any:
    """A flag of the command alone: given, or the table's default."""
    flag = next(f for f in flags if f.name == name)
    return converted(args, flag) if given(args, flag) else flag.default_for(device)


def merge(config: Config, args: argparse.Namespace, flags: Sequence[Flag]) -> Config:
    """`config` with the value of every given flag in place of its key."""
    tables: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for flag in flags:
        if flag.key is None or flag.key.startswith(SELECTION) or not given(args, flag):
            continue
        table, _, key = flag.key.rpartition(".")
        (tables.setdefault(table, {}) if table else top)[key] = converted(args, flag)
    for table, changes in tables.items():
        top[table] = dataclasses.replace(getattr(config, table), **changes)
    return dataclasses.replace(config, **top)


def merge_selection(selection: Selection, args: argparse.Namespace, flags: Sequence[Flag]) -> Selection:
    """`selection` with every given `selection.` flag (classes, layers, preset and its fields) in place."""
    changes = {flag.key[len(SELECTION):]: converted(args, flag) for flag in flags
               if flag.key is not None and flag.key.startswith(SELECTION) and given(args, flag)}
    return override(selection, **changes)


def _get(config: Config, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value
