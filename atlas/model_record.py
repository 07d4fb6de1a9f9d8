"""`models/<name>.json`, the cache's model metadata: typed values, JSON out and in. Stdlib only.

The one owner of that file's format (docs/architecture.md): `atlas.metadata` builds a
`ModelInfo` from the model (torch side), `atlas.cache` writes and reads it with `dumps`/`loads`,
and the site reads it without torch. `atlas.models` lists classes and layers as the same
`ClassInfo` and `LayerInfo`.

Reading is as lenient as the site has always been about what is missing: the model's name, weights
hash and classes (listed by index 0..N-1) are required, every other field has a default, so older
files read the same. What is there must be possible, since the site builds every page from it: as
many classes as `num_classes` (none for a model without a classifier), no size below 1 (no count
below 0), and names that are printable, not blank and not longer than a name can be.

A class without a WordNet id has `wnid` "" and is written `null`; `input_size`,
`dataset` and `parameters` are left out while None (files written before them read back byte for byte).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FORMAT = 1

Ranked = tuple[tuple[int, float], ...]  # (class index, score), best first

# The longest class name (and synonym, WordNet id) read: ImageNet's longest is 30 characters and a
# labels file allows 200 (atlas.labels), while each name is repeated on many pages (captions, nearest
# classes, guesses), so a longer one is not a class name but a file that would bloat the whole site.
MAX_CLASS_NAME = 300
MAX_SYNONYMS = 32  # ImageNet's classes have at most 10; the class page lists them all
MAX_MODEL_NAME = 255  # the model's name makes its file and site folder names


class InvalidModelInfo(ValueError):
    """A `models/<name>.json` that cannot be read; the message says why in one line."""


@dataclass(frozen=True)
class ClassInfo:
    index: int
    wnid: str  # WordNet id; "" when the model's classes are not ImageNet's
    name: str
    synonyms: tuple[str, ...]


@dataclass(frozen=True)
class LayerInfo:
    name: str
    channels: int | None  # always known on the torch side; None where the site lists a layer it has no metadata of
    reduction: int | None  # input side / the layer's grid side


@dataclass(frozen=True)
class ModelInfo:
    """What the site needs about the model and cannot compute without torch."""

    name: str
    weights_sha256: str
    weights_source: str
    num_classes: int
    classes: tuple[ClassInfo, ...]
    nearest_classes: dict[int, Ranked]  # class -> nearest classes by cosine of classifier weights
    layers: tuple[LayerInfo, ...]
    channel_top_classes: dict[str, dict[int, Ranked]]  # layer -> channel -> classes it supports most
    hardware: str
    code_version: str
    spectrum_sha256: str  # the renders' spectrum; empty when `atlas concepts` wrote the file, before any render
    input_size: int | None = None
    dataset: str | None = None  # what the classes are called ("ImageNet"); None: unnamed, or a file before the field
    parameters: int | None = None  # the model's parameter count, for the atlas's model cards; None in older files
    mean: tuple[float, ...] | None = None  # the normalisation its input is read with; None in older files
    std: tuple[float, ...] | None = None

    @property
    def dataset_name(self) -> str:
        """The name the site puts before "class", "" for none.  A file written before `dataset` existed
        names ImageNet's classes when it lists 1000 classes with WordNet ids, as every such file did."""
        if self.dataset is not None:
            return self.dataset
        return "ImageNet" if self.num_classes == 1000 and self.classes and all(c.wnid for c in self.classes) else ""


def reads_otherwise(info: ModelInfo, mean: tuple[float, ...], std: tuple[float, ...], input_size: int) -> str | None:
    """How a model reading its input with `mean`, `std` at `input_size` px differs from the file's (where the file
    says), or None. The cache keys a picture by the model's name and weights, not by these: a model that reads
    its input otherwise under the same name would put other pictures under the same keys."""
    for what, there, here in (("input", info.input_size, input_size), ("mean", info.mean, tuple(mean)),
                              ("std", info.std, tuple(std))):
        if there is not None and there != here:
            return f"{what} {_reading(there)} there, {_reading(here)} here"
    return None


def _reading(value: int | tuple[float, ...]) -> str:
    return f"{value} px" if isinstance(value, int) else ", ".join(f"{x:g}" for x in value)


def _ranked_out(ranked: dict[int, Ranked]) -> dict[str, list[list[float]]]:
    return {str(k): [[i, s] for i, s in v] for k, v in ranked.items()}


def to_dict(info: ModelInfo) -> dict[str, Any]:
    """The JSON value, in the file's field order."""
    out: dict[str, Any] = {
        "format": FORMAT,
        "name": info.name,
        "weights_sha256": info.weights_sha256,
        "weights_source": info.weights_source,
        "num_classes": info.num_classes,
    }
    if info.input_size is not None:
        out["input_size"] = info.input_size
    if info.dataset is not None:
        out["dataset"] = info.dataset
    if info.parameters is not None:
        out["parameters"] = info.parameters
    for key, values in (("mean", info.mean), ("std", info.std)):
        if values is not None:
            out[key] = list(values)
    out.update({
        "classes": [{"index": c.index, "wnid": c.wnid or None, "name": c.name, "synonyms": list(c.synonyms)}
                    for c in info.classes],
        "nearest_classes": _ranked_out(info.nearest_classes),
        "layers": [{"name": la.name, "channels": la.channels, "reduction": la.reduction} for la in info.layers],
        "channel_top_classes": {layer: _ranked_out(per) for layer, per in info.channel_top_classes.items()},
        "hardware": info.hardware,
        "code_version": info.code_version,
        "spectrum_sha256": info.spectrum_sha256,
    })
    return out


