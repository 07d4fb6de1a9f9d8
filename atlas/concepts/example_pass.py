"""The dataset-example pass of `atlas concepts`: one stream over the sample's images, or a shard's share of it.

A shard takes every N-th chunk of `chunk` images (class by class, the same batches as one process,
so the same activations), keeps a running top-k per layer (`atlas.concepts.examples.RunningTopK`),
saves it after a class at most once a minute so that a killed shard resumes after its last saved
class, and ends as a part (`atlas.record.ExamplePart`, stored by `atlas.concepts.store`). An image's
id is its place in the whole sample and the top-k breaks ties by it, so merging the parts of all
shards gives exactly the top-k of one pass; the merge reads the parts only, so any shard (or
`atlas concepts --merge`) can run it, as often as it likes.
"""

from __future__ import annotations

import base64
import io
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atlas.atomic import atomic_write
from atlas.concepts import craft
from atlas.concepts.examples import RunningTopK, region
from atlas.concepts.formats import ChannelExamples, Crop, ExamplePart, ExampleSet, LayerTops
from atlas.concepts.images import ImageFolder, SourceCrops, load_squares
from atlas.concepts.store import (
    CROP_SIDE,
    SOURCE_QUALITY,
    SOURCE_SIDE,
    crop_name,
    encode_vector,
    encode_webp,
    read_parts,
    shard_checkpoint,
    write_part,
)
from atlas.errors import AtlasError
from atlas.jobs import Shard, select_shard
from atlas.models import LoadedModel
from atlas.objectives import ActivationCapture
from atlas.safe_paths import read_entry_file

Progress = Callable[..., Any]


def shard_part(loaded: LoadedModel, cache: Path, folder: ImageFolder, layers: Mapping[str, Sequence[int]],
               keys: Sequence[str], k: int, chunk: int, shard: Shard, report: Callable[[str], None],
               progress: Progress | None) -> list[ExamplePart]:
    """This shard's pass over its chunks of images, as a part (saved in the cache when sharded); a shard whose
    part is saved already does not pass again."""
    if shard.count > 1:
        for part in read_parts(cache, keys):
            if (part.count, part.chunk, part.shard) == (shard.count, chunk, shard.index):
                return [part]
    mine = chunks(folder, chunk, shard)
    report(f"dataset examples of {', '.join(layers)}: one pass over "
           f"{sum(len(folder.classes[n].files[start : start + chunk]) for n, start in mine)} images"
           + (f" (shard {shard}: one chunk of {chunk} images in {shard.count})" if shard.count > 1 else ""))
    started = time.perf_counter()
    checkpoint = shard_checkpoint(cache, keys, shard.index, shard.count, chunk)
    trackers, grids, read, skipped = stream_examples(loaded, folder, layers, k, chunk, progress,
                                                     checkpoint=checkpoint, shard=shard)
    part = ExamplePart(
        sets=tuple(sorted(keys)), shard=shard.index, count=shard.count, chunk=chunk, images=read, skipped=skipped,
        seconds=time.perf_counter() - started,
        layers=tuple(LayerTops(layer, grids.get(layer, (0, 0)), t.values.shape[0], encode_vector(t.values.numpy()),
                               tuple(t.images.flatten().tolist()), tuple(t.positions.flatten().tolist()))
                     for layer, t in trackers.items()))
    if shard.count > 1:  # one process keeps its checkpoint until the example sets are written
        write_part(cache, part)  # before the checkpoint goes: a kill between them only repeats the merge
        checkpoint.unlink(missing_ok=True)
    return [part]


def complete_parts(root: Path, keys: Sequence[str], count: int | None = None,
                   chunk: int | None = None) -> list[ExamplePart] | None:
    """All parts of one split of the pass (this `count` and `chunk`, or any split), or None when none is whole."""
    splits: dict[tuple[int, int], dict[int, ExamplePart]] = {}
    for part in read_parts(root, keys):
        splits.setdefault((part.count, part.chunk), {})[part.shard] = part
    for (n, size), parts in splits.items():
        if (count is None or n == count) and (chunk is None or size == chunk) and len(parts) == n:
            return [parts[i] for i in range(n)]
    return None


def missing_parts(root: Path, keys: Sequence[str]) -> str:
    splits: dict[int, set[int]] = {}
    for part in read_parts(root, keys):
        splits.setdefault(part.count, set()).add(part.shard)
    if not splits:
        return ("no shard has saved dataset examples for these settings: run the shards (`atlas concepts --shard "
                "I/N` with the same settings), then --merge")
    count, done = max(splits.items(), key=lambda item: len(item[1]) / item[0])
    missing = ", ".join(str(i) for i in range(count) if i not in done)
    return (f"the dataset examples of shard(s) {missing} of {count} are not saved yet: run them (`atlas concepts "
            f"--shard I/{count}` with the same settings; they resume), then --merge again")


