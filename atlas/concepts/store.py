"""Concept banks and dataset examples on disk: typed values, one JSON file each, crops as small WebP.

Torch-free, so the site can read it. Layout inside the cache folder:

    <cache>/concepts/<key[:2]>/<key>/{bank.json, <sha256[:16]>.webp ...}       one class's concepts
    <cache>/examples/<key[:2]>/<key>/{examples.json, <sha256[:16]>.webp ...}   one layer's dataset examples
    <cache>/similar/<model>-<weights[:16]>.json                                   similar concepts of the current banks
    <cache>/examples-pass/<pass key>[.<shard>].{pt,json}    an unfinished pass's state; a shard's finished part

The key is the sha256 of everything the result depends on (model weights, the images'
fingerprint, the layer, every setting), so a finished entry is never computed again and a
changed input never reads a stale one. Crops are written first (content-addressed names) and
the JSON last, each atomically: a process killed at any moment leaves a complete entry or no
JSON, and an entry whose JSON does not parse, names another key, or lists a crop that is not
there counts as absent and is computed again.

The values and their JSON form are owned by atlas.record, beside the render record: this module
does the files. Concept vectors are stored exactly, as base64 of little-endian float32, so a concept's digest
(the sha256 of those bytes, as `atlas.objectives.Direction` computes it) is the same after a
round trip and keys the concept's visualization.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from atlas.cache import atomic_write, canonical_json, safe_name
from atlas.errors import AtlasError
from atlas.record import (
    CONCEPTS_FORMAT,
    Concept,
    ConceptBank,
    Crop,
    ExamplePart,
    ExampleSet,
    SimilarSet,
    direction_id,
    dumps_concepts,
    dumps_value,
    loads_concepts,
    loads_value,
)

FORMAT = CONCEPTS_FORMAT
BANK = "bank.json"
EXAMPLES = "examples.json"
WEBP_QUALITY = 80
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


def crop_name(data: bytes) -> str:
    return f"{hashlib.sha256(data).hexdigest()[:16]}.webp"


def key_of(material: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"format": FORMAT, **material})).hexdigest()


def visualization_id(bank: ConceptBank, concept: Concept) -> str:
    """The objective id of `concept`'s MACO picture: `atlas render` renders it under this id and
    the site finds the render by it (the id follows the vector, so a new bank gets new pictures)."""
    return direction_id(bank.layer, VISUALIZATION_COSINE, concept.digest)


# --- writing and reading --------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)  # a site of 1000 banks asks for the folder of each of their 100,000 crops
def _folder(root: Path, kind: str, key: str) -> Path:
    return Path(root) / kind / key[:2] / key


def _write(folder: Path, name: str, value: Any, crops: Mapping[str, bytes]) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for crop, data in crops.items():
            if not (folder / crop).is_file():
                atomic_write(folder / crop, data)
        atomic_write(folder / name, dumps_concepts(value))
    except OSError as exc:
        raise AtlasError(f"cannot write {folder}: {exc.strerror or exc}; "
                         "check the cache folder or pick another with --cache") from exc
    return folder / name


def examples_checkpoint(root: str | Path, keys: Iterable[str]) -> Path:
    """Where an unfinished dataset-example pass for these example sets keeps its running state.
    The keys cover the model, the images and the settings, so a checkpoint only resumes its own pass."""
    return Path(root) / "examples-pass" / f"{key_of({'example sets': sorted(keys)})}.pt"


def _crops_of(value: ConceptBank | ExampleSet) -> set[str]:
    if isinstance(value, ConceptBank):
        return {c.image for concept in value.concepts for c in concept.crops}
    return {c.image for channel in value.channels for c in channel.examples}


def _read(folder: Path, name: str, kind: type, key: str) -> Any:
    try:
        value = loads_concepts(kind, (folder / name).read_bytes())
    except (OSError, ValueError):  # missing, half-written by an old version, or not ours: absent
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
    return _newest(banks(root), model, weights_sha256, lambda bank: bank.class_index)


def current_examples(root: str | Path, model: str, weights_sha256: str) -> dict[str, ExampleSet]:
    """Layer -> the newest dataset examples of this model's weights."""
    return _newest(example_sets(root), model, weights_sha256, lambda examples: examples.layer)


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
def _write_value(path: Path, value: SimilarSet | ExamplePart) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, dumps_value(value))
    except OSError as exc:
        raise AtlasError(f"cannot write {path}: {exc.strerror or exc}; "
                         "check the cache folder or pick another with --cache") from exc
    return path


def _read_value(path: Path, kind: type) -> Any:
    try:
        value = loads_value(kind, path.read_bytes())
    except (OSError, ValueError):  # missing, or not ours: absent
        return None
    return value if value.format == FORMAT else None


def similar_path(root: str | Path, model: str, weights_sha256: str) -> Path:
    """One file per model and weights: a new set of banks replaces the similar concepts of the old one."""
    return Path(root) / "similar" / f"{safe_name(model)}-{weights_sha256[:16]}.json"


def write_similar(root: str | Path, value: SimilarSet) -> Path:
    return _write_value(similar_path(root, value.model, value.weights_sha256), value)


def read_similar(root: str | Path, model: str, weights_sha256: str) -> SimilarSet | None:
    """The stored similar concepts of this model's weights, or None; the caller compares its key."""
    value = _read_value(similar_path(root, model, weights_sha256), SimilarSet)
    return value if value is not None and (value.model, value.weights_sha256) == (model, weights_sha256) else None


def pass_key(keys: Iterable[str], count: int = 1, chunk: int = 0) -> str:
    """The identity of a dataset-example pass: the example sets it makes and, when sharded, how the images are
    dealt out (the shard count and the chunk size), so that shards of another split never mix."""
    material: dict[str, Any] = {"example sets": sorted(keys)}
    if count > 1:
        material |= {"shards": count, "chunk": chunk}
    return key_of(material)


def shard_checkpoint(root: str | Path, keys: Iterable[str], shard: int, count: int, chunk: int) -> Path:
    """Where shard `shard` of `count` keeps its unfinished pass (`examples_checkpoint` for one process)."""
    if count == 1:
        return examples_checkpoint(root, keys)
    return Path(root) / "examples-pass" / f"{pass_key(keys, count, chunk)}.{shard}.pt"


def part_path(root: str | Path, part: ExamplePart) -> Path:
    return Path(root) / "examples-pass" / f"{pass_key(part.sets, part.count, part.chunk)}.{part.shard}.json"


def write_part(root: str | Path, part: ExamplePart) -> Path:
    return _write_value(part_path(root, part), part)


def read_parts(root: str | Path, keys: Iterable[str]) -> list[ExamplePart]:
    """Every readable part of a pass making these example sets, whatever its split, in (count, chunk, shard) order."""
    sets = tuple(sorted(keys))
    found = []
    for path in sorted((Path(root) / "examples-pass").glob("*.json")):
        part = _read_value(path, ExamplePart)
        if part is not None and part.sets == sets and path == part_path(root, part):
            found.append(part)
    return sorted(found, key=lambda p: (p.count, p.chunk, p.shard))


def remove_pass(root: str | Path, part: ExamplePart) -> None:
    """Delete a merged pass's parts and checkpoints (another finisher may have deleted them first)."""
    stem = pass_key(part.sets, part.count, part.chunk)
    for path in (Path(root) / "examples-pass").glob(f"{stem}.*"):
        path.unlink(missing_ok=True)
