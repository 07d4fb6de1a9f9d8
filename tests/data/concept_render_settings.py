"""Which settings draw a concept so that its picture holds it: the measure of the concept cards.

    PYTHONPATH=. .venv/bin/python tests/data/concept_render_settings.py WORK [--shown 6] [--settings ...]

Lite0 (bundled weights); `atlas concepts` (10 concepts a class, 20 images a class) on
atlas.bench.concepts.sample_folder (scikit-image's `chelsea` as tabby, `coffee` as espresso) into
WORK/cache (kept, so that `atlas render` and `atlas build` can reuse the banks); the first `--shown`
concepts of each bank rendered through the engine with each setting, each concept with the seed that
`atlas render` gives its default (cosine) render, in every setting: so the "cosine, cpu" pictures are
the ones `atlas render --preset cpu` stores, and their rows can be read from its records instead.
Each picture is measured as `atlas render` stores it: its expression
(atlas.concepts.expression.concept_shares on the uint8 picture, as the records' `expression`) and
its class's hold (atlas.scoring, the generator's top-1 rate on the large crops, as the cards show).
Prints the table of docs/concepts.md ("Concept pictures that hold their concept") and WORK/table.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from atlas.bench.concepts import sample_folder
from atlas.cache import Cache
from atlas.concepts import store
from atlas.concepts.expression import as_squares, concept_shares
from atlas.concepts.run import ConceptRequest, run_concepts
from atlas.entry import to_uint8
from atlas.models import load_model
from atlas.objectives import direction
from atlas.render import render
from atlas.scoring import Judge, judge_images
from atlas.seeds import job_seed
from atlas.settings import RenderSettings

SETTINGS = {  # name -> (preset, direction options)
    "cosine, cpu": ("cpu", {"cosine": True}),
    "dot x cos^2, cpu": ("cpu", {"power": 2}),
    "cosine, cpu-fine": ("cpu-fine", {"cosine": True}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--shown", type=int, default=6, help="concepts rendered a class (default 6)")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    start = time.perf_counter()
    loaded = load_model("efficientnet_lite0")
    images, cache = args.work / "images", args.work / "cache"
    if not images.exists():
        sample_folder(images, images_per_class=20, seed=0)
    run_concepts(loaded, ConceptRequest(images, cache, concepts=10, per_class=20), report=print)
    banks = sorted(store.banks(cache), key=lambda bank: bank.class_index)
    shown = [(bank, i) for bank in banks for i in range(min(args.shown, len(bank.concepts)))]
    print(f"{len(banks)} banks, {len(shown)} concepts, {time.perf_counter() - start:.0f} s", flush=True)
    rows = {}
    for name in args.settings:
        preset, options = SETTINGS[name]
        objectives = [direction(bank.layer, bank.concepts[i].values, **options) for bank, i in shown]
        seeds = [job_seed(store.visualization_id(bank, bank.concepts[i]), 0) for bank, i in shown]
        result = render(loaded, objectives, RenderSettings.make(preset), seeds)
        pixels = [to_uint8(image) for image in result.images]
        stored = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255
        judged = judge_images(stored, [Judge(loaded, "generator")], [bank.class_index for bank, _ in shown])
        per = []
        for k, (bank, i) in enumerate(shown):
            vectors = torch.from_numpy(np.stack([c.values for c in bank.concepts]))
            shares = concept_shares(loaded, bank.layer, as_squares([pixels[k]], loaded.input_size), vectors)[0]
            rank = 1 + int((shares > shares[i]).sum())
            hold = judged[k]["large"].models[0].target_top1_rate
            per.append({"class": bank.class_index, "concept": i, "share": float(shares[i]), "rank": rank,
                        "hold": hold})
        rows[name] = {"seconds": result.seconds, "pictures": per}
        print(f"{name}: {result.seconds:.0f} s; " + " ".join(f"{p['share']:.2f}/{p['rank']}" for p in per), flush=True)
        (args.work / "table.json").write_text(json.dumps(rows, indent=1))
    stored = stored_rows(cache, shown)
    if stored:
        rows["cosine, cpu (atlas render's records)"] = stored
    print("\n| setting | own share (mean) | rank 1 | class hold (large crops, mean) | s an image |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        per = row["pictures"]
        print(f"| {name} | {np.mean([p['share'] for p in per]):.2f} | {sum(p['rank'] == 1 for p in per)} of "
              f"{len(per)} | {np.mean([p['hold'] for p in per]):.2f} | {row['seconds'] / len(per):.1f} |")
    print(f"total {time.perf_counter() - start:.0f} s")


def stored_rows(cache: Path, shown: list) -> dict | None:
    """The default (cosine, cpu) row read from the records `atlas render --preset cpu` wrote into the
    cache for the same concepts and seeds, when it has them all: the pipeline's own measure."""
    found = {r.objective.id: r for r in Cache(cache).render_records()
             if r.objective.kind == "concept" and r.status == "ok" and r.preset.get("name") == "cpu"
             and r.expression is not None}
    records = [found.get(store.visualization_id(bank, bank.concepts[i])) for bank, i in shown]
    if None in records:
        return None
    per = [{"class": bank.class_index, "concept": i, "share": r.expression.share, "rank": r.expression.rank,
            "hold": r.judging["large"].models[0].target_top1_rate} for (bank, i), r in zip(shown, records, strict=True)]
    return {"seconds": sum(r.timing.seconds for r in records), "pictures": per}


if __name__ == "__main__":
    main()
