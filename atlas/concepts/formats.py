"""The formats of `atlas concepts`' stored values: concept banks, dataset-example sets, similar
concepts and a shard's part of the dataset-example pass.  Their one owner, torch-free.

atlas.concepts.store writes them as
<cache>/concepts/<key[:2]>/<key>/bank.json and <cache>/examples/<key[:2]>/<key>/examples.json
beside their WebP crops; they are not render entries (no record.json, no status), so they have
their own format number and are read strictly: a field this version does not know makes the file
not ours, and the store computes it again.  Format 2 lists every crop's size and sha256 in
`files`, like a render record; a format-1 file has no hashes to check its crops by, so it is
read as needing `atlas concepts` again.  Example sets are format 3: each example also names a
small WebP of its whole source image (`thumbnail`, one file per source image, listed in `files`
like the crops), so a page can show where the example comes from; a format-2 set still reads, its
examples without thumbnails, and `atlas concepts` makes the format-3 set under a new key.
"""

from __future__ import annotations

import array
import base64
import binascii
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any

from atlas.kind import Kind
from atlas.safe_paths import UnsafeName, plain_name
from atlas.typed_json import FileInfo, InvalidRecord, as_data, check_files, load

CONCEPTS_FORMAT = 2
EXAMPLES_FORMAT = 3  # CONCEPTS_FORMAT and source thumbnails


@dataclass(frozen=True)
class Crop:
    """A region of a source image: the file (relative to the images folder), its box in source pixels
    (left, top, right, bottom), the value that ranked it, the WebP's name in the entry folder, the
    source image's size (absent in banks written before it was stored) and, for a dataset example,
    the name of the whole source image's small WebP in the entry folder (absent in concept banks,
    in format-2 example sets, and where the source no longer read when the set was written)."""

    file: str
    box: tuple[int, int, int, int]
    value: float
    image: str
    source_size: tuple[int, int] | None = None  # the source image's (width, height): where the box sits
    thumbnail: str | None = None

    def __post_init__(self) -> None:
        for what, name in (("image", self.image), ("thumbnail", self.thumbnail)):
            if name is None:
                continue
            try:
                plain_name(name)
            except UnsafeName as exc:
                raise InvalidRecord(f"crop {what}: {exc}") from None


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
        check_files(self.files)


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
    format: int = EXAMPLES_FORMAT
    files: dict[str, FileInfo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_files(self.files)


def dumps_concepts(value: ConceptBank | ExampleSet) -> bytes:
    return json.dumps(as_data(value), indent=1, allow_nan=False).encode()


def loads_concepts(kind: type[ConceptBank] | type[ExampleSet], raw: bytes) -> ConceptBank | ExampleSet:
    """A bank or an example set from its JSON file; InvalidRecord (a ValueError) when it is not one."""
    return loads_value(kind, raw)


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


def loads_value(kind: type, raw: bytes) -> Any:
    """Any value of this module (a bank, an example set, a similar set, an example part) from its JSON;
    InvalidRecord (a ValueError) when it is not one."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidRecord(f"{kind.__name__} is not valid JSON") from None
    return load(kind, data, kind.__name__, strict=True)




# --- the kinds (atlas.store.KINDS) -----------------------------------------------------------------
BANK = "bank.json"
EXAMPLES = "examples.json"
_SALT = {"format": CONCEPTS_FORMAT}  # in every key: a new format never reads an old entry


def _document_loads(cls: type, name: str, current: int = CONCEPTS_FORMAT, older: tuple[int, ...] = ()) -> Any:
    """The reader of a bank or example set of format `current`, or of one of the `older` formats it still shows."""
    def loads(raw: bytes, key: str | None) -> Any:
        found = _format_of(raw)
        if isinstance(found, int) and found < CONCEPTS_FORMAT:
            raise InvalidRecord(f"{name} is format {found}, which lists no hashes of its crops: "
                                "run `atlas concepts` again to rebuild it")
        try:
            value = loads_concepts(cls, raw)
        except InvalidRecord as exc:
            raise InvalidRecord(f"{name}: {exc}") from None
        if value.format != current and value.format not in older:
            raise InvalidRecord(f"{name} is format {value.format}, not {current}: "
                                "written by another atlas version")
        if key is not None and value.key != key:
            raise InvalidRecord(f"{name} names another key")
        return value
    return loads


def _value_loads(cls: type) -> Any:
    def loads(raw: bytes, key: str | None) -> Any:
        value = loads_value(cls, raw)
        if value.format != CONCEPTS_FORMAT:
            raise InvalidRecord(f"{cls.__name__} is format {value.format}, not {CONCEPTS_FORMAT}")
        return value
    return loads


def _format_of(raw: bytes) -> object:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data.get("format") if isinstance(data, dict) else None


def crops_of(value: ConceptBank | ExampleSet) -> list[str]:
    """The crop files a bank or example set shows, sorted (so the first bad one reported is always the same)."""
    if isinstance(value, ConceptBank):
        return sorted({c.image for concept in value.concepts for c in concept.crops})
    return sorted({c.image for channel in value.channels for c in channel.examples})


BANK_KIND = Kind(name="concepts", folder="concepts", value=ConceptBank, document=BANK,
                 loads=_document_loads(ConceptBank, BANK), dumps=dumps_concepts, needs=crops_of, salt=_SALT)
# A source thumbnail is not needed: one that fails its check leaves its example shown without it.
EXAMPLES_KIND = Kind(name="examples", folder="examples", value=ExampleSet, document=EXAMPLES,
                     loads=_document_loads(ExampleSet, EXAMPLES, EXAMPLES_FORMAT, older=(CONCEPTS_FORMAT,)),
                     dumps=dumps_concepts, needs=crops_of, salt={"format": EXAMPLES_FORMAT})
SIMILAR_KIND = Kind(name="similar", folder="similar", value=SimilarSet, document=None,
                    loads=_value_loads(SimilarSet), dumps=dumps_value, salt=_SALT)
PART_KIND = Kind(name="example part", folder="examples-pass", value=ExamplePart, document=None,
                 loads=_value_loads(ExamplePart), dumps=dumps_value, salt=_SALT)
