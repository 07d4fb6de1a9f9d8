"""The same unit across models (Rosetta Neurons): the stored kind, its JSON, its key and its file.

Torch-free, so the site can read it; `atlas.rosetta` computes it. One file per (pair of models,
their layers, image folder, settings):

    <cache>/matches/<key[:2]>/<key>.json

    {"format": 1, "kind": "matches", "key": "<64 hex>",
     "models": [{"name": "resnet18", "weights_sha256": "...", "layers": [["layer4", 512]]}, {...}],
     "images": {"listing_sha256": "...", "count": 500, "skipped": 0},
     "settings": {"grid": 7, "resize": "area-or-bilinear", "method": "pearson-mutual-best"},
     "matches": [["layer4", 17, "stages.3", 201, 0.83], ...],
     "seconds": 12.3, "device": "cuda:0", "finished": "2026-12-02T00:00:00Z"}

A match is a mutual best pair over the channels of all listed layers of both models: channel
17 of model 0's `layer4` correlates best with channel 201 of model 1's `stages.3` among all of
model 1's channels, and the other way round. A cache is untrusted input: a file that does not
parse strictly (a channel outside its layer, a correlation that is not a finite number in
[-1, 1], a wrong type) is skipped with a one-line warning, never a crash. Self-contained (this
module is the format's one owner) so that a registry of kinds can take it with a few lines.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas.atomic import atomic_write
from atlas.errors import AtlasError
from atlas.kind import content_key

KIND = "matches"
FORMAT = 1
FOLDER = "matches"


class InvalidMatches(ValueError):
    """A stored match set that does not parse; the message is one line."""


@dataclass(frozen=True)
class Side:
    """One model of a pair: its identity and the layers searched, with their channel counts."""

    name: str
    weights_sha256: str
    layers: tuple[tuple[str, int], ...]

    def channels(self, layer: str) -> int | None:
        return next((count for name, count in self.layers if name == layer), None)


@dataclass(frozen=True)
class Match:
    layer_a: str
    channel_a: int
    layer_b: str
    channel_b: int
    correlation: float


@dataclass(frozen=True)
class MatchSet:
    key: str
    models: tuple[Side, Side]
    images: Mapping[str, Any]  # listing_sha256, count, skipped
    settings: Mapping[str, Any]
    matches: tuple[Match, ...]
    seconds: float = 0.0
    device: str = ""
    finished: str = ""


def key_of(a: Side, b: Side, listing_sha256: str, settings: Mapping[str, Any]) -> str:
    """sha256 of everything the result depends on: both models (name, weights, layers), the images'
    listing and the method's settings. The pair is sorted, so A-B and B-A are one entry."""
    sides = sorted([[s.name, s.weights_sha256, [list(la) for la in s.layers]] for s in (a, b)])
    material = {"kind": KIND, "format": FORMAT, "models": sides, "images": listing_sha256,
                "settings": dict(settings)}
    return content_key(material)


# --- JSON out and in -------------------------------------------------------------------------
def to_dict(value: MatchSet) -> dict[str, Any]:
    return {
        "format": FORMAT, "kind": KIND, "key": value.key,
        "models": [{"name": s.name, "weights_sha256": s.weights_sha256, "layers": [list(la) for la in s.layers]}
                   for s in value.models],
        "images": dict(value.images), "settings": dict(value.settings),
        "matches": [[m.layer_a, m.channel_a, m.layer_b, m.channel_b, m.correlation] for m in value.matches],
        "seconds": value.seconds, "device": value.device, "finished": value.finished,
    }


def dumps(value: MatchSet) -> bytes:
    return json.dumps(to_dict(value), indent=1, sort_keys=True, allow_nan=False).encode()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidMatches(message)


def _side(data: Any, where: str) -> Side:
    _need(isinstance(data, dict) and set(data) == {"name", "weights_sha256", "layers"},
          f"{where} is not an object of name, weights_sha256 and layers")
    _need(isinstance(data["name"], str) and isinstance(data["weights_sha256"], str), f"{where}'s name is not text")
    layers = data["layers"]
    _need(isinstance(layers, list) and all(
        isinstance(la, list) and len(la) == 2 and isinstance(la[0], str) and _is_int(la[1]) and la[1] > 0
        for la in layers), f"{where}'s layers are not [name, channels] pairs")
    return Side(data["name"], data["weights_sha256"], tuple((la[0], la[1]) for la in layers))


def _match(row: Any, a: Side, b: Side, n: int) -> Match:
    _need(isinstance(row, list) and len(row) == 5, f"match {n} is not [layer, channel, layer, channel, r]")
    layer_a, channel_a, layer_b, channel_b, r = row
    for side, layer, channel in ((a, layer_a, channel_a), (b, layer_b, channel_b)):
        count = side.channels(layer) if isinstance(layer, str) else None
        _need(count is not None, f"match {n} names layer {layer!r}, not one of {side.name}'s listed layers")
        _need(_is_int(channel) and 0 <= channel < count,
              f"match {n} names channel {channel!r}, outside {side.name} {layer}'s {count}")
    _need(_is_number(r) and -1.0 - 1e-6 <= r <= 1.0 + 1e-6, f"match {n}'s correlation {r!r} is not in [-1, 1]")
    return Match(layer_a, channel_a, layer_b, channel_b, float(r))


