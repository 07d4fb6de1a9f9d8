"""A tiny `atlas.toml` for the tests that load a project config or run `atlas render` on one.

One builder holds the settings every such test shares (a model with random weights, the cache
folder, no judges, the smallest preset, no channel layers); each test names what it changes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - atlas.config reads with the same fallback
    import tomli as tomllib

# The smallest preset a render runs at: a table of its own, also under a `[cpu]` section.
TINY_PRESET = {"name": "cpu", "canvas": 32, "steps": 2, "crops": 1}
TINY = {"random_weights": True, "judges": [], "cache": "cache", "preset": TINY_PRESET, "layers": {}}


def write_config(folder: Path, model: str, **settings: Any) -> Path:
    """Write `folder/atlas.toml` for `model` at the TINY settings and return its path.

    Each of `settings` replaces a TINY key or adds one: a dict is a table (`layers={"layer4": "top:2"}`,
    `cpu={...}`), None leaves the key out of the file."""
    values = {key: value for key, value in {"model": model, **TINY, **settings}.items() if value is not None}
    text = dumps(values)
    if tomllib.loads(text) != values:
        raise ValueError(f"write_config cannot write {values!r} as TOML")
    path = folder / "atlas.toml"
    path.write_text(text, encoding="utf-8")
    return path


def dumps(table: dict[str, Any]) -> str:
    """TOML text of `table`: its plain keys, then each dict value as a [name] table, written even when empty."""
    return "\n".join(_lines(table, "")) + "\n"


def _lines(table: dict[str, Any], name: str) -> list[str]:
    lines = [f"[{name}]"] if name else []
    lines += [f"{_key(key)} = {_value(value)}" for key, value in table.items() if not isinstance(value, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += _lines(value, f"{name}.{_key(key)}" if name else _key(key))
    return lines


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value)  # a JSON number or simple string is the same TOML value
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r} in a test config")
