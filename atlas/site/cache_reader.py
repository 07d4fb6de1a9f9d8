"""Reading a cache for the site (renders and concept entries through atlas.store): plain data, no torch.

The reader trusts the cache's contract: `record.json` is written last, so an entry
without a valid record is not an entry and is skipped (and counted, so the build can say
so). Entries are validated by the cache with the record's own checks (atlas.record), on what
is cheap to check (file sizes against the record); the content hashes are left to the image
stage, which reads the files anyway. What only the model's metadata can tell is checked here:
a class outside the model's classes, a negative channel, a concept vector of the wrong length,
a picture larger than any canvas. A cache is untrusted input: any entry that fails is skipped,
named in `problems` and counted, and the rest of the site is built.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from atlas.cache import Cache, safe_name
from atlas.concepts import similar as concept_similar
from atlas.concepts import store as concept_store
from atlas.concepts.formats import ConceptBank, Crop, ExampleSet
from atlas.errors import AtlasError
from atlas.model_record import InvalidModelInfo, ModelInfo, loads
from atlas.record import ATTRIBUTION, IMAGE, ObjectiveInfo, RenderRecord
from atlas.safe_paths import UnsafeName, read_cache_file

# The largest picture side the site decodes: far above any canvas atlas renders (512 by default),
# so a PNG header claiming more is not a render, and decoding it could take gigabytes.
MAX_IMAGE_SIDE = 8192


class BadEntry(AtlasError):
    """An entry found unusable after reading (a file that is not what its record says), so that the
    build can skip it: `folder` is the entry's, `reason` one line."""

    def __init__(self, folder: Path, reason: str) -> None:
        super().__init__(f"{folder}: {reason}")
        self.folder, self.reason = folder, reason


@dataclass(frozen=True)
class Entry:
    """One cached render: its typed record, where its files are, and its image's size."""

    folder: Path
    record: RenderRecord = field(repr=False)
    size: tuple[int, int] | None  # image (width, height); None when failed

    @property
    def key(self) -> str:
        return self.record.key

    @property
    def status(self) -> str:
        return self.record.status  # "ok" or "failed"

    @property
    def failure(self) -> str | None:
        return None if self.status == "ok" else self.record.failure or "no reason recorded"

    @property
    def finished(self) -> str:
        """ISO time, "" when the record has none."""
        return self.record.timing.finished if self.record.timing else ""

    @property
    def image_sha256(self) -> str | None:
        info = self.record.files.get(IMAGE)
        return info.sha256 if info else None

    @property
    def attribution_sha256(self) -> str | None:
        info = self.record.files.get(ATTRIBUTION)
        return info.sha256 if info else None


@dataclass(frozen=True)
class CacheContents:
    model: ModelInfo
    entries: tuple[Entry, ...]
    skipped: dict[str, int]  # reason -> count of entries the site does not show
    problems: tuple[str, ...]  # one line per skipped invalid entry
    concept_entries: tuple[Entry, ...] = ()  # renders of concepts (`atlas render` after `atlas concepts`)
    banks: dict[int, ConceptBank] = field(default_factory=dict)  # class -> its current concept bank
    examples: dict[str, ExampleSet] = field(default_factory=dict)  # layer -> its current dataset examples
    root: Path | None = None  # the cache folder, where the crops of banks and examples are
    # (class, concept position) -> the most similar concepts of other classes, as `atlas concepts` stored them
    similar: concept_similar.Similar = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what reading took upon itself that the user should know, a line each

    def crop_path(self, value: ConceptBank | ExampleSet, crop: Crop) -> Path:
        assert self.root is not None
        return concept_store.crop_path(self.root, value, crop)

    def crop_sha256(self) -> dict[Path, str]:
        """Cache file of every crop of the current banks and example sets -> its sha256 there."""
        values = [*self.banks.values(), *self.examples.values()]
        if self.root is None or not values:
            return {}
        return {concept_store.entry_folder(self.root, v) / name: info.sha256
                for v in values for name, info in v.files.items()}


def list_models(cache: Path) -> dict[str, Path]:
    """Model name -> its metadata file (`models/<safe name>.json`)."""
    folder = Path(cache) / "models"
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            name = str(json.loads(read_cache_file(Path(cache), path))["name"])
        except (OSError, ValueError, KeyError, TypeError):  # UnsafeName too: a link names no model
            name = path.stem  # read_model says what is wrong with it, if it is picked
        found[name] = path
    return found


