"""Concept banks and dataset examples on disk: typed values, one JSON file each, crops as small WebP.

Torch-free, so the site can read it. Layout inside the cache folder:

    <cache>/concepts/<key[:2]>/<key>/{bank.json, <sha256[:16]>.webp ...}       one class's concepts
    <cache>/examples/<key[:2]>/<key>/{examples.json, <sha256[:16]>.webp ...}   one layer's dataset examples
                                                   (their crops, and one small WebP per source image)
    <cache>/similar/<model>-<weights[:16]>.json                                   similar concepts of the current banks
    <cache>/examples-pass/<pass key>[.<shard>].{pt,json}    an unfinished pass's state; a shard's finished part

The key is the sha256 of everything the result depends on (model weights, the images'
fingerprint, the layer, every setting), so a finished entry is never computed again and a
changed input never reads a stale one. Crops are written first (content-addressed names) and
the JSON last, each atomically: a process killed at any moment leaves a complete entry or no
JSON, and an entry whose JSON does not parse, names another key, or lists a crop that is not
there counts as absent and is computed again.

A cache may come from anyone, so the JSON's crop names are data: each must be a plain name of a
regular file in the entry's own folder (atlas.safe_paths), listed in the JSON's `files` with its
size and sha256 (format 2). Sizes are checked on reading, hashes where the bytes are read (the
site, before copying a crop); an entry that fails is corrupt, with the reason.

The values and their JSON form are owned by atlas.record, beside the render record: this module
does the files. Concept vectors are stored exactly, as base64 of little-endian float32, so a concept's digest
(the sha256 of those bytes, as `atlas.objectives.Direction` computes it) is the same after a
round trip and keys the concept's visualization.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from atlas import store
from atlas.atomic import atomic_write, refuse_links
from atlas.cache import safe_name
from atlas.concepts.formats import (
    BANK,
    BANK_KIND,
    CONCEPTS_FORMAT,
    EXAMPLES,
    EXAMPLES_KIND,
    PART_KIND,
    SIMILAR_KIND,
    Concept,
    ConceptBank,
    Crop,
    ExamplePart,
    ExampleSet,
    FileInfo,
    SimilarSet,
    dumps_concepts,
    dumps_value,
)
from atlas.errors import AtlasError
from atlas.kind import Kind
from atlas.record import direction_id
from atlas.safe_paths import UnsafeName, read_entry_file

FORMAT = CONCEPTS_FORMAT
WEBP_QUALITY = 80
# Side of every stored crop (concept patches, dataset examples): pages show them at this size or less.
CROP_SIDE = 128
# A dataset example's source image, whole: its longest side, and a low quality, since pages show it
# at half this side under its crop, only to place the crop's box (1-3 KB on photographs).
SOURCE_SIDE = 128
SOURCE_QUALITY = 50
# How a concept's MACO picture is made: its direction at its layer, by cosine (True) or by dot
# product (False). Cosine, measured on Lite0 (docs/concepts.md, tests/data/compare_concept_objectives.py):
# its pictures transfer to their class far better than dot's (18 pictures: top-5 3 against 0, class
# probability 0.021 against 0.001). The authors' dot x cosine^2 expresses the concept a little better
# (own share 0.64 against 0.60) but holds the class less (0.014), so it is not the default.
VISUALIZATION_COSINE = True


_V = TypeVar("_V", ConceptBank, ExampleSet)
_K = TypeVar("_K")

def encode_vector(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")


def encode_webp(pixels: np.ndarray, quality: int = WEBP_QUALITY) -> bytes:
    """(H, W, 3) uint8 -> WebP bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGB").save(buffer, format="WEBP", quality=quality)
    return buffer.getvalue()


CROP_NAME = re.compile(r"[0-9a-f]{16}\.webp")


def is_crop_name(name: str) -> bool:
    """Whether `name` is one `crop_name` gives: the site takes a crop's URL, its file and its place in a page's
    crop list from it, so a cache that names a crop otherwise ("x y.png", ".git") names no crop."""
    return CROP_NAME.fullmatch(name) is not None


def crop_name(data: bytes) -> str:
    return f"{hashlib.sha256(data).hexdigest()[:16]}.webp"


def visualization_id(bank: ConceptBank, concept: Concept) -> str:
    """The objective id of `concept`'s MACO picture: `atlas render` renders it under this id and
    the site finds the render by it (the id follows the vector, so a new bank gets new pictures)."""
    return direction_id(bank.layer, VISUALIZATION_COSINE, concept.digest)


