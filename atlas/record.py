"""The cache record (`record.json`, format 1): its one owner, torch-free.

Every entry of the cache is one record beside its files.  This module defines the record as
typed, frozen dataclasses, turns them into JSON and back, and validates both a record and the
files it lists; the cache stores the bytes, atlas.entry builds render records from what the
engine returns, the site and `atlas eval` read their fields.  docs/architecture.md shows a
record as written.

Two rules keep the format open without a new version:
- An entry kind is one dataclass registered in `KINDS` under its `KIND`.  Renders were the
  first kind, so a record without a "kind" is a render and a render is written without one.
- A field with the default None is left out while it is None.  Fields added to format 1 after
  its first records are such fields: old records still read, and read back byte for byte.
  Adding a field is one line: `name: type | None = None`.
"""

from __future__ import annotations

import array
import base64
import binascii
import dataclasses
import functools
import hashlib
import json
import math
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Union

from atlas.safe_paths import UnsafeName, plain_name

FORMAT = 1
RECORD = "record.json"
IMAGE = "image.png"
ATTRIBUTION = "attribution.npy"
RENDER = "render"  # the kind of a record that names none
STATUSES = ("ok", "failed")


class InvalidRecord(ValueError):
    """A record that is not a valid format-1 record; the message is the reason, in one line."""


