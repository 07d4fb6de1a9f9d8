"""Concept banks and dataset examples on disk: typed values, one JSON file each, crops as small WebP.

Torch-free, so the site can read it. Layout inside the cache folder:

    <cache>/concepts/<key[:2]>/<key>/{bank.json, <sha256[:16]>.webp ...}       one class's concepts
    <cache>/examples/<key[:2]>/<key>/{examples.json, <sha256[:16]>.webp ...}   one layer's dataset examples

The key is the sha256 of everything the result depends on (model weights, the images'
fingerprint, the layer, every setting), so a finished entry is never computed again and a
changed input never reads a stale one. Crops are written first (content-addressed names) and
the JSON last, each atomically: a process killed at any moment leaves a complete entry or no
JSON, and an entry whose JSON does not parse, names another key, or lists a crop that is not
there counts as absent and is computed again.

Concept vectors are stored exactly, as base64 of little-endian float32, so a concept's digest
(the sha256 of those bytes, as `atlas.objectives.Direction` computes it) is the same after a
round trip and keys the concept's visualization.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atlas.cache import atomic_write, canonical_json
from atlas.errors import AtlasError
from atlas.record import direction_id

FORMAT = 1
BANK = "bank.json"
EXAMPLES = "examples.json"
WEBP_QUALITY = 80
# How a concept's MACO picture is made: its direction at its layer, by cosine (True) or by dot
# product (False). Cosine, measured on Lite0 (docs/concepts.md): its pictures read as their class
# (top-5 in 3 of 6, dot 0 of 6) and point closer to their concept (cosine 0.52 against 0.44).
VISUALIZATION_COSINE = True


@dataclass(frozen=True)
class Crop:
    """A region of a source image: the file (relative to the images folder), its box in source pixels
    (left, top, right, bottom), the value that ranked it, and the WebP's name in the entry folder."""

    file: str
    box: tuple[int, int, int, int]
    value: float
    image: str


@dataclass(frozen=True)
class AlignedClass:
    index: int
    wnid: str
    cosine: float


@dataclass(frozen=True)
class Concept:
    index: int  # its row in the factorisation
    vector: str  # base64 of little-endian float32, one entry per channel of the layer
    importance: float  # mean share of the class logit over the class's images, in logit units
    share: float  # importance / mean logit
    top_images: int  # images of which it is the most important concept
    crops: tuple[Crop, ...]
    aligned: tuple[AlignedClass, ...]  # empty when the layer is not the one the classifier reads

    @property
    def values(self) -> np.ndarray:
        return np.frombuffer(base64.b64decode(self.vector), dtype="<f4").copy()

    @property
    def digest(self) -> str:
        return hashlib.sha256(base64.b64decode(self.vector)).hexdigest()[:12]


@dataclass(frozen=True)
class ConceptBank:
    key: str
    model: str
    weights_sha256: str
    class_index: int
    wnid: str
    layer: str
    exact: bool  # importance is an exact share of the logit (else gradient x input, an estimate)
    settings: Mapping[str, Any]
    images: int  # images read
    skipped: int  # files of the sample that could not be decoded
    patches: int
    logit: float  # mean class logit = sum of importances + residual + rest
    residual: float  # mean share of what the concepts do not reconstruct
    rest: float  # the classifier's bias when exact; else what gradient x input leaves out
    relative_error: float  # ||A - UW|| / ||A|| of the patch factorisation
    concepts: tuple[Concept, ...]  # most important first
    seconds: Mapping[str, float]
    created: str = ""  # ISO 8601 UTC time of writing: the newest bank of a class is the current one
    format: int = FORMAT


@dataclass(frozen=True)
class ChannelExamples:
    channel: int
    examples: tuple[Crop, ...]  # highest activation first
    classes: tuple[int, ...]  # the source class of each example


@dataclass(frozen=True)
class ExampleSet:
    key: str
    model: str
    weights_sha256: str
    layer: str
    settings: Mapping[str, Any]
    images: int
    skipped: int
    channels: tuple[ChannelExamples, ...]
    seconds: float
    created: str = ""
    format: int = FORMAT


