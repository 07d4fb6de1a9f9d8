"""Which direction objective draws a concept best: dot, cosine, or the authors' dot x cosine^k.

    PYTHONPATH=. .venv/bin/python tests/data/compare_concept_objectives.py [--powers 2 4]

The protocol of docs/concepts.md ("Dot product or cosine?"): Lite0 (bundled weights), two classes
built from scikit-image photos (espresso from `coffee`, tabby from `chelsea`, 10 random crops each,
atlas.bench.concepts.sample_folder), 4 concepts a class; the first 3 concepts of each class are
rendered with every objective form (`cpu` preset at canvas 128, 32 steps, the same seed per concept
in every form). Each picture, resized to 224 as a uint8 image, goes back through the model: its
pooled activation at the bank's layer is projected onto the bank (NMF coefficients, nmf_transform),
giving the own concept's share of the coefficients and the cosine to the concept; the class
probability and whether the class is in the top-5 are read from the logits. Prints the table
(means over the 6 pictures) and, per form, the per-picture own shares. `--repeats R` renders each
concept with R seeds (0..6R-1, the first 6 as without it) for a table over 6R pictures.
About 80 s on 2 CPU cores, plus about 15 s a form per repeat.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from atlas.bench.concepts import sample_folder
from atlas.concepts import craft, store
from atlas.concepts.nmf import nmf_transform
from atlas.concepts.run import ConceptRequest, run_concepts
from atlas.models import load_model
from atlas.objectives import ActivationCapture, direction
from atlas.presets import get_preset
from atlas.render import render

CONCEPTS, SHOWN, IMAGES = 4, 3, 10


def forms(powers: list[int]) -> dict[str, dict]:
    return {"dot": {}, "cosine": {"cosine": True}, **{f"dot x cos^{p}": {"power": p} for p in powers}}


@torch.no_grad()
def read_back(loaded, layer: str, pictures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, 3, S, S) pictures in [0, 1] -> pooled activations (K, C) at `layer` and logits (K, classes),
    each picture resized to the model's side as a saved uint8 image would be."""
    side = loaded.input_size
    squares = np.stack([
        np.asarray(Image.fromarray((p.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
                   .resize((side, side), Image.Resampling.BICUBIC))
        for p in pictures.clamp(0, 1)])
    x = craft.to_model_input(loaded, torch.from_numpy(squares))
    with ActivationCapture(loaded.module, {layer}, logits=True) as capture:
        out = capture(x)
    return out.layers[layer].float().mean(dim=(2, 3)), out.logits.float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--powers", type=int, nargs="*", default=[2, 4], help="k of dot x cos^k (default 2 4)")
    parser.add_argument("--repeats", type=int, default=1, help="seeds per concept (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # HALS on shared cores: one thread is the fast one (tests/concept_folders.py)
    start = time.perf_counter()
    loaded = load_model("efficientnet_lite0")
    preset = get_preset("cpu", canvas=128, steps=32)
    with tempfile.TemporaryDirectory() as work:
        images = sample_folder(Path(work) / "images", images_per_class=IMAGES, seed=0)
        run_concepts(loaded, ConceptRequest(images, Path(work) / "cache", concepts=CONCEPTS),
                     report=lambda line: None)
        banks = sorted(store.banks(Path(work) / "cache"), key=lambda bank: bank.class_index)
    concepts = [(bank, i) for bank in banks for i in range(min(SHOWN, len(bank.concepts)))]
    shown = concepts * args.repeats
    seeds = list(range(len(shown)))
    print(f"{len(banks)} banks ({', '.join(f'{b.class_index} {b.wnid} at {b.layer}' for b in banks)}), "
          f"{len(concepts)} concepts, {len(shown)} pictures a form, {time.perf_counter() - start:.0f} s")

    rows = {}
    for name, options in forms(args.powers).items():
        objectives = [direction(bank.layer, bank.concepts[i].values, **options) for bank, i in shown]
        result = render(loaded, objectives, preset, seeds)
        shares, cosines, probabilities, top5 = [], [], [], 0
        for k, (bank, i) in enumerate(shown):
            w = torch.from_numpy(np.stack([c.values for c in bank.concepts]))
            pooled, logits = read_back(loaded, bank.layer, result.images[k : k + 1])
            u = nmf_transform(pooled, w)[0]
            shares.append(float(u[i] / u.sum().clamp_min(1e-12)))
            cosines.append(float(torch.nn.functional.cosine_similarity(pooled[0], w[i], dim=0)))
            probabilities.append(float(logits.softmax(-1)[0, bank.class_index]))
            top5 += int(bank.class_index in logits[0].topk(5).indices.tolist())
        rows[name] = (np.mean(shares), np.mean(cosines), np.mean(probabilities), top5, shares)
        print(f"{name}: {result.seconds:.0f} s; ids {objectives[0].id} ...")

    print()
    print("| objective | own concept's share of the coefficients | cosine to the concept "
          "| class probability | class in top-5 |")
    print("|---|---:|---:|---:|---:|")
    for name, (share, cosine, probability, top5, _) in rows.items():
        print(f"| {name:<11} | {share:.2f} | {cosine:.2f} | {probability:.3f} | {top5} of {len(shown)} |")
    print()
    for name, (*_, shares) in rows.items():
        print(f"{name:<11} own share per picture: {' '.join(f'{s:.2f}' for s in shares)}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