def merge(parts: Sequence[ExamplePart], layers: Mapping[str, Sequence[int]], k: int,
           sources: Sequence[tuple[str, int]]):
    """(trackers, grids, images read, skipped, seconds) of the whole pass from its parts: the same top-k as
    one process, since the order of peaks is total (peak, then image id) and image ids are global."""
    trackers = {layer: RunningTopK(len(channels), k) for layer, channels in layers.items()}
    grids: dict[str, tuple[int, int]] = {}
    for part in parts:
        found = {tops.layer: tops for tops in part.layers}
        if set(found) != set(trackers):
            raise AtlasError(f"shard {part.shard}/{part.count}'s part holds layers {sorted(found)}, not "
                             f"{sorted(trackers)}: delete the cache's examples-pass folder and run the shards again")
        for layer, tops in found.items():
            try:
                values = torch.from_numpy(np.frombuffer(base64.b64decode(tops.values), dtype="<f4").copy())
            except ValueError:
                values = None
            channels = trackers[layer].values.shape[0]
            count = -1 if values is None else values.numel()
            shape = (channels, count // channels if channels else 0)  # a shard that read no image: width 0
            fits = tops.channels == channels and count == shape[0] * shape[1] == len(tops.images) == len(tops.positions)
            if not fits or any(not 0 <= i < len(sources) for i in tops.images):
                raise AtlasError(f"shard {part.shard}/{part.count}'s part of layer {layer} does not fit the images "
                                 "and channels of this run: delete it in the cache's examples-pass and run it again")
            if count:
                grids[layer] = tops.grid
            trackers[layer].fold(values.view(shape), torch.tensor(tops.images).view(shape),
                                 torch.tensor(tops.positions).view(shape))
    return (trackers, grids, sum(p.images for p in parts), sum(p.skipped for p in parts),
            sum(p.seconds for p in parts))


def sample_files(folder: ImageFolder) -> list[tuple[str, int]]:
    """(file, class index) of every image of the sample: an image's id is its position here."""
    return [(file, images.index) for images in folder.classes for file in images.files]


def chunks(folder: ImageFolder, chunk: int, shard: Shard) -> list[tuple[int, int]]:
    """This shard's chunks, (class position, first file): every count-th chunk of `chunk` files, class by class."""
    every = [(n, start) for n, images in enumerate(folder.classes) for start in range(0, len(images.files), chunk)]
    return select_shard(every, shard)


def stream_examples(loaded: LoadedModel, folder: ImageFolder, layers: Mapping[str, Sequence[int]], k: int,
                    batch_size: int = 64, progress: Progress | None = None, *, checkpoint: Path | None = None,
                    checkpoint_seconds: float = 60.0, shard: Shard | None = None):
    """One pass over the folder's sample (this shard's chunks of `batch_size` images of it): a running top-k
    per layer, the grid of each layer's map, the images read and the files skipped.

    With a `checkpoint` path the running state is saved there after a class whenever
    `checkpoint_seconds` have passed since the last save, and a pass that finds one resumes after
    its last class: a pass over ImageNet killed near its end does not start again from the first image."""
    trackers = {layer: RunningTopK(len(channels), k) for layer, channels in layers.items()}
    index = {layer: torch.tensor(list(channels), dtype=torch.long) for layer, channels in layers.items()}
    grids: dict[str, tuple[int, int]] = {}
    read = skipped = done = 0
    if checkpoint is not None and (state := _read_pass(checkpoint, trackers)) is not None:
        done, grids, read, skipped = state
    offsets = np.cumsum([0] + [len(c.files) for c in folder.classes]).tolist()
    mine: dict[int, list[int]] = {}
    for n, start in chunks(folder, batch_size, shard or Shard()):
        mine.setdefault(n, []).append(start)
    size = {n: sum(len(folder.classes[n].files[s : s + batch_size]) for s in starts) for n, starts in mine.items()}
    bar = progress(total=sum(size.values()), unit="img", desc="examples") if progress else None
    if bar is not None and done:
        bar.update(sum(v for n, v in size.items() if n < done))
    saved = time.perf_counter()
    try:
        with ActivationCapture(loaded.module, set(layers), logits=False) as capture:
            for number, images in enumerate(folder.classes[done:], start=done + 1):
                for start in mine.get(number - 1, ()):
                    files = images.files[start : start + batch_size]
                    squares = load_squares(folder.root, files, loaded.input_size)
                    skipped += len(squares.skipped)
                    if bar is not None:
                        bar.update(len(squares.files) + len(squares.skipped))
                    if not squares.files:
                        continue
                    read += len(squares.files)
                    position = {file: offsets[number - 1] + start + i for i, file in enumerate(files)}
                    ids = torch.tensor([position[f] for f in squares.files], dtype=torch.long)
                    with torch.no_grad():
                        maps = capture(craft.to_model_input(loaded, torch.from_numpy(squares.pixels))).layers
                    for layer, tracker in trackers.items():
                        grids[layer] = tuple(maps[layer].shape[-2:])
                        tracker.update(maps[layer][:, index[layer].to(maps[layer].device)], ids)
                if checkpoint is not None and time.perf_counter() - saved >= checkpoint_seconds:
                    _save_pass(checkpoint, number, trackers, grids, read, skipped)
                    saved = time.perf_counter()
    finally:
        if bar is not None:
            bar.close()
    return trackers, grids, read, skipped


def _save_pass(path: Path, done: int, trackers: Mapping[str, RunningTopK], grids: Mapping[str, tuple[int, int]],
               read: int, skipped: int) -> None:
    state = {"done": done, "read": read, "skipped": skipped, "grids": {k: list(v) for k, v in grids.items()},
             "trackers": {k: [t.values, t.images, t.positions] for k, t in trackers.items()}}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue(), durable=False)