def encode_vector(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")


def encode_webp(pixels: np.ndarray, quality: int = WEBP_QUALITY) -> bytes:
    """(H, W, 3) uint8 -> WebP bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGB").save(buffer, format="WEBP", quality=quality)
    return buffer.getvalue()


def crop_name(data: bytes) -> str:
    return f"{hashlib.sha256(data).hexdigest()[:16]}.webp"


def key_of(material: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"format": FORMAT, **material})).hexdigest()


def visualization_id(bank: ConceptBank, concept: Concept) -> str:
    """The objective id of `concept`'s MACO picture: `atlas render` renders it under this id and
    the site finds the render by it (the id follows the vector, so a new bank gets new pictures)."""
    return direction_id(bank.layer, VISUALIZATION_COSINE, concept.digest)


# --- typed JSON ------------------------------------------------------------------------------
def _decode(kind: Any, value: Any) -> Any:
    """`value` (parsed JSON) as `kind`, checking types on the way; ValueError when it does not fit."""
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ValueError(f"{kind.__name__} is not an object")
        hints = typing.get_type_hints(kind)
        names = {f.name for f in dataclasses.fields(kind)}
        if set(value) - names:
            raise ValueError(f"{kind.__name__} has unknown fields {sorted(set(value) - names)}")
        return kind(**{name: _decode(hints[name], value[name]) for name in names if name in value})
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, list):
            raise ValueError("expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        if len(args) != len(value):
            raise ValueError("a tuple of the wrong length")
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if origin in (Mapping, dict) or kind is Mapping:
        if not isinstance(value, dict):
            raise ValueError("expected an object")
        return dict(value)
    if kind is Any:
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("expected a number")
        return float(value)
    if kind in (int, str, bool):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"expected {kind.__name__}")
        return value
    if isinstance(kind, types.UnionType) or origin is typing.Union:
        for option in typing.get_args(kind):
            try:
                return _decode(option, value)
            except ValueError:
                continue
        raise ValueError(f"{value!r} fits none of {kind}")
    raise ValueError(f"cannot decode {kind}")


def _encode(value: Any) -> bytes:
    return json.dumps(dataclasses.asdict(value), indent=1, allow_nan=False).encode()


# --- writing and reading --------------------------------------------------------------------
def _folder(root: Path, kind: str, key: str) -> Path:
    return Path(root) / kind / key[:2] / key


def _write(folder: Path, name: str, value: Any, crops: Mapping[str, bytes]) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for crop, data in crops.items():
            if not (folder / crop).is_file():
                atomic_write(folder / crop, data)
        atomic_write(folder / name, _encode(value))
    except OSError as exc:
        raise AtlasError(f"cannot write {folder}: {exc.strerror or exc}; check the cache folder or pick another with --cache") from exc
    return folder / name


def _crops_of(value: ConceptBank | ExampleSet) -> set[str]:
    if isinstance(value, ConceptBank):
        return {c.image for concept in value.concepts for c in concept.crops}
    return {c.image for channel in value.channels for c in channel.examples}


def _read(folder: Path, name: str, kind: type, key: str) -> Any:
    try:
        data = json.loads((folder / name).read_bytes())
        value = _decode(kind, data)
    except (OSError, ValueError, TypeError):  # missing, half-written by an old version, or not ours: absent
        return None
    if value.format != FORMAT or value.key != key:
        return None
    if any(not (folder / crop).is_file() for crop in _crops_of(value)):
        return None
    return value


def write_bank(root: str | Path, bank: ConceptBank, crops: Mapping[str, bytes]) -> Path:
    """Store a class's bank and its crops (name -> WebP bytes), the JSON last."""
    return _write(_folder(Path(root), "concepts", bank.key), BANK, bank, crops)


def read_bank(root: str | Path, key: str) -> ConceptBank | None:
    """The finished bank under `key`, or None (missing, incomplete or unreadable)."""
    return _read(_folder(Path(root), "concepts", key), BANK, ConceptBank, key)


def write_examples(root: str | Path, examples: ExampleSet, crops: Mapping[str, bytes]) -> Path:
    return _write(_folder(Path(root), "examples", examples.key), EXAMPLES, examples, crops)


def read_examples(root: str | Path, key: str) -> ExampleSet | None:
    return _read(_folder(Path(root), "examples", key), EXAMPLES, ExampleSet, key)


def crop_path(root: str | Path, value: ConceptBank | ExampleSet, crop: Crop) -> Path:
    kind = "concepts" if isinstance(value, ConceptBank) else "examples"
    return _folder(Path(root), kind, value.key) / crop.image


def banks(root: str | Path) -> Iterator[ConceptBank]:
    """Every finished bank in the cache, in key order."""
    for folder in sorted((Path(root) / "concepts").glob("??/*")):
        bank = read_bank(root, folder.name)
        if bank is not None:
            yield bank


def example_sets(root: str | Path) -> Iterator[ExampleSet]:
    for folder in sorted((Path(root) / "examples").glob("??/*")):
        examples = read_examples(root, folder.name)
        if examples is not None:
            yield examples


def current_banks(root: str | Path, model: str, weights_sha256: str) -> dict[int, ConceptBank]:
    """Class index -> the newest bank of this model's weights (runs with other settings leave older ones)."""
    newest: dict[int, ConceptBank] = {}
    for bank in banks(root):
        if (bank.model, bank.weights_sha256) == (model, weights_sha256):
            if bank.class_index not in newest or bank.created > newest[bank.class_index].created:
                newest[bank.class_index] = bank
    return newest


def current_examples(root: str | Path, model: str, weights_sha256: str) -> dict[str, ExampleSet]:
    """Layer -> the newest dataset examples of this model's weights."""
    newest: dict[str, ExampleSet] = {}
    for examples in example_sets(root):
        if (examples.model, examples.weights_sha256) == (model, weights_sha256):
            if examples.layer not in newest or examples.created > newest[examples.layer].created:
                newest[examples.layer] = examples
    return newest
