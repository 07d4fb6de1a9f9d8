"""Concepts on the real Lite0 weights, on images whose two concepts are known (slow: real weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atlas.concepts import craft, store
from atlas.concepts.images import load_squares
from atlas.concepts.nmf import nmf
from atlas.concepts.patches import patch_grid
from atlas.concepts.run import ConceptRequest, run_concepts
from tests.concept_folders import fraction, majority, make_folder, one_thread  # noqa: F401 - a fixture

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.mark.parametrize("seed", [1, 3])
def test_two_concepts_separate_the_two_photos(tmp_path, lite0, seed):
    side, patch = lite0.input_size, 64
    layouts = make_folder(tmp_path / "images", {"n01440764": 4}, side, seed=seed)
    files = sorted(layouts)
    squares = load_squares(tmp_path / "images", files, side)
    layer = craft.feature_layer(lite0)
    assert layer == craft.FeatureLayer("bn2", exact=True)

    # NMF with 2 concepts: each patch that shows one photo (>= 90% of its pixels) goes to that photo's concept
    acts = craft.patch_activations(lite0, layer.name, torch.from_numpy(squares.pixels), patch)
    fit = nmf(acts.clamp_min(0), 2)
    grid = patch_grid(side, patch)
    corners = [grid[r % len(grid)] for r in range(acts.shape[0])]
    boxes = [(files[r // len(grid)], (*corner, corner[0] + patch, corner[1] + patch))
             for r, corner in enumerate(corners)]
    shown = np.array([fraction(layouts[f], side, box) for f, box in boxes])
    pure = (shown >= 0.9) | (shown <= 0.1)
    labels, assigned = (shown > 0.5).astype(int)[pure], fit.coefficients.argmax(dim=1).numpy()[pure]
    purity = sum(np.bincount(labels[assigned == k], minlength=2).max() for k in range(2)) / pure.sum()
    assert pure.sum() >= 30 and purity >= 0.9, purity

    # the stored bank: each concept's top crops come from one photo, a different one per concept
    run_concepts(lite0, ConceptRequest(tmp_path / "images", tmp_path / "cache", concepts=2, crops=10,
                                       batch_size=32), report=lambda line: None)
    (bank,) = store.banks(tmp_path / "cache")
    sources = [[majority(layouts[c.file], side, c.box) for c in concept.crops] for concept in bank.concepts]
    shares = [np.mean(s) for s in sources]
    assert min(shares) <= 0.1 and max(shares) >= 0.9, sources
    assert sum(c.importance for c in bank.concepts) + bank.residual + bank.rest == pytest.approx(bank.logit, abs=1e-4)
