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
[-1, 1], a wrong type) is skipped with a one-line warning, never a crash. This module is the
format's one owner; its `KIND` is a file kind of atlas.store, which reads every stored file.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from atlas import typed_json
from atlas.atomic import atomic_write
from atlas.errors import AtlasError
from atlas.kind import Kind
from atlas.typed_json import InvalidRecord

FORMAT = 1
HEADER = {"format": FORMAT, "kind": "matches"}


@dataclass(frozen=True)
class Side:
    """One model of a pair: its identity and the layers searched, with their channel counts."""

    name: str
    weights_sha256: str
    layers: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        if any(count <= 0 for _, count in self.layers):
            raise InvalidRecord(f"{self.name}'s layers are not [name, channels] pairs of a positive count")

    def channels(self, layer: str) -> int | None:
        return next((count for name, count in self.layers if name == layer), None)


class Match(NamedTuple):
    """A mutual best pair, stored as the row [layer_a, channel_a, layer_b, channel_b, correlation]."""

    layer_a: str
    channel_a: int
    layer_b: str
    channel_b: int
    correlation: float


@dataclass(frozen=True)
class MatchSet:
    key: str
    models: tuple[Side, Side]
    images: dict[str, Any]  # listing_sha256, count, skipped
    settings: dict[str, Any]
    matches: tuple[Match, ...]
    seconds: float = 0.0
    device: str = ""
    finished: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.images.get("listing_sha256"), str) or not isinstance(self.images.get("count"), int):
            raise InvalidRecord("images has no listing_sha256 and count")
        a, b = self.models
        for n, m in enumerate(self.matches):
            for side, layer, channel in ((a, m.layer_a, m.channel_a), (b, m.layer_b, m.channel_b)):
                count = side.channels(layer)
                if count is None:
                    raise InvalidRecord(f"match {n} names layer {layer!r}, not one of {side.name}'s listed layers")
                if not 0 <= channel < count:
                    raise InvalidRecord(f"match {n} names channel {channel}, outside {side.name} {layer}'s {count}")
            if not -1.0 - 1e-6 <= m.correlation <= 1.0 + 1e-6:
                raise InvalidRecord(f"match {n}'s correlation {m.correlation!r} is not in [-1, 1]")


def key_of(a: Side, b: Side, listing_sha256: str, settings: Mapping[str, Any]) -> str:
    """sha256 of everything the result depends on: both models (name, weights, layers), the images'
    listing and the method's settings. The pair is sorted, so A-B and B-A are one entry."""
    sides = sorted([[s.name, s.weights_sha256, [list(la) for la in s.layers]] for s in (a, b)])
    return KIND.key({"models": sides, "images": listing_sha256, "settings": dict(settings)})


KIND = Kind(name="matches", folder="matches", value=MatchSet, document=None,
            loads=lambda raw, key: typed_json.loads(MatchSet, raw, HEADER, key),
            dumps=lambda value: typed_json.dumps(value, HEADER),
            salt=HEADER)


# --- the file (a file kind of atlas.store, which registers KIND: imported where used) --------------
def write(cache: str | Path, value: MatchSet) -> Path:
    """Atomic: a killed process leaves the whole file or none."""
    from atlas import store

    path = store.file_path(cache, KIND.name, value.key)
    try:
        atomic_write(path, KIND.dumps(value), within=Path(cache))
    except OSError as exc:
        raise AtlasError(f"cannot write {path}: {exc.strerror or exc}; check the cache folder's permissions") from exc
    return path


def stored(cache: str | Path) -> list[MatchSet]:
    """Every valid match set of the cache; each invalid one is skipped with a one-line warning."""
    from atlas import store

    problems: list[str] = []
    found = list(store.entries(cache, KIND.name, problems))
    for problem in problems:
        warnings.warn(f"skipped stored matches {problem}", stacklevel=2)
    return found


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