def from_dict(data: Any, key: str | None = None) -> MatchSet:
    """The typed value of a stored match set; InvalidMatches (one line) when anything is off."""
    fields = {"format", "kind", "key", "models", "images", "settings", "matches", "seconds", "device", "finished"}
    _need(isinstance(data, dict), "not a JSON object")
    _need(set(data) == fields, f"fields {sorted(set(data) ^ fields)} are unexpected or missing")
    _need(data["kind"] == KIND and data["format"] == FORMAT, f"not a format-{FORMAT} {KIND} file")
    _need(isinstance(data["key"], str) and (key is None or data["key"] == key), "its key is not its file's name")
    models = data["models"]
    _need(isinstance(models, list) and len(models) == 2, "models is not a pair")
    a, b = _side(models[0], "model 0"), _side(models[1], "model 1")
    _need(isinstance(data["images"], dict) and isinstance(data["images"].get("listing_sha256"), str)
          and _is_int(data["images"].get("count")), "images has no listing_sha256 and count")
    _need(isinstance(data["settings"], dict), "settings is not an object")
    _need(isinstance(data["matches"], list), "matches is not a list")
    _need(_is_number(data["seconds"]) and isinstance(data["device"], str) and isinstance(data["finished"], str),
          "seconds, device or finished has the wrong type")
    matches = tuple(_match(row, a, b, n) for n, row in enumerate(data["matches"]))
    return MatchSet(data["key"], (a, b), data["images"], data["settings"], matches, float(data["seconds"]),
                    data["device"], data["finished"])


def loads(raw: bytes, key: str | None = None) -> MatchSet:
    def refuse(text: str) -> None:
        raise InvalidMatches(f"{text} is not a finite number")

    try:
        data = json.loads(raw, parse_constant=refuse)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMatches(f"not JSON ({exc})") from None
    return from_dict(data, key)


# --- the file --------------------------------------------------------------------------------
def path_of(cache: str | Path, key: str) -> Path:
    return Path(cache) / FOLDER / key[:2] / f"{key}.json"


def write(cache: str | Path, value: MatchSet) -> Path:
    """Atomic: a killed process leaves the whole file or none."""
    path = path_of(cache, value.key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, dumps(value))
    except OSError as exc:
        raise AtlasError(f"cannot write {path}: {exc.strerror or exc}; check the cache folder's permissions") from exc
    return path


def read(cache: str | Path, key: str) -> MatchSet | None:
    """The stored set of `key`, or None when there is none or it does not parse (it is computed again)."""
    try:
        return loads(path_of(cache, key).read_bytes(), key)
    except (OSError, InvalidMatches):
        return None


def stored(cache: str | Path) -> Iterator[MatchSet]:
    """Every valid match set of the cache; each invalid one is skipped with a one-line warning."""
    folder = Path(cache) / FOLDER
    for path in sorted(folder.glob("??/*.json")) if folder.is_dir() else ():
        if path.name.startswith(".") or path.is_symlink():
            continue
        try:
            yield loads(path.read_bytes(), path.stem)
        except (OSError, InvalidMatches) as exc:
            warnings.warn(f"skipped stored matches {path}: {exc}", stacklevel=2)


@dataclass(frozen=True)
class Counterpart:
    """The unit another model has for one of ours: seen from our side of a match set."""

    model: str
    weights_sha256: str
    layer: str
    channel: int
    correlation: float
    images: int


def counterparts(cache: str | Path, model: str, weights_sha256: str) -> dict[tuple[str, int], list[Counterpart]]:
    """(layer, channel) of `model` -> its matches in every other model, the best correlation first.

    Where several stored sets pair `model` with one other model (other images, other settings),
    the newest is used, so a page shows one answer per model."""
    newest: dict[tuple[str, str], tuple[str, MatchSet, int]] = {}
    for value in stored(cache):
        for ours, (side, other) in enumerate((value.models, value.models[::-1])):
            if (side.name, side.weights_sha256) != (model, weights_sha256):
                continue
            if (other.name, other.weights_sha256) == (model, weights_sha256):
                continue  # a model against itself (a check of the method) tells a page nothing
            who = (other.name, other.weights_sha256)
            if who not in newest or value.finished > newest[who][0]:
                newest[who] = (value.finished, value, ours)
    found: dict[tuple[str, int], list[Counterpart]] = {}
    for (name, weights), (_, value, ours) in sorted(newest.items()):
        for m in value.matches:
            here, there = ((m.layer_a, m.channel_a), (m.layer_b, m.channel_b))[:: 1 if ours == 0 else -1]
            found.setdefault(here, []).append(Counterpart(name, weights, there[0], there[1], m.correlation,
                                                          int(value.images["count"])))
    for rows in found.values():
        rows.sort(key=lambda c: (-c.correlation, c.model))
    return found
