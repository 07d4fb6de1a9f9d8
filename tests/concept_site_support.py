"""The sample cache plus concept banks, dataset examples and concept renders, written directly
(torch-free, no model run): the site tests' fixture for concepts."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from atlas.cache import Cache
from atlas.concepts import store
from atlas.concepts.formats import (
    BANK_KIND,
    EXAMPLES_KIND,
    AlignedClass,
    ChannelExamples,
    Concept,
    ConceptBank,
    Crop,
    ExampleSet,
)
from atlas.kind import content_key
from atlas.record import ConceptExpression, ObjectiveInfo, from_dict
from tests.site_support import MODEL, copy_cache, records

CONCEPTS = 10  # Lens's number: the page budget must hold a full bank
CROPS = 10
EXAMPLES = 16
BANK_CLASSES = (1, 967)
EXAMPLE_LAYER, EXAMPLE_CHANNELS = "conv_head", (42, 101)


def _webp(seed: int, side: int = store.CROP_SIDE) -> bytes:
    """A smooth picture of two colours (small as WebP, unlike noise), different for every seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * x + np.sin(angle) * y + 1) / 2
    a, b = rng.integers(0, 256, size=(2, 3))
    pixels = a[None, None, :] * ramp[..., None] + b[None, None, :] * (1 - ramp[..., None])
    return store.encode_webp(pixels.astype(np.uint8))


def _bank(weights: str, class_index: int, wnid: str, rng: np.random.Generator) -> tuple[ConceptBank, dict]:
    crops: dict[str, bytes] = {}
    concepts = []
    for k in range(CONCEPTS):
        shown = []
        for j in range(CROPS):
            data = _webp(class_index * 1000 + k * 10 + j)
            crops[store.crop_name(data)] = data
            shown.append(Crop(f"{wnid}/{j:03d}.JPEG", (j, 0, j + 64, 64), float(CROPS - j),
                              store.crop_name(data), (500, 375)))
        importance = float(CONCEPTS - k)
        concepts.append(Concept(
            index=k, vector=store.encode_vector(rng.random(1280).astype(np.float32)), importance=importance,
            share=importance / 100, top_images=CONCEPTS - k, crops=tuple(shown),
            aligned=tuple(AlignedClass(i, "n0", 0.5 - n / 100)
                          for n, i in enumerate((class_index, 607, 134, 207, 282)))))
    bank = ConceptBank(
        key=BANK_KIND.key({"class": class_index}), model=MODEL, weights_sha256=weights, class_index=class_index,
        wnid=wnid, layer="bn2", exact=True, settings={"concepts": CONCEPTS}, images=50, skipped=0, patches=800,
        logit=100.0, residual=40.0, rest=5.0, relative_error=0.2, concepts=tuple(concepts), seconds={},
        created="2026-11-27T10:00:00Z")
    return bank, crops


SOURCE_SIZE = (500, 375)


def _source(j: int) -> np.ndarray:
    """Example j's source photograph, SOURCE_SIZE: a smooth ground with a bright disc where example j's box
    is, so that the crop shows the disc and the source thumbnail shows it outlined."""
    width, height = SOURCE_SIZE
    rng = np.random.default_rng(60_000 + j)
    y, x = np.mgrid[0:height, 0:width]
    ramp = (x / width + y / height)[..., None] / 2
    a, b, disc = rng.integers(0, 256, size=(3, 3))
    pixels = a * ramp + b * (1 - ramp)
    left, top = _box(j)[:2]
    pixels[(x - left - 60) ** 2 + (y - top - 60) ** 2 < 45**2] = disc
    return pixels.astype(np.uint8)


def _box(j: int) -> tuple[int, int, int, int]:
    left, top = 20 * j, 15 * (j % 4)
    return left, top, left + 120, top + 120


def _examples(weights: str) -> tuple[ExampleSet, dict]:
    """Channels 42 and 101 of conv_head show the same 16 source images, so each source thumbnail is
    stored once for both."""
    files: dict[str, bytes] = {}
    shown = []
    for j in range(EXAMPLES):
        source = Image.fromarray(_source(j))
        crop = store.encode_webp(np.asarray(source.crop(_box(j)).resize((store.CROP_SIDE,) * 2)))
        whole = store.encode_webp(np.asarray(source.resize((128, 96), Image.Resampling.LANCZOS)), store.SOURCE_QUALITY)
        files[store.crop_name(crop)] = crop
        files[store.crop_name(whole)] = whole
        shown.append(Crop(f"n01440764/{j:03d}.JPEG", _box(j), float(EXAMPLES - j), store.crop_name(crop), SOURCE_SIZE,
                          store.crop_name(whole)))
    channels = [ChannelExamples(c, tuple(shown), tuple([0, 967] * (EXAMPLES // 2 - 1) + [1, 1]))
                for c in EXAMPLE_CHANNELS]
    found = ExampleSet(key=EXAMPLES_KIND.key({"examples": EXAMPLE_LAYER}), model=MODEL, weights_sha256=weights,
                       layer=EXAMPLE_LAYER, settings={}, images=100, skipped=0, channels=tuple(channels),
                       seconds=1.0, created="2026-11-27T10:00:00Z")
    return found, files


def concept_cache(dest: Path) -> Path:
    """A copy of the sample cache with banks of classes 1 and 967 (10 concepts of 10 crops), dataset
    examples of conv_head channels 42 and 101, and renders of concept 1 of each bank (967's first
    concept rendered, 1's first concept failed); every other concept is waiting for `atlas render`."""
    cache = copy_cache(dest)
    weights = json.loads((cache / "models" / f"{MODEL}.json").read_text())["weights_sha256"]
    rng = np.random.default_rng(0)
    for index, wnid in zip(BANK_CLASSES, ("n01443537", "n07920052"), strict=True):
        bank, crops = _bank(weights, index, wnid, rng)
        store.write_bank(cache, bank, crops)
    examples, crops = _examples(weights)
    store.write_examples(cache, examples, crops)
    render_concepts(cache, 967, 1)
    render_concepts(cache, 1, 1, failed=True)
    return cache


def render_concepts(cache: Path, class_index: int, count: int, failed: bool = False,
                    expressions: Sequence[ConceptExpression | None] = ()) -> None:
    """Store renders of the first `count` concepts of a class's bank (the picture of class 134 stands in),
    the k-th with `expressions[k]` as its measured expression (none beyond them)."""
    weights = json.loads((cache / "models" / f"{MODEL}.json").read_text())["weights_sha256"]
    bank = store.current_banks(cache, MODEL, weights)[class_index]
    folder, data = next((f, d) for f, d in records(cache) if d["objective"]["id"] == "class:134")
    template = from_dict(data)
    for k, concept in enumerate(bank.concepts[:count]):
        objective_id = store.visualization_id(bank, concept)
        record = dataclasses.replace(template, objective=ObjectiveInfo(
            objective_id, "concept", f"{MODEL} · concept", class_index, bank.layer, None),
            expression=expressions[k] if k < len(expressions) else None)
        key = content_key({"objective": objective_id})
        if failed:
            Cache(cache).write_entry(key, {}, dataclasses.replace(record, status="failed", failure="non-finite",
                                                                  objective_value=None, scores=None))
        else:
            Cache(cache).write_entry(key, {name: (folder / name).read_bytes() for name in template.FILES}, record)