def read_cache(cache: Path, model: str | None = None) -> CacheContents:
    """The model metadata and every valid entry of that model (same weights) in `cache`."""
    cache = Path(cache)
    if not cache.is_dir():
        raise AtlasError(f"cache folder {cache} does not exist: run `atlas render` first or pass --cache DIR")
    info = read_model(_pick_model(cache, model))
    entries: list[Entry] = []
    concepts: list[Entry] = []
    skipped: Counter[str] = Counter()
    problems: list[str] = []
    store = Cache(cache)
    for key in store.keys():
        folder = store.entry_dir(key)
        state = store.check(key, verify=False)
        record = state.record
        if folder.is_symlink():  # its files would be read from wherever it points
            skipped["invalid"] += 1
            problems.append(f"{folder}: the entry folder is a symbolic link, not an entry of this cache")
        elif state.status == "missing":
            skipped["unfinished"] += 1
        elif state.status == "corrupt" or record is None:
            skipped["invalid"] += 1
            problems.append(f"{folder}: {state.reason}")
        elif record.model.name != info.name:
            skipped["other model"] += 1
        elif record.model.weights_sha256 != info.weights_sha256:
            skipped["other weights"] += 1
        elif record.objective.kind not in ("class", "channel", "concept"):
            skipped[f"{record.objective.kind} objective"] += 1
        else:
            try:
                _check_objective(record.objective, info)
                entry = Entry(folder, record, png_size(folder / IMAGE) if record.status == "ok" else None)
            except ValueError as exc:
                skipped["invalid"] += 1
                problems.append(f"{folder}: {exc}")
                continue
            (concepts if record.objective.kind == "concept" else entries).append(entry)
    found: list[str] = []
    banks = concept_store.current_banks(cache, info.name, info.weights_sha256, found)
    examples = concept_store.current_examples(cache, info.name, info.weights_sha256, found)
    for bank in list(banks.values()):
        why = _bank_problem(bank, info)
        if why:
            found.append(f"{concept_store.entry_folder(cache, bank)}: {why}")
            del banks[bank.class_index]
    for layer, example_set in list(examples.items()):  # its channels get pages: each must be one of the layer's
        why = _examples_problem(example_set, info)
        if why:
            found.append(f"{concept_store.entry_folder(cache, example_set)}: {why}")
            del examples[layer]
    if found:
        skipped["invalid"] += len(found)
        problems += found
    similar, note = concept_similar.current(cache, banks, info.name, info.weights_sha256)
    return CacheContents(info, tuple(entries), dict(skipped), tuple(problems), tuple(concepts), banks, examples, cache,
                         similar, (note,) if note else ())


def _check_objective(objective: ObjectiveInfo, info: ModelInfo) -> None:
    """Raise ValueError when the objective names a class or channel the model does not have."""
    if objective.class_index is not None and not 0 <= objective.class_index < len(info.classes):
        raise ValueError(f"class_index {objective.class_index} is outside the model's {len(info.classes)} classes")
    if objective.channel is not None:
        channels = next((la.channels for la in info.layers if la.name == objective.layer), None)
        if objective.channel < 0 or (channels is not None and objective.channel >= channels):
            raise ValueError(f"channel {objective.channel} is outside layer {objective.layer}'s channels")


def _crop_names_problem(crops: Iterable[Crop]) -> str | None:
    odd = next((name for crop in crops for name in (crop.image, crop.thumbnail)
                if name is not None and not concept_store.is_crop_name(name)), None)
    return None if odd is None else f"crop {odd!r} is not a name `atlas concepts` writes"


def _examples_problem(examples: ExampleSet, info: ModelInfo) -> str | None:
    channels = next((la.channels for la in info.layers if la.name == examples.layer), None)
    wrong = next((c.channel for c in examples.channels
                  if c.channel < 0 or (channels is not None and c.channel >= channels)), None)
    if wrong is not None:
        return f"channel {wrong} is outside layer {examples.layer}'s channels"
    return _crop_names_problem(crop for c in examples.channels for crop in c.examples)


def _bank_problem(bank: ConceptBank, info: ModelInfo) -> str | None:
    if not 0 <= bank.class_index < len(info.classes):
        return f"class_index {bank.class_index} is outside the model's {len(info.classes)} classes"
    if (odd := _crop_names_problem(crop for c in bank.concepts for crop in c.crops)) is not None:
        return odd
    return concept_store.vector_problem(bank, next((la.channels for la in info.layers if la.name == bank.layer), None))


def _pick_model(cache: Path, model: str | None) -> Path:
    models = list_models(cache)
    if model is not None:
        for name, path in models.items():
            if model in (name, path.stem) or path.stem == safe_name(model):
                return path
        listed = ", ".join(models) or "none"
        raise AtlasError(
            f"the cache {cache} has no metadata for model {model!r} (found: {listed}); pick one with --model")
    if not models:
        raise AtlasError(f"{cache} holds no models/*.json: run `atlas render` or `atlas concepts` into it first")
    if len(models) > 1:
        raise AtlasError(f"{cache} holds several models ({', '.join(models)}): pick one with --model NAME")
    return next(iter(models.values()))


def read_model(path: Path) -> ModelInfo:
    """`models/<name>.json`, read by its owner `atlas.model_record`, checked enough that every page can rely on it."""
    try:
        return loads(read_cache_file(path.parent.parent, path))  # <cache>/models/<name>.json
    except (OSError, InvalidModelInfo, UnsafeName) as exc:
        raise AtlasError(f"cannot read {path} ({exc}): re-run `atlas render` to rewrite the model metadata") from exc


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header, without decoding the image."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path.name} is not a PNG")
    width, height = struct.unpack(">II", head[16:24])
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise ValueError(f"{path.name} is {width} x {height} px, over the {MAX_IMAGE_SIDE} px a render can be")
    return width, height


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of a crop, from its header; ValueError when it is not an image."""
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as exc:
        raise ValueError(f"{path} is not a readable image ({exc})") from exc

