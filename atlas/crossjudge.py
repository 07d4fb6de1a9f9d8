"""`atlas render` with several models, after rendering: every model judges the others' class pictures.

Each model's cached class pictures are judged by every other configured model of the same class
table (atlas.classifier.same_classes) on the judging protocol (atlas.scoring), and each judgment is
cached as its own small entry (atlas.judgment), so that a later run judges only what is new: a
picture rendered since, or a model added.  Nothing is rendered here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from atlas import judgment as judgments
from atlas import store
from atlas.atomic import atomic_write
from atlas.cache import Cache, entry_pixels
from atlas.classifier import load_configured_model, same_classes
from atlas.config import Config
from atlas.errors import AtlasError
from atlas.models import LoadedModel
from atlas.record import IMAGE, RenderRecord
from atlas.scoring import SCALES, Judge, judge_images

BATCH = 16


def judge_across(configs: Sequence[Config], device: str, report: Callable[[str], None] = print) -> int:
    """Judge every model's class pictures in the cache by every other model of `configs` that lacks a
    score of them (neither a judgment nor, as a render-time judge, a place in the record); returns how
    many judgments were made."""
    if len(configs) < 2:
        return 0
    cache = Cache(configs[0].cache)
    crops, seed = configs[0].scoring.crops_on(device), configs[0].scoring.seed  # as the render's own judging
    models = [load_configured_model(c, device=device) for c in configs]
    done = {j.key for j in store.entries(cache.root, judgments.KIND.name)}
    pictures = [r for r in cache.render_records() if isinstance(r, RenderRecord) and r.status == "ok"
                and r.objective.kind == "class" and r.objective.class_index is not None]
    made = 0
    for generator in models:
        own = [r for r in pictures if r.model.name == generator.name
               and r.model.weights_sha256 == generator.weights_sha256]
        for judge in models:
            if judge is generator or not own or not same_classes(judge, generator):
                continue
            todo = [(r, _key(r, judge, crops, seed)) for r in own if not _scored(r, judge)]
            todo = [(r, key) for r, key in todo if key not in done]
            for start in range(0, len(todo), BATCH):
                made += _judge_batch(cache, todo[start:start + BATCH], generator, judge, crops, seed)
            if todo:
                report(f"{judge.name} judged {len(todo)} pictures of {generator.name}")
    return made


def _scored(record: RenderRecord, judge: LoadedModel) -> bool:
    """Whether the render's own record holds the judge's scores (it was a judge when the picture was made)."""
    whole = record.judging.get("whole") if record.judging else None
    return whole is not None and any(m.name == judge.name for m in whole.models)


def _key(record: RenderRecord, judge: LoadedModel, crops: int, seed: int) -> str:
    return judgments.judgment_key(record.key, judge.name, judge.weights_sha256, crops=crops, seed=seed,
                                  scales=SCALES)


def _judge_batch(cache: Cache, batch: Sequence[tuple[RenderRecord, str]], generator: LoadedModel,
                 judge: LoadedModel, crops: int, seed: int) -> int:
    """Judge pictures of one canvas size at a time (a batch is one tensor) and store each judgment."""
    by_size: dict[tuple[int, int], list[tuple[RenderRecord, str, np.ndarray]]] = {}
    for record, key in batch:
        try:
            pixels = entry_pixels(cache.entry_dir(record.key), record.files[IMAGE].sha256)
        except (AtlasError, KeyError):
            continue  # an entry rewritten or removed meanwhile: judged on the next run
        by_size.setdefault(pixels.shape[:2], []).append((record, key, pixels))
    made = 0
    for group in by_size.values():
        images = torch.from_numpy(np.stack([p for _, _, p in group])).permute(0, 3, 1, 2).float() / 255
        targets = [r.objective.class_index for r, _, _ in group]
        with torch.no_grad():
            judged = judge_images(images, [Judge(judge, "judge")], targets, crops=crops, seed=seed)
        for (record, key, _), scales in zip(group, judged, strict=True):
            rates = {}
            for name, scores in scales.items():
                mine = scores.models[0]
                rates[name] = judgments.ScaleRates(mine.target_top1_rate or 0.0, mine.target_top5_rate or 0.0,
                                                   mine.target_prob)
            value = judgments.Judgment(key=key, picture=record.key, generator=generator.name, judge=judge.name,
                                       judge_weights_sha256=judge.weights_sha256,
                                       target=int(record.objective.class_index), crops=crops, seed=seed,
                                       scales=rates, per_picture_boxes=scales["whole"].per_picture_boxes)
            atomic_write(store.file_path(cache.root, judgments.KIND.name, key), judgments.KIND.dumps(value),
                         within=cache.root)
            made += 1
    return made
