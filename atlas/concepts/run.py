"""`atlas concepts` behind the command line: which classes, which keys, what is left, in what order.

For each class of the image folder whose concept bank the cache lacks: read its sample,
activations of its patches, a batched NMF (classes in groups of `group`, one call on the
GPU), importance on whole images, crops, aligned classes; then the bank is written before the
next group starts, so a killed run loses at most one group. Dataset examples of the asked
layers follow, in one streamed pass over every class's sample; each layer's result is written
when the pass ends. Last, the similar concepts of the current banks are stored (once per set of banks).

Sharded (`shard` of N, from `--shard` or a launcher): a shard computes the banks of every N-th
class, and passes over every N-th chunk of `batch_size` images of the sample (the same batches as
one process, so the same activations); it saves its running top-k as a part in the cache, and the
shard that finds all N parts merges them into the example sets (`merge` does only that, and the
similar concepts). Image ids are positions in the whole sample and the top-k breaks ties by them,
so the merge gives exactly the examples of one process.

Nothing holds more than one group's activations, one class's images, and the running
top-k of the dataset examples.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atlas.cache import Cache
from atlas.concepts import craft, example_pass, similar
from atlas.concepts.formats import BANK_KIND, EXAMPLES_KIND, AlignedClass, Concept, ConceptBank, Crop
from atlas.concepts.images import ClassImages, ImageFolder, SourceCrops, Squares, load_squares, scan
from atlas.concepts.nmf import nmf
from atlas.concepts.patches import STRIDE_RATIO, patch_grid
from atlas.concepts.store import (
    CROP_SIDE,
    crop_name,
    current_banks,
    encode_vector,
    encode_webp,
    examples_checkpoint,
    read_bank,
    read_examples,
    remove_pass,
    write_bank,
    write_examples,
)
from atlas.config import Concepts
from atlas.errors import AtlasError
from atlas.jobs import Shard, select_shard
from atlas.labels import folder_classes
from atlas.model_record import reads_otherwise
from atlas.models import LoadedModel, classifier_weights, find_layer

VERSION = 2  # bump when a change of the method changes results: it is part of every key
PHASES = ("read", "activations", "nmf", "importance", "crops")
Progress = Callable[..., Any]


@dataclass(frozen=True)
class ConceptRequest:
    images: Path
    cache: Path
    classes: Sequence[int] | None = None  # None: every class folder
    concepts: int = Concepts.concepts  # atlas.config owns the defaults that atlas.toml can change
    layer: str | None = None  # None: the feature map the head pools (exact importance)
    per_class: int = Concepts.images_per_class
    patch: int | None = None  # px on the model's input; None: 64/224 of it, CRAFT's default
    crops: int = 10
    aligned: int = 5
    examples: int = 16
    example_layers: Mapping[str, Sequence[int]] = field(default_factory=dict)  # layer -> channels
    batch_size: int = 64  # patches per forward pass
    group: int = 1  # classes per NMF call
    shard: Shard = Shard()  # this process's share: every N-th class, every N-th chunk of images
    merge: bool = False  # only merge the shards' dataset-example parts (and store the similar concepts)


@dataclass
class ConceptSummary:
    classes: int = 0
    computed: int = 0
    cached: int = 0
    images: int = 0
    skipped: int = 0  # unreadable images and files that are not images
    unreadable: list[str] = field(default_factory=list)  # the first few image files that could not be read
    example_layers: int = 0
    examples_cached: int = 0
    examples_waiting: int = 0  # this shard's part saved, other shards' parts still missing
    empty: list[str] = field(default_factory=list)  # classes without a readable image: no bank
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    banks: dict[int, str] = field(default_factory=dict)  # class -> the key of its bank for this request
    examples: dict[str, str] = field(default_factory=dict)  # layer -> the key of its dataset examples, once stored

    def per_class(self) -> dict[str, float]:
        """Seconds per computed class, per phase."""
        return {name: value / max(1, self.computed) for name, value in self.phases.items()}

    def nothing_read(self, images: Path) -> str | None:
        """Why the run explained nothing, when no class folder held a readable image; None otherwise."""
        if not self.classes or len(self.empty) < self.classes:
            return None
        such = f" (such as {', '.join(self.unreadable)})" if self.unreadable else ""
        return (f"no class folder of {images} holds a readable image{such}: add JPEG or PNG photos to each "
                "class's subfolder")

    def line(self) -> str:
        parts = [f"{self.classes} classes ({self.computed} computed, {self.cached} in the cache)",
                 f"{self.images} images read", f"{self.skipped} skipped"]
        if self.unreadable:
            parts[-1] += (f" (such as {', '.join(self.unreadable[:3])}: not decodable as an image, "
                          "or over atlas's size limits)")
        if self.empty:
            parts.append(f"no readable image in {len(self.empty)} class(es): {', '.join(self.empty[:3])}")
        if self.example_layers or self.examples_cached:
            parts.append(f"dataset examples of {self.example_layers + self.examples_cached} layer(s) "
                         f"({self.examples_cached} in the cache)")
        if self.examples_waiting:
            parts.append(f"dataset examples of {self.examples_waiting} layer(s) waiting for other shards")
        if self.computed:
            split = ", ".join(f"{name} {value:.2f}" for name, value in self.per_class().items())
            parts.append(f"s per class: {split}")
        return f"{'; '.join(parts)}; {self.seconds:.1f} s"


def folder_index(loaded: LoadedModel, images: Path) -> dict[str, int]:
    """The image folder's class folders -> the model's classes, by class name or WordNet id (atlas.labels)."""
    if not loaded.classes:
        raise AtlasError(f"model {loaded.name!r} has no classifier head: concepts explain the classes of a classifier")
    return folder_classes(images, loaded.classes)


def _patch(loaded: LoadedModel, patch: int | None) -> int:
    size = round(loaded.input_size * 64 / 224) if patch is None else patch
    if not 8 <= size <= loaded.input_size:
        raise AtlasError(f"patch size {size} px does not fit the model's {loaded.input_size} px input: "
                         f"pick 8 to {loaded.input_size}")
    return size


def _layer(loaded: LoadedModel, layer: str | None) -> craft.FeatureLayer:
    if layer is None:
        return craft.feature_layer(loaded)
    find_layer(loaded, layer)  # a clear error for a name the model lacks
    try:
        default = craft.feature_layer(loaded)
    except AtlasError:  # no pooled map of its own to compare with: the named layer, estimated
        default = None
    return default if default is not None and default.name == layer else craft.FeatureLayer(layer, exact=False)


def settings(request: ConceptRequest, loaded: LoadedModel) -> dict[str, Any]:
    """Every setting a bank depends on, as it goes into keys and records."""
    return {"version": VERSION, "concepts": request.concepts, "per_class": request.per_class,
            "patch": _patch(loaded, request.patch), "stride": STRIDE_RATIO, "input": loaded.input_size,
            "crops": request.crops, "crop_side": CROP_SIDE, "aligned": request.aligned, "nmf": "hals-nndsvda",
            "clamp": 0.0}


def bank_key(loaded: LoadedModel, layer: str, images: ClassImages, setting: Mapping[str, Any]) -> str:
    return BANK_KIND.key({"kind": "concepts", "model": loaded.name, "weights_sha256": loaded.weights_sha256,
                          "class": images.index, "wnid": images.wnid, "images": images.fingerprint, "layer": layer,
                          "settings": dict(setting)})


def examples_key(loaded: LoadedModel, folder: ImageFolder, layer: str, channels: Sequence[int],
                 setting: Mapping[str, Any]) -> str:
    return EXAMPLES_KIND.key({"kind": "examples", "model": loaded.name, "weights_sha256": loaded.weights_sha256,
                              "images": folder.fingerprint, "layer": layer, "channels": list(channels),
                              "settings": dict(setting)})


MODEL_FILE_FIX = "compute the concepts into another cache folder (--cache), or give the model another name"


def _create_model_file(loaded: LoadedModel, cache: Cache) -> None:
    """The cache's `models/<name>.json`, for a cache that had none once this run has stored something, so that
    `atlas build` shows the concepts and dataset examples before any picture is rendered. No picture made
    it, so it names no spectrum: the first render writes it again with its own. Created only where none is
    by then: a render or another shard that wrote one meanwhile keeps its own."""
    from atlas.metadata import model_info, parameter_device  # the layers and class neighbours: only when written

    cache.create_model(model_info(loaded, parameter_device(loaded), ""))


def run_concepts(loaded: LoadedModel, request: ConceptRequest, *, report: Callable[[str], None] = print,
                 progress: Progress | None = None) -> ConceptSummary:
    """Compute every missing concept bank (and dataset examples) of the request; returns the summary."""
    started = time.perf_counter()
    folder = scan(request.images, folder_index(loaded, request.images), request.per_class, request.classes)
    cache = Cache(request.cache)
    # refused before anything is computed, as `atlas render` refuses it: the site would never show these banks
    existing = cache.model_for(loaded.name, loaded.weights_sha256, MODEL_FILE_FIX)
    reading = None if existing is None else reads_otherwise(existing, loaded.mean, loaded.std, loaded.input_size)
    if reading is not None:  # its banks' keys do not tell the two readings apart
        raise AtlasError(f"the cache {request.cache} holds {loaded.name} reading its input otherwise ({reading}): "
                         f"{MODEL_FILE_FIX}")
    has_model_file = existing is not None
    removed = cache.clean_stale()
    if removed:
        report(f"removed {removed} temporary file(s) left by an interrupted run")
    layer = _layer(loaded, request.layer)
    setting = settings(request, loaded)
    shard = request.shard
    mine = folder.classes if request.merge else select_shard(folder.classes, shard)
    summary = ConceptSummary(classes=len(mine), skipped=folder.not_images)
    todo = []
    for images in mine:
        key = bank_key(loaded, layer.name, images, setting)
        summary.banks[images.index] = key
        if read_bank(request.cache, key) is None:
            todo.append((images, key))
        else:
            summary.cached += 1
    where = f"shard {shard} (from {shard.source}): " if shard.count > 1 and not request.merge else ""
    report(f"{where}{len(mine)} classes in {folder.root}: {len(todo)} to compute, {summary.cached} in the cache; "
           f"layer {layer.name} ({'exact' if layer.exact else 'gradient x input'} importance), "
           f"{request.concepts} concepts, up to {request.per_class} images a class")
    if request.merge:
        if todo:
            report(f"{len(todo)} class(es) have no bank yet, such as {todo[0][0].wnid}: their shard has not "
                   "finished them (run it again: it resumes)")
        todo = []
    weights = classifier_weights(loaded)
    total = sum(len(images.files) for images, _ in todo)
    bar = progress(total=total, unit="img", desc="concepts") if progress and todo else None
    try:
        for start in range(0, len(todo), max(1, request.group)):
            group = todo[start : start + max(1, request.group)]
            for bank, crops in _compute_group(loaded, request, layer, setting, weights, group, summary, bar):
                write_bank(request.cache, bank, crops)
                summary.computed += 1
    finally:
        if bar is not None:
            bar.close()
    if request.example_layers:
        _run_examples(loaded, request, folder, summary, report, progress)
    banks = current_banks(request.cache, loaded.name, loaded.weights_sha256)
    if not has_model_file and (banks or summary.examples):
        _create_model_file(loaded, cache)
    # A shard that finds other shards' classes unfinished leaves the similar concepts to the one that finishes
    # last: it would read every bank only to store a set the next shard replaces.
    finished = shard.count == 1 or request.merge or all(
        (found := banks.get(images.index)) is not None and found.key == bank_key(loaded, layer.name, images, setting)
        for images in folder.classes if images.files)
    if banks and finished and similar.update(request.cache, banks, loaded.name, loaded.weights_sha256):
        report(f"similar concepts of {len(banks)} banks stored")
    summary.seconds = time.perf_counter() - started
    return summary


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _timed(seconds: dict[str, float], phase: str, since: float) -> float:
    now = time.perf_counter()
    seconds[phase] = seconds.get(phase, 0.0) + now - since
    return now


@dataclass
class _Prepared:
    """One class of a group, read and through the model, waiting for the group's NMF."""

    images: ClassImages
    key: str
    squares: Squares
    activations: torch.Tensor  # (patches, C) on the model's device
    seconds: dict[str, float]