# --- writing and reading --------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)  # a site of 1000 banks asks for the folder of each of their 100,000 crops
def _folder(root: Path, kind: Kind, key: str) -> Path:
    return store.entry_folder(root, kind.name, key)


def _write(root: Path, folder: Path, name: str, value: Any, crops: Mapping[str, bytes]) -> Path:
    value = dataclasses.replace(value, files={crop: FileInfo.of(data) for crop, data in sorted(crops.items())})
    try:
        refuse_links(root, folder)  # before a crop already there is taken for one of this entry
        for crop, data in crops.items():
            if not (folder / crop).is_file():
                atomic_write(folder / crop, data)
        atomic_write(folder / name, dumps_concepts(value))
    except OSError as exc:
        raise AtlasError(f"cannot write {folder}: {exc.strerror or exc}; "
                         "check the cache folder or pick another with --cache") from exc
    return folder / name


def _pass_folder(root: str | Path) -> Path:
    """`<cache>/examples-pass`, refused when it is a link: checkpoints are written, and parts read and
    deleted, there."""
    folder = Path(root) / "examples-pass"
    refuse_links(Path(root), folder)
    return folder


def examples_checkpoint(root: str | Path, keys: Iterable[str]) -> Path:
    """Where an unfinished dataset-example pass for these example sets keeps its running state.
    The keys cover the model, the images and the settings, so a checkpoint only resumes its own pass."""
    return _pass_folder(root) / f"{PART_KIND.key({'example sets': sorted(keys)})}.pt"


def _read(folder: Path, kind: Kind, key: str) -> Any:
    value, why = store.inspect(folder, kind.name, key)
    return value if why is None else None


def write_bank(root: str | Path, bank: ConceptBank, crops: Mapping[str, bytes]) -> Path:
    """Store a class's bank and its crops (name -> WebP bytes), the JSON last."""
    return _write(Path(root), _folder(Path(root), BANK_KIND, bank.key), BANK, bank, crops)


def read_bank(root: str | Path, key: str) -> ConceptBank | None:
    """The finished bank under `key`, or None (missing, incomplete or unreadable)."""
    return _read(_folder(Path(root), BANK_KIND, key), BANK_KIND, key)


def write_examples(root: str | Path, examples: ExampleSet, crops: Mapping[str, bytes]) -> Path:
    return _write(Path(root), _folder(Path(root), EXAMPLES_KIND, examples.key), EXAMPLES, examples, crops)


def read_examples(root: str | Path, key: str) -> ExampleSet | None:
    return _read(_folder(Path(root), EXAMPLES_KIND, key), EXAMPLES_KIND, key)


def entry_folder(root: str | Path, value: ConceptBank | ExampleSet) -> Path:
    return _folder(Path(root), BANK_KIND if isinstance(value, ConceptBank) else EXAMPLES_KIND, value.key)


def crop_path(root: str | Path, value: ConceptBank | ExampleSet, crop: Crop) -> Path:
    """Where a crop of a value read by this module is: its name was checked as a plain name on reading."""
    return entry_folder(root, value) / crop.image


def banks(root: str | Path, problems: list[str] | None = None) -> Iterator[ConceptBank]:
    """Every finished bank in the cache, in key order; with `problems`, one line is added there for
    each entry that is not usable (an unfinished one is not a problem)."""
    return store.entries(root, BANK_KIND.name, problems)


def example_sets(root: str | Path, problems: list[str] | None = None) -> Iterator[ExampleSet]:
    return store.entries(root, EXAMPLES_KIND.name, problems)


def current_banks(root: str | Path, model: str, weights_sha256: str,
                  problems: list[str] | None = None) -> dict[int, ConceptBank]:
    """Class index -> the newest bank of this model's weights (runs with other settings leave older ones)."""
    return _newest(banks(root, problems), model, weights_sha256, lambda bank: bank.class_index)


def current_examples(root: str | Path, model: str, weights_sha256: str,
                     problems: list[str] | None = None) -> dict[str, ExampleSet]:
    """Layer -> the newest dataset examples of this model's weights."""
    return _newest(example_sets(root, problems), model, weights_sha256, lambda examples: examples.layer)


def vector_problem(bank: ConceptBank, channels: int | None) -> str | None:
    """Why `bank`'s concept vectors do not fit its layer of `channels` channels (None: unknown), or None."""
    wrong = next((c for c in bank.concepts if channels is not None and c.channels != channels), None)
    if wrong is None:
        return None
    return f"concept {wrong.index}'s vector has {wrong.channels} entries, layer {bank.layer} has {channels} channels"


