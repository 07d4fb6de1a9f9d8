"""Typed JSON: frozen dataclasses to JSON data and back, checked field by field.

The one codec of every stored format (render records, concept banks, example sets, ...): a new
field or kind needs no code here; a kind whose document carries a header (its format and kind:
judgments, matches) reads and writes it with `loads`/`dumps`.  Also what every stored entry lists
of its files (`FileInfo`).
Stdlib only, so that the site and the record modules stay torch- and numpy-free.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from atlas.safe_paths import UnsafeName, plain_name


class InvalidRecord(ValueError):
    """A stored value that is not valid; the message is the reason, in one line."""


@dataclass(frozen=True)
class FileInfo:
    bytes: int
    sha256: str

    @staticmethod
    def of(data: bytes) -> FileInfo:
        return FileInfo(len(data), hashlib.sha256(data).hexdigest())


def check_files(files: Mapping[str, FileInfo]) -> None:
    for name in files:
        try:
            plain_name(name)
        except UnsafeName as exc:
            raise InvalidRecord(f"files: {exc}") from None


def as_data(value: Any) -> Any:
    """A record or any part of it as JSON data (fields left out as `to_dict` does)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None and f.default is None:
                continue
            out[f.name] = as_data(item)
        return out
    if isinstance(value, (tuple, list)):
        return [as_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): as_data(v) for k, v in value.items()}
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def load(tp: Any, value: Any, where: str, strict: bool = False) -> Any:
    """`value` as `tp`, checked; `strict`: an object with a field `tp` lacks is invalid too."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) > 1:  # a union of dataclasses (never in a render record): the first that fits
            for option in options:
                try:
                    return load(option, value, where, strict)
                except InvalidRecord:
                    continue
            raise InvalidRecord(f"{where} fits none of {', '.join(o.__name__ for o in options)}")
        return load(options[0], value, where, strict)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InvalidRecord(f"{where} is not an object")
        hints = _hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        if strict and set(value) - names:
            raise InvalidRecord(f"{where} has unknown fields {sorted(set(value) - names)}")
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = load(hints[f.name], value[f.name], f"{where}.{f.name}", strict)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InvalidRecord(f"{where} lacks {f.name}")
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields"):  # a NamedTuple: a row
        if not isinstance(value, list) or len(value) != len(tp._fields):
            raise InvalidRecord(f"{where} is not a list of {len(tp._fields)} ({', '.join(tp._fields)})")
        hints = _hints(tp)
        return tp(*(load(hints[name], v, f"{where}.{name}", strict) for name, v in zip(tp._fields, value, strict=True)))
    if origin is tuple:
        if not isinstance(value, list) or (args[-1] is not Ellipsis and len(value) != len(args)):
            raise InvalidRecord(f"{where} is not a list of {len(args)}" if args[-1] is not Ellipsis
                                else f"{where} is not a list")
        items = args[:1] * len(value) if args[-1] is Ellipsis else args
        return tuple(load(t, v, f"{where}[{i}]", strict) for i, (t, v) in enumerate(zip(items, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidRecord(f"{where} is not an object")
        return {str(k): load(args[1], v, f"{where}.{k}", strict) for k, v in value.items()}
    if tp is Any:
        _check_finite(value, where)
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_finite(value, where)
        return value  # an int stays an int, so that a record reads back byte for byte
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise InvalidRecord(f"{where} is {type(value).__name__}, expected {tp.__name__}")


def dumps(value: Any, header: Mapping[str, Any]) -> bytes:
    """A value as its JSON document: `header` (its format and kind) first, then its fields, keys sorted."""
    return json.dumps({**header, **as_data(value)}, indent=1, sort_keys=True, allow_nan=False).encode()


def loads(tp: type, raw: bytes, header: Mapping[str, Any], key: str | None = None) -> Any:
    """The value of type `tp` that the document `raw` holds, read strictly; InvalidRecord (one line) when the
    document is not JSON, holds NaN or Infinity, has another `header` (format, kind) or names another key
    than `key` (the key its place in the store gives it)."""
    name = header.get("kind", tp.__name__)

    def refuse(text: str) -> None:
        raise InvalidRecord(f"{text} is not a finite number")

    try:
        data = json.loads(raw, parse_constant=refuse)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidRecord(f"{name} is not valid JSON") from None
    if not isinstance(data, dict) or any(data.get(field) != want for field, want in header.items()):
        expected = ", ".join(f"{field} {want!r}" for field, want in header.items())
        raise InvalidRecord(f"not a {name} document of {expected}")
    value = load(tp, {k: v for k, v in data.items() if k not in header}, name, strict=True)
    if key is not None and getattr(value, "key", None) != key:
        raise InvalidRecord(f"{name} names another key than its file's")
    return value


def _check_finite(value: Any, where: str) -> None:
    """Python's JSON reader takes NaN and Infinity, which no JSON writer may write back: a record
    holding one is invalid, wherever in it."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRecord(f"{where} is {value}, not a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")