def _compute_group(loaded: LoadedModel, request: ConceptRequest, layer: craft.FeatureLayer,
                   setting: Mapping[str, Any], weights: torch.Tensor | None,
                   group: Sequence[tuple[ClassImages, str]], summary: ConceptSummary, bar: Any):
    """Yield (bank, crops) for each class of the group, the NMF of all of them in one call."""
    patch = setting["patch"]
    prepared = []
    for images, key in group:
        seconds: dict[str, float] = {}
        clock = time.perf_counter()
        squares = load_squares(request.images, images.files, loaded.input_size)
        summary.images += len(squares.files)
        summary.skipped += len(squares.skipped)
        summary.unreadable += list(squares.skipped[:3 - len(summary.unreadable)])
        clock = _timed(seconds, "read", clock)
        if bar is not None:
            bar.update(len(images.files))
        if len(squares.files) == 0:
            summary.empty.append(images.wnid)  # nothing to explain it with: no bank, said in the summary
            continue
        activations = craft.patch_activations(loaded, layer.name, torch.from_numpy(squares.pixels), patch,
                                              request.batch_size)
        _timed(seconds, "activations", clock)
        prepared.append(_Prepared(images, key, squares, activations, seconds))
    if not prepared:
        return

    clock = time.perf_counter()
    rows = max(p.activations.shape[0] for p in prepared)
    if rows < request.concepts:
        raise AtlasError(f"{rows} patches cannot give {request.concepts} concepts: add images or lower --concepts")
    stacked = torch.stack([torch.nn.functional.pad(p.activations.clamp_min(0), (0, 0, 0, rows - p.activations.shape[0]))
                           for p in prepared])
    fit = nmf(stacked, request.concepts)
    nmf_seconds = (time.perf_counter() - clock) / len(prepared)  # one call for the group: an equal part each

    for g, item in enumerate(prepared):
        item.seconds["nmf"] = nmf_seconds
        clock = time.perf_counter()
        concepts = fit.concepts[g]
        coefficients = fit.coefficients[g, : item.activations.shape[0]].cpu()
        parts = craft.importance(loaded, layer.name, torch.from_numpy(item.squares.pixels), item.images.index,
                                 concepts, request.batch_size // 2 or 1)
        clock = _timed(item.seconds, "importance", clock)
        bank, crops = _assemble(loaded, request, layer, setting, weights, item, concepts.cpu(), coefficients, parts,
                                float(fit.relative_error[g]))
        _timed(item.seconds, "crops", clock)
        for phase, value in item.seconds.items():
            summary.phases[phase] += value
        yield dataclasses.replace(bank, seconds={p: round(item.seconds[p], 4) for p in PHASES}, created=_now()), crops


def _assemble(loaded: LoadedModel, request: ConceptRequest, layer: craft.FeatureLayer, setting: Mapping[str, Any],
              weights: torch.Tensor | None, item: _Prepared, concepts: torch.Tensor, coefficients: torch.Tensor,
              parts: craft.Importance, relative_error: float) -> tuple[ConceptBank, dict[str, bytes]]:
    """The bank of one class (concepts by importance, crops, aligned classes) and its crops' WebP bytes."""
    images, key, squares = item.images, item.key, item.squares
    patch = setting["patch"]
    grid = patch_grid(loaded.input_size, patch)
    top = craft.top_patches(coefficients, request.crops)
    aligned = None
    if weights is not None and weights.shape[1] == concepts.shape[1] and layer.exact:
        aligned = craft.aligned_classes(concepts, weights, request.aligned)
    wnids = [c.wnid for c in loaded.classes]
    importance = parts.shares.mean(dim=0)
    mean_logit = float(parts.logits.mean())
    leaders = np.bincount(parts.shares.argmax(dim=1).numpy(), minlength=concepts.shape[0])
    files: dict[str, bytes] = {}
    result = []
    sources = SourceCrops(request.images, setting.get("crop_side", CROP_SIDE))
    for k in range(concepts.shape[0]):
        crops = []
        for row in top[k].tolist():
            image, cell = divmod(row, len(grid))
            left, top_px = grid[cell]
            placement = squares.placements[image]
            box = placement.source_box(left, top_px, patch)
            data = encode_webp(sources.cut(squares.files[image], box,
                                           squares.pixels[image, top_px : top_px + patch, left : left + patch]))
            name = crop_name(data)
            files[name] = data
            crops.append(Crop(squares.files[image], box, float(coefficients[row, k]), name, placement.size))
        links = () if aligned is None else tuple(
            AlignedClass(int(i), wnids[int(i)], float(c)) for i, c in zip(aligned[0][k], aligned[1][k], strict=True))
        result.append(Concept(k, encode_vector(concepts[k].numpy()), float(importance[k]),
                              float(importance[k]) / mean_logit if mean_logit else 0.0, int(leaders[k]),
                              tuple(crops), links))
    result.sort(key=lambda c: -c.importance)
    bank = ConceptBank(
        key=key, model=loaded.name, weights_sha256=loaded.weights_sha256, class_index=images.index, wnid=images.wnid,
        layer=layer.name, exact=layer.exact, settings=dict(setting), images=len(squares.files),
        skipped=len(squares.skipped), patches=int(coefficients.shape[0]), logit=mean_logit,
        residual=float(parts.residual.mean()), rest=float(parts.rest.mean()), relative_error=relative_error,
        concepts=tuple(result), seconds={},
    )
    return bank, files


# --- dataset examples ---------------------------------------------------------------------------
def _run_examples(loaded: LoadedModel, request: ConceptRequest, folder: ImageFolder, summary: ConceptSummary,
                  report: Callable[[str], None], progress: Progress | None) -> None:
    setting = {"version": VERSION, "per_class": request.per_class, "examples": request.examples,
               "region": _patch(loaded, request.patch), "input": loaded.input_size, "crop_side": CROP_SIDE}
    requested = {layer: (list(channels), examples_key(loaded, folder, layer, channels, setting))
                 for layer, channels in request.example_layers.items()}
    pending = {}
    for layer, (channels, key) in requested.items():
        if read_examples(request.cache, key) is None:
            pending[layer] = (channels, key)
        else:
            summary.examples_cached += 1
            summary.examples[layer] = key
    if not pending:
        return
    # The pass and its parts are the whole request's, written layers included: a merge cut short between two
    # layers finishes from the same parts, and only the layers still missing are written.
    keys = [key for _, key in requested.values()]
    layers = {layer: channels for layer, (channels, _) in requested.items()}
    shard, chunk = request.shard, max(1, request.batch_size)
    if request.merge:
        parts = example_pass.complete_parts(request.cache, keys)
        if parts is None:
            raise AtlasError(example_pass.missing_parts(request.cache, keys))
    else:
        parts = example_pass.shard_part(loaded, request.cache, folder, layers, keys, request.examples, chunk, shard,
                                        report, progress)
        if shard.count > 1:
            parts = example_pass.complete_parts(request.cache, keys, shard.count, chunk)
            if parts is None:
                if all(read_examples(request.cache, key) is not None for _, key in pending.values()):
                    summary.examples_cached += len(pending)  # merged by a shard that finished at the same time
                    summary.examples.update((layer, key) for layer, (_, key) in pending.items())
                else:
                    summary.examples_waiting += len(pending)
                    report(f"shard {shard}: dataset examples saved as its part; the last shard to finish merges "
                           "the parts (or run `atlas concepts --merge` once all have finished)")
                return
    trackers, grids, read, skipped, seconds = example_pass.merge(parts, layers, request.examples,
                                                                 example_pass.sample_files(folder))
    for layer, (channels, key) in pending.items():
        result, crops = example_pass.example_set(loaded, folder, layer, channels, key, setting, trackers[layer],
                                                 grids.get(layer, (1, 1)), read, skipped)  # no grid: no image
        write_examples(request.cache, dataclasses.replace(result, seconds=seconds, created=_now()), crops)
        summary.example_layers += 1
        summary.examples[layer] = key
    if parts[0].count > 1:
        report(f"dataset examples: merged the parts of {parts[0].count} shards")
        remove_pass(request.cache, parts[0])
    else:
        examples_checkpoint(request.cache, keys).unlink(missing_ok=True)