@dataclass(frozen=True)
class FileInfo:
    bytes: int
    sha256: str

    @staticmethod
    def of(data: bytes) -> FileInfo:
        return FileInfo(len(data), hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class ObjectiveInfo:
    """What an image maximises, as the site shows it; `id` is the objective's own id."""

    id: str
    kind: str  # "class", "channel", "concept" (a direction from a class's concept bank), or one the site does not show
    description: str
    class_index: int | None
    layer: str | None
    channel: int | None

    def __post_init__(self) -> None:
        if self.kind == "class" and self.class_index is None:
            raise InvalidRecord("class objective without class_index")
        if self.kind == "channel" and (self.layer is None or self.channel is None):
            raise InvalidRecord("channel objective without layer and channel")
        if self.kind == "concept" and (self.class_index is None or self.layer is None):
            raise InvalidRecord("concept objective without class_index and layer")


def direction_id(layer: str, cosine: bool, digest: str, power: int = 0) -> str:
    """The id of a direction objective, from its vector's digest (the first 12 hex of the sha256 of its
    little-endian float32 bytes): torch-free, so that the site finds a concept's render by its vector.
    The form is `dot`, `cos`, or `dotcos{power}` (dot product times the cosine to that power)."""
    form = f"dotcos{power}" if power else ("cos" if cosine else "dot")
    return f"direction:{layer}:{form}:{digest}"


@dataclass(frozen=True)
class ModelRef:
    """The generating model, enough to tell its weights apart and to redo its preprocessing."""

    name: str
    weights_sha256: str
    weights_source: str | None = None
    input_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Timing:
    seconds: float  # this image's share of its batch
    batch_size: int
    device: str
    finished: str  # ISO time in UTC
    batch_seconds: float | None = None
    scoring_seconds: float | None = None
    shard: str | None = None


@dataclass(frozen=True)
class Retry:
    """Why the stored seed is not the job's own: its first seed gave a non-finite value."""

    first_seed: int
    reason: str


@dataclass(frozen=True)
class TopClass:
    index: int
    prob: float


@dataclass(frozen=True)
class ModelScores:
    """One model's reading of an image: its top-5 and, for class targets, how often it agrees."""

    name: str
    role: str  # "generator" or "judge"
    top5: tuple[TopClass, ...]
    target_top1_rate: float | None
    target_top5_rate: float | None
    target_prob: float | None = None


@dataclass(frozen=True)
class Scores:
    crops: int
    crop_seed: int
    models: tuple[ModelScores, ...]
    crop_scale: tuple[float, float] | None = None


def target_rates(judging: Mapping[str, Scores]) -> dict[str, dict[str, tuple[float | None, float | None]]]:
    """{scale: {model name: (top-1 rate, top-5 rate)}} of one image's judging, for class targets."""
    return {
        scale: {m.name: (m.target_top1_rate, m.target_top5_rate) for m in scores.models}
        for scale, scores in judging.items()
    }


@dataclass(frozen=True)
class ImageStats:
    """Artefact statistics of the stored image (atlas.imagestats computes them)."""

    corner_ratio: float  # mean luminance of the four corner squares over the image's: a glow is > 1
    border_energy_share: float  # share of the luminance's variance in the outer 10% frame
    high_frequency_share: float  # share of the spectral power above half the Nyquist frequency


@dataclass(frozen=True)
class ConceptExpression:
    """How strongly a concept's picture expresses its own concept against the other concepts of its
    class's bank (atlas.concepts.expression): the own concept's share of the picture's concept
    coefficients, its rank among them (1: the largest) and the bank's size."""

    share: float
    rank: int
    concepts: int

    @property
    def holds(self) -> bool:
        """The picture shows its own concept more than any other, and clearly more than an even spread."""
        return self.rank == 1 and self.share >= HOLD_SHARE


HOLD_SHARE = 0.25  # an even spread over a bank of 10 is 0.10 a concept; see docs/concepts.md


@dataclass(frozen=True, kw_only=True)  # keyword-only: fields stay in the order they are written
class RenderRecord:
    """A MACO render: an image and its attribution ("ok"), or why there is none ("failed")."""

    KIND: ClassVar[str] = RENDER
    FILES: ClassVar[tuple[str, ...]] = (IMAGE, ATTRIBUTION)  # what an "ok" entry holds

    key: str
    status: str
    failure: str | None
    objective: ObjectiveInfo
    model: ModelRef
    preset: dict[str, Any]  # the preset's own to_dict(): atlas.presets owns its fields
    param: str
    precision: str | None = None  # "fp32" or "bf16 autocast"; None in records older than bf16
    seed: int
    seed_index: int
    spectrum_sha256: str
    engine_version: str
    objective_value: float | None
    retry: Retry | None = None
    timing: Timing | None
    scores: Scores | None  # the judging's large scale, where records before the judging kept their scores
    judging: dict[str, Scores] | None = None  # scale ("small", "large", "whole") -> scores, atlas.judging
    image_stats: ImageStats | None = None
    expression: ConceptExpression | None = None  # concept pictures only: does it show its own concept?
    files: dict[str, FileInfo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise InvalidRecord(f"unknown status {self.status!r}")
        _check_files(self.files)


Record = RenderRecord  # the union of the registered kinds; a new kind joins here and in KINDS
KINDS: dict[str, type[Record]] = {RenderRecord.KIND: RenderRecord}


def with_files(record: Record, key: str, files: Mapping[str, bytes]) -> Record:
    """`record` as stored under `key` with `files` (name -> bytes; none for a failure)."""
    return dataclasses.replace(record, key=key, files={name: FileInfo.of(data) for name, data in files.items()})


def to_dict(record: Record) -> dict[str, Any]:
    """The record as JSON data, in field order after "format" and "key"."""
    data = as_data(record)
    head: dict[str, Any] = {"format": FORMAT, "key": data.pop("key")}
    if record.KIND != RENDER:
        head["kind"] = record.KIND
    return {**head, **data}


def dumps(record: Record) -> bytes:
    return json.dumps(to_dict(record), indent=1, allow_nan=False).encode()


def from_dict(data: Any, key: str | None = None) -> Record:
    """A record from JSON data, checked field by field; raises InvalidRecord with the reason.

    `key`, when given, is the key of the folder the record was found in: a record naming
    another key belongs elsewhere.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidRecord(f"record.json is not a format-{FORMAT} record")
    if key is not None and data.get("key") != key:
        raise InvalidRecord("record.json names another key")
    kind = data.get("kind", RENDER)
    if kind not in KINDS:
        raise InvalidRecord(f"unknown entry kind {kind!r}")
    if data.get("status") not in STATUSES:
        raise InvalidRecord(f"unknown status {data.get('status')!r}")
    return _load(KINDS[kind], data, "record")


def loads(raw: bytes, key: str | None = None) -> Record:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidRecord("record.json is not valid JSON") from None
    return from_dict(data, key)


def file_problem(record: Record, folder: Path, *, verify: bool) -> str | None:
    """Why `folder`'s files disagree with the record (None when they agree): each listed, of the
    recorded size, and, when `verify`, of the recorded sha256.  A failure holds no files."""
    if record.status != "ok":
        return None
    for name in record.FILES:
        info = record.files.get(name)
        if info is None:
            return f"record.json does not list {name}"
        path = folder / name
        try:
            size = path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != info.bytes:
            return f"{name} has {size} bytes, the record says {info.bytes}"
        if verify and hashlib.sha256(path.read_bytes()).hexdigest() != info.sha256:
            return f"{name} does not match its sha256"
    return None


# --------------------------------------------------------------------------------------------
# Concept banks and dataset examples (`atlas concepts`).  atlas.concepts.store writes them as
# <cache>/concepts/<key[:2]>/<key>/bank.json and <cache>/examples/<key[:2]>/<key>/examples.json
# beside their WebP crops; they are not render entries (no record.json, no status), so they have
# their own format number and are read strictly: a field this version does not know makes the file
# not ours, and the store computes it again.  Format 2 lists every crop's size and sha256 in
# `files`, like a render record; a format-1 file has no hashes to check its crops by, so it is
# read as needing `atlas concepts` again.

CONCEPTS_FORMAT = 2


@dataclass(frozen=True)
class Crop:
    """A region of a source image: the file (relative to the images folder), its box in source pixels
    (left, top, right, bottom), the value that ranked it, the WebP's name in the entry folder, and
    the source image's size (absent in banks written before it was stored)."""

    file: str
    box: tuple[int, int, int, int]
    value: float
    image: str
    source_size: tuple[int, int] | None = None  # the source image's (width, height): where the box sits

    def __post_init__(self) -> None:
        try:
            plain_name(self.image)
        except UnsafeName as exc:
            raise InvalidRecord(f"crop image: {exc}") from None


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

    def __post_init__(self) -> None:
        try:
            raw = base64.b64decode(self.vector, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRecord(f"concept {self.index}'s vector is not base64") from None
        if not raw or len(raw) % 4:
            raise InvalidRecord(f"concept {self.index}'s vector is not a list of float32")
        values = array.array("f", raw)
        if sys.byteorder == "big":
            values.byteswap()
        # float32 values summed as float64 cannot overflow, so the sum is finite exactly when every value is
        if not math.isfinite(sum(values)):
            raise InvalidRecord(f"concept {self.index}'s vector holds NaN or infinity")

    @property
    def channels(self) -> int:
        return len(base64.b64decode(self.vector)) // 4

    @property
    def values(self) -> Any:
        """The vector as a float32 numpy array (numpy imported here only: this module is stdlib-only)."""
        import numpy as np

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
    settings: dict[str, Any]
    images: int  # images read
    skipped: int  # files of the sample that could not be decoded
    patches: int
    logit: float  # mean class logit = sum of importances + residual + rest
    residual: float  # mean share of what the concepts do not reconstruct
    rest: float  # the classifier's bias when exact; else what gradient x input leaves out
    relative_error: float  # ||A - UW|| / ||A|| of the patch factorisation
    concepts: tuple[Concept, ...]  # most important first
    seconds: dict[str, float]
    created: str = ""  # ISO 8601 UTC time of writing: the newest bank of a class is the current one
    format: int = CONCEPTS_FORMAT
    files: dict[str, FileInfo] = field(default_factory=dict)  # crop name -> size and sha256 (the store fills it)

    def __post_init__(self) -> None:
        if len({c.channels for c in self.concepts}) > 1:
            raise InvalidRecord("the bank's concept vectors differ in length")
        _check_files(self.files)


@dataclass(frozen=True)
class ChannelExamples:
    channel: int
    examples: tuple[Crop, ...]  # highest activation first
    classes: tuple[int, ...]  # the source class of each example

    def __post_init__(self) -> None:
        if len(self.classes) != len(self.examples):
            raise InvalidRecord(f"channel {self.channel} lists {len(self.examples)} examples "
                                f"but {len(self.classes)} source classes")


@dataclass(frozen=True)
class ExampleSet:
    key: str
    model: str
    weights_sha256: str
    layer: str
    settings: dict[str, Any]
    images: int
    skipped: int
    channels: tuple[ChannelExamples, ...]
    seconds: float
    created: str = ""
    format: int = CONCEPTS_FORMAT
    files: dict[str, FileInfo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_files(self.files)


def _check_files(files: Mapping[str, FileInfo]) -> None:
    for name in files:
        try:
            plain_name(name)
        except UnsafeName as exc:
            raise InvalidRecord(f"files: {exc}") from None


def dumps_concepts(value: ConceptBank | ExampleSet) -> bytes:
    return json.dumps(as_data(value), indent=1, allow_nan=False).encode()


def loads_concepts(kind: type[ConceptBank] | type[ExampleSet], raw: bytes) -> ConceptBank | ExampleSet:
    """A bank or an example set from its JSON file; InvalidRecord (a ValueError) when it is not one."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidRecord(f"{kind.__name__} is not valid JSON") from None
    return _load(kind, data, kind.__name__, strict=True)


@dataclass(frozen=True)
class SimilarSet:
    """For every concept of a set of banks, the most similar concepts of other classes (atlas.concepts.similar),
    computed once when the banks change: <cache>/similar/<model>-<weights[:16]>.json. `key` covers the sorted
    keys of the banks compared and the settings, so a stored set of other banks reads as stale."""

    key: str
    model: str
    weights_sha256: str
    top: int
    banks: int
    # (class index, concept position, ((class index, wnid, concept position, cosine), ...) highest first)
    concepts: tuple[tuple[int, int, tuple[tuple[int, str, int, float], ...]], ...]
    created: str = ""
    format: int = CONCEPTS_FORMAT


@dataclass(frozen=True)
class LayerTops:
    """One layer's running top-k of a dataset-example shard: (channels, n) float32 peaks as base64 of
    little-endian float32 (exact, and NaN-safe), with the global image id and map position of each."""

    layer: str
    grid: tuple[int, int]
    channels: int
    values: str
    images: tuple[int, ...]  # row-major (channels, n)
    positions: tuple[int, ...]


@dataclass(frozen=True)
class ExamplePart:
    """What one shard of a dataset-example pass found: `shard` of `count`, its images taken in chunks of
    `chunk` (every count-th chunk of the folder's sample); the merge of all `count` parts is the pass."""

    sets: tuple[str, ...]  # the keys of the example sets the pass makes, sorted
    shard: int
    count: int
    chunk: int
    images: int  # images read
    skipped: int  # files of its chunks that could not be decoded
    seconds: float
    layers: tuple[LayerTops, ...]
    format: int = CONCEPTS_FORMAT


def dumps_value(value: SimilarSet | ExamplePart) -> bytes:
    return json.dumps(as_data(value), separators=(",", ":"), allow_nan=False).encode()


def loads_value(kind: type[SimilarSet] | type[ExamplePart], raw: bytes) -> SimilarSet | ExamplePart:
    """A stored similar set or example part; InvalidRecord (a ValueError) when it is not one."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidRecord(f"{kind.__name__} is not valid JSON") from None
    return _load(kind, data, kind.__name__, strict=True)


# --------------------------------------------------------------------------------------------
# The converters: one generic pair, so that a new field or kind needs no code here.


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


def _load(tp: Any, value: Any, where: str, strict: bool = False) -> Any:
    """`value` as `tp`, checked; `strict`: an object with a field `tp` lacks is invalid too."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) > 1:  # a union of dataclasses (never in a render record): the first that fits
            for option in options:
                try:
                    return _load(option, value, where, strict)
                except InvalidRecord:
                    continue
            raise InvalidRecord(f"{where} fits none of {', '.join(o.__name__ for o in options)}")
        return _load(options[0], value, where, strict)
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
                kwargs[f.name] = _load(hints[f.name], value[f.name], f"{where}.{f.name}", strict)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InvalidRecord(f"{where} lacks {f.name}")
        return tp(**kwargs)
    if origin is tuple:
        if not isinstance(value, list) or (args[-1] is not Ellipsis and len(value) != len(args)):
            raise InvalidRecord(f"{where} is not a list of {len(args)}" if args[-1] is not Ellipsis
                                else f"{where} is not a list")
        items = args[:1] * len(value) if args[-1] is Ellipsis else args
        return tuple(_load(t, v, f"{where}[{i}]", strict) for i, (t, v) in enumerate(zip(items, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidRecord(f"{where} is not an object")
        return {str(k): _load(args[1], v, f"{where}.{k}", strict) for k, v in value.items()}
    if tp is Any:
        _check_finite(value, where)
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_finite(value, where)
        return value  # an int stays an int, so that a record reads back byte for byte
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise InvalidRecord(f"{where} is {type(value).__name__}, expected {tp.__name__}")


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
