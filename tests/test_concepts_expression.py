"""A picture's concept shares: non-negative, summing to one, and the largest for the concept the
picture was made of (here: activations that are one concept exactly)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atlas.concepts import craft
from atlas.concepts.expression import as_squares, concept_shares
from atlas.models import load_model
from atlas.objectives import ActivationCapture


@pytest.fixture(scope="module")
def tiny():
    return load_model("test_efficientnet", random_weights=True)


def test_each_picture_shares_out_to_its_own_concept(tiny):
    layer = craft.feature_layer(tiny).name
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, size=(100, 80, 3), dtype=np.uint8) for _ in range(3)]
    squares = as_squares(pictures, tiny.input_size)
    assert squares.shape == (3, tiny.input_size, tiny.input_size, 3) and squares.dtype == torch.uint8
    with torch.no_grad(), ActivationCapture(tiny.module, {layer}, logits=False) as capture:
        pooled = capture(craft.to_model_input(tiny, squares)).layers[layer].float().mean(dim=(2, 3))
    # concepts that are the pictures' own activations (clamped non-negative): each picture is its own concept
    concepts = pooled.clamp_min(0) + 1e-3
    shares = concept_shares(tiny, layer, squares, concepts)
    assert shares.shape == (3, 3) and bool((shares >= 0).all())
    assert torch.allclose(shares.sum(dim=1), torch.ones(3), atol=1e-5)
    assert shares.argmax(dim=1).tolist() == [0, 1, 2]