def _newest(values: Iterable[_V], model: str, weights_sha256: str, slot: Callable[[_V], _K]) -> dict[_K, _V]:
    """Per slot, the newest of `values` made with this model's weights."""
    newest: dict[_K, _V] = {}
    for value in values:
        if (value.model, value.weights_sha256) == (model, weights_sha256):
            key = slot(value)
            if key not in newest or value.created > newest[key].created:
                newest[key] = value
    return newest


# --- similar concepts and the parts of a sharded example pass --------------------------------------
def _write_value(root: str | Path, path: Path, value: SimilarSet | ExamplePart) -> Path:
    try:
        atomic_write(path, dumps_value(value), within=Path(root))
    except OSError as exc:
        raise AtlasError(f"cannot write {path}: {exc.strerror or exc}; "
                         "check the cache folder or pick another with --cache") from exc
    return path


def similar_path(root: str | Path, model: str, weights_sha256: str) -> Path:
    """One file per model and weights: a new set of banks replaces the similar concepts of the old one."""
    return Path(root) / "similar" / f"{safe_name(model)}-{weights_sha256[:16]}.json"


def write_similar(root: str | Path, value: SimilarSet) -> Path:
    return _write_value(root, similar_path(root, value.model, value.weights_sha256), value)


def read_similar(root: str | Path, model: str, weights_sha256: str) -> SimilarSet | None:
    """The stored similar concepts of this model's weights, or None; the caller compares its key."""
    value = store.read_file(root, similar_path(root, model, weights_sha256), SIMILAR_KIND.name)
    return value if value is not None and (value.model, value.weights_sha256) == (model, weights_sha256) else None


def pass_key(keys: Iterable[str], count: int = 1, chunk: int = 0) -> str:
    """The identity of a dataset-example pass: the example sets it makes and, when sharded, how the images are
    dealt out (the shard count and the chunk size), so that shards of another split never mix."""
    material: dict[str, Any] = {"example sets": sorted(keys)}
    if count > 1:
        material |= {"shards": count, "chunk": chunk}
    return PART_KIND.key(material)


def shard_checkpoint(root: str | Path, keys: Iterable[str], shard: int, count: int, chunk: int) -> Path:
    """Where shard `shard` of `count` keeps its unfinished pass (`examples_checkpoint` for one process)."""
    if count == 1:
        return examples_checkpoint(root, keys)
    return _pass_folder(root) / f"{pass_key(keys, count, chunk)}.{shard}.pt"


def part_path(root: str | Path, part: ExamplePart) -> Path:
    return _pass_folder(root) / f"{pass_key(part.sets, part.count, part.chunk)}.{part.shard}.json"


def write_part(root: str | Path, part: ExamplePart) -> Path:
    return _write_value(root, part_path(root, part), part)


def read_parts(root: str | Path, keys: Iterable[str]) -> list[ExamplePart]:
    """Every readable part of a pass making these example sets, whatever its split, in (count, chunk, shard) order."""
    sets = tuple(sorted(keys))
    found = []
    for path in sorted(_pass_folder(root).glob("*.json")):
        part = store.read_file(root, path, PART_KIND.name)
        if part is not None and part.sets == sets and path == part_path(root, part):
            found.append(part)
    return sorted(found, key=lambda p: (p.count, p.chunk, p.shard))


def remove_pass(root: str | Path, part: ExamplePart) -> None:
    """Delete a merged pass's parts and checkpoints (another finisher may have deleted them first)."""
    stem = pass_key(part.sets, part.count, part.chunk)
    for path in _pass_folder(root).glob(f"{stem}.*"):
        path.unlink(missing_ok=True)


def verified_crop(source: Path, sha256: str | None) -> bytes:
    """The bytes of the crop file `source`, read without following a link and equal to `sha256` (its bank's
    or example set's listing); AtlasError naming the fix otherwise."""
    try:
        data = read_entry_file(source.parent, source.name)
    except UnsafeName as exc:
        raise AtlasError(f"crop {exc}: run `atlas concepts` again to rewrite it") from None
    if sha256 is None or hashlib.sha256(data).hexdigest() != sha256:
        raise AtlasError(f"crop {source.name} does not match its sha256: run `atlas concepts` again to rewrite it")
    return data
