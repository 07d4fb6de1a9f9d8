"""The render record (`record.json`, format 1): the render kind's one owner, torch-free.

Every render entry is one record beside its image and attribution.  This module defines the
record as typed, frozen dataclasses, turns them into JSON and back, and describes the render
kind (`KIND`, registered in `atlas.store.KINDS`: the store reads and checks an entry's files by
it); the cache stores the bytes, atlas.entry builds render records from what the engine
returns, the site and `atlas eval` read their fields.  docs/architecture.md shows a record as
written.

A record without a "kind" is a render (other kinds have their own folders and documents).
A field with the default None is left out while it is None.  Fields added to format 1 after
  its first records are such fields: old records still read, and read back byte for byte.
  Adding a field is one line: `name: type | None = None`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from atlas.kind import Kind
from atlas.typed_json import FileInfo, InvalidRecord, as_data, check_files, load

FORMAT = 1
RECORD = "record.json"
IMAGE = "image.png"
ATTRIBUTION = "attribution.npy"
RENDER = "render"  # the kind of a record that names none
STATUSES = ("ok", "failed")


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


# The terms read from one class's logits, by their id's prefix ("logprob:7"), in words: atlas.objectives
# names its terms from it, and the torch-free site reads a class picture's objective id with it.
CLASS_TERM_FORMS = {"class": "logit", "logprob": "log-probability", "margin": "logit minus the mean of the others"}


def class_objective_words(objective_id: str, index: int) -> list[str] | None:
    """The forms of a class objective's terms in order ("class:7+logprob:7" -> ["logit", "log-probability"]);
    None when a term is weighted, of another class or not read from the logits."""
    words = []
    for term in objective_id.split("+"):
        prefix, _, rest = term.partition(":")
        if rest != str(index) or prefix not in CLASS_TERM_FORMS:
            return None
        words.append(CLASS_TERM_FORMS[prefix])
    return words


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
    # True: each picture's own boxes, from the seed and its pixels (atlas.scoring); None (left out of
    # the record): the same boxes for every picture, from the seed alone
    per_picture_boxes: bool | None = None


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
    judging: dict[str, Scores] | None = None  # scale ("small", "large", "whole") -> scores, atlas.scoring
    image_stats: ImageStats | None = None
    expression: ConceptExpression | None = None  # concept pictures only: does it show its own concept?
    files: dict[str, FileInfo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise InvalidRecord(f"unknown status {self.status!r}")
        check_files(self.files)


Record = RenderRecord


def with_files(record: Record, key: str, files: Mapping[str, bytes]) -> Record:
    """`record` as stored under `key` with `files` (name -> bytes; none for a failure)."""
    return dataclasses.replace(record, key=key, files={name: FileInfo.of(data) for name, data in files.items()})


def to_dict(record: Record) -> dict[str, Any]:
    """The record as JSON data, in field order after "format" and "key"."""
    data = as_data(record)
    return {"format": FORMAT, "key": data.pop("key"), **data}


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
    if kind != RENDER:  # other kinds have their own folders and documents (atlas.store.KINDS)
        raise InvalidRecord(f"unknown entry kind {kind!r}")
    if data.get("status") not in STATUSES:
        raise InvalidRecord(f"unknown status {data.get('status')!r}")
    return load(RenderRecord, data, "record")


def loads(raw: bytes, key: str | None = None) -> Record:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidRecord("record.json is not valid JSON") from None
    return from_dict(data, key)


def _needs(record: Record) -> tuple[str, ...]:
    """A failure holds no files."""
    return record.FILES if record.status == "ok" else ()


KIND = Kind(name=RENDER, folder="entries", value=RenderRecord, document=RECORD, loads=loads, dumps=dumps, needs=_needs)