def _read_pass(path: Path, trackers: Mapping[str, RunningTopK]):
    """(classes done, grids, images read, skipped) of a saved pass, its trackers restored; None when there is
    none or it does not fit (a damaged file costs only the restart of the pass). A checkpoint that is a link is
    none: its folder is checked when the path is made (`shard_checkpoint`), the file here."""
    try:
        state = torch.load(io.BytesIO(read_entry_file(path.parent, path.name)), weights_only=True)
        if set(state["trackers"]) != set(trackers):
            return None
        restored = {}
        for layer, (values, images, positions) in state["trackers"].items():
            if not values.shape == images.shape == positions.shape \
                    or values.shape[0] != trackers[layer].values.shape[0]:
                return None
            restored[layer] = (values, images, positions)
        result = (int(state["done"]), {k: tuple(v) for k, v in state["grids"].items()}, int(state["read"]),
                  int(state["skipped"]))
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError, KeyError, ValueError, TypeError,
            AttributeError):
        return None  # missing, or damaged: the pass starts over
    for layer, (values, images, positions) in restored.items():
        tracker = trackers[layer]
        tracker.values, tracker.images, tracker.positions = values, images, positions
    return result


def example_set(loaded: LoadedModel, folder: ImageFolder, layer: str, channels: Sequence[int], key: str,
                 setting: Mapping[str, Any], tracker: RunningTopK, grid: tuple[int, int], read: int,
                 skipped: int) -> tuple[ExampleSet, dict[str, bytes]]:
    size = setting["region"]
    sources = sample_files(folder)
    needed = sorted(set(tracker.images.flatten().tolist()))
    squares = load_squares(folder.root, [sources[i][0] for i in needed], loaded.input_size)
    where = {file: n for n, file in enumerate(squares.files)}
    files: dict[str, bytes] = {}
    result = []
    cutter = SourceCrops(folder.root, setting.get("crop_side", CROP_SIDE))
    thumbnails: dict[str, str | None] = {}  # source file -> its thumbnail: made once, while its crop's image is open
    for row, channel in enumerate(channels):
        crops, classes = [], []
        for value, image, position in zip(tracker.values[row].tolist(), tracker.images[row].tolist(),
                                          tracker.positions[row].tolist(), strict=True):
            file, class_index = sources[image]
            if file not in where:  # changed on disk since the pass: leave it out
                continue
            n = where[file]
            left, top, side = region(position, grid, loaded.input_size, size)
            placement = squares.placements[n]
            box = placement.source_box(left, top, side)
            data = encode_webp(cutter.cut(file, box, squares.pixels[n, top : top + side, left : left + side]))
            files[crop_name(data)] = data
            if file not in thumbnails:
                thumbnails[file] = _thumbnail(cutter, file, files)
            crops.append(Crop(file, box, float(value), crop_name(data), placement.size, thumbnails[file]))
            classes.append(class_index)
        result.append(ChannelExamples(channel, tuple(crops), tuple(classes)))
    return ExampleSet(key=key, model=loaded.name, weights_sha256=loaded.weights_sha256, layer=layer,
                      settings=dict(setting), images=read, skipped=skipped, channels=tuple(result),
                      seconds=0.0), files


def _thumbnail(cutter: SourceCrops, file: str, files: dict[str, bytes]) -> str | None:
    """The name of the small WebP of the whole of `file`, its bytes added to `files`; None when it no longer reads."""
    pixels = cutter.whole(file, SOURCE_SIDE)
    if pixels is None:
        return None
    data = encode_webp(pixels, SOURCE_QUALITY)
    files[crop_name(data)] = data
    return crop_name(data)