def dumps(info: ModelInfo) -> bytes:
    return json.dumps(to_dict(info), indent=1, allow_nan=False).encode()


def _ranked_in(ranked: dict[str, Any]) -> dict[int, Ranked]:
    return {int(k): tuple((int(i), _finite(s)) for i, s in v) for k, v in ranked.items()}


def _triple(values: Any, what: str) -> tuple[float, ...] | None:
    if values is None:
        return None
    if not isinstance(values, list) or len(values) != 3:
        raise ValueError(f"{what} must be three numbers, one per RGB channel")
    return tuple(_finite(v) for v in values)


def _finite(value: Any) -> float:
    """A score; NaN and Infinity (which Python's JSON reader takes) are not, nor is text."""
    if isinstance(value, (str, bool)) or not math.isfinite(float(value)):
        raise ValueError(f"score {value!r} is not a finite number")
    return float(value)


def _opt_int(value: Any, field: str = "", least: int | None = None) -> int | None:
    return None if value is None else _int(value, field, least)


def _int(value: Any, field: str, least: int | None = None) -> int:
    """`value` as an int; with `least`, one below it is refused (a size or count cannot be)."""
    number = int(value)
    if least is not None and number < least:
        raise ValueError(f"{field} is {number}, it must be {least} or more")
    return number


def _text(value: Any, field: str, limit: int) -> str:
    """A name: not blank, printable, at most `limit` characters."""
    text = str(value)
    if not text.strip():
        raise ValueError(f"{field} is empty")
    if len(text) > limit or not text.isprintable():
        shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
        raise ValueError(f"{field} {shown} is not a printable name of at most {limit} characters")
    return text


def _class(raw: dict[str, Any]) -> ClassInfo:
    index = int(raw["index"])
    where = f"class {index}"
    synonyms = tuple(_text(s, f"{where}'s synonym", MAX_CLASS_NAME) for s in raw.get("synonyms") or ())
    if len(synonyms) > MAX_SYNONYMS:
        raise ValueError(f"{where} has {len(synonyms)} synonyms, more than {MAX_SYNONYMS}")
    wnid = str(raw.get("wnid") or "")
    return ClassInfo(index, wnid and _text(wnid, f"{where}'s wnid", MAX_CLASS_NAME),
                     _text(raw["name"], f"{where}'s name", MAX_CLASS_NAME), synonyms)


def _dataset(value: Any) -> str:
    """What the classes are called, "" for nothing; the site's headings carry it, so it is held like a class name."""
    text = str(value)
    return text and _text(text, "dataset", MAX_CLASS_NAME)


def renamed_classes(info: ModelInfo, names: Sequence[str]) -> str | None:
    """How `info` names the classes otherwise than `names` ("class 2 is 'rose' there, 'daisy' here"), or None."""
    theirs, ours = tuple(c.name for c in info.classes), tuple(names)
    if theirs == ours:
        return None
    shared = min(len(theirs), len(ours))
    i = next((i for i in range(shared) if theirs[i] != ours[i]), shared)
    return (f"class {i} is {theirs[i]!r} there, {ours[i]!r} here" if i < shared
            else f"{len(theirs)} classes there, {len(ours)} here")


def from_dict(raw: dict[str, Any]) -> ModelInfo:
    """A typed `ModelInfo`; `InvalidModelInfo` when a required field is missing or a value has the wrong shape."""
    try:
        classes = tuple(_class(c) for c in raw["classes"])
        if [c.index for c in classes] != list(range(len(classes))):
            raise ValueError("classes must be listed by index 0..N-1")
        # Every writer lists each of the head's classes (numbered when unnamed) and a model without a
        # classifier has 0 of both, so a table of another length is a damaged file, not a choice.
        num_classes = _int(raw.get("num_classes", len(classes)), "num_classes", 0)
        if num_classes != len(classes):
            raise ValueError(f"num_classes is {num_classes} but the file lists {len(classes)} classes")
        return ModelInfo(
            name=_text(raw["name"], "the model's name", MAX_MODEL_NAME),
            weights_sha256=str(raw["weights_sha256"]),
            weights_source=str(raw.get("weights_source", "")),
            num_classes=num_classes,
            classes=classes,
            nearest_classes=_ranked_in(raw.get("nearest_classes", {})),
            layers=tuple(LayerInfo(str(la["name"]), _opt_int(la.get("channels"), f"layer {la['name']}'s channels", 0),
                                   _opt_int(la.get("reduction"), f"layer {la['name']}'s reduction", 1))
                         for la in raw.get("layers", [])),
            channel_top_classes={str(layer): _ranked_in(per)
                                 for layer, per in (raw.get("channel_top_classes") or {}).items()},
            hardware=str(raw.get("hardware", "")),
            code_version=str(raw.get("code_version", "")),
            spectrum_sha256=str(raw.get("spectrum_sha256", "")),
            input_size=_opt_int(raw.get("input_size"), "input_size", 1),
            dataset=None if raw.get("dataset") is None else _dataset(raw["dataset"]),
            parameters=_opt_int(raw.get("parameters"), "parameters", 0),
            mean=_triple(raw.get("mean"), "mean"),
            std=_triple(raw.get("std"), "std"),
        )
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise InvalidModelInfo(str(exc)) from exc


def loads(raw: bytes | str) -> ModelInfo:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidModelInfo(f"not JSON: {exc}") from exc
    return from_dict(data)
