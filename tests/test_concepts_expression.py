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


def test_a_concept_pictures_expression_ranks_its_own_concept_against_the_bank(tiny):
    """The record's measure: the own concept's share and rank among the bank's concepts, found by the
    direction's vector; a direction that is none of the bank's has none."""
    from atlas.concepts import store
    from atlas.concepts.expression import picture_expression
    from atlas.concepts.formats import Concept, ConceptBank
    from atlas.objectives import direction

    layer = craft.feature_layer(tiny).name
    rng = np.random.default_rng(1)
    pictures = [rng.integers(0, 256, size=(tiny.input_size, tiny.input_size, 3), dtype=np.uint8) for _ in range(3)]
    with torch.no_grad(), ActivationCapture(tiny.module, {layer}, logits=False) as capture:
        squares = as_squares(pictures, tiny.input_size)
        pooled = capture(craft.to_model_input(tiny, squares)).layers[layer].float().mean(dim=(2, 3))
    vectors = (pooled.clamp_min(0) + 1e-3).numpy()
    bank = ConceptBank(
        key="k", model=tiny.name, weights_sha256="0" * 64, class_index=0, wnid="n01440764", layer=layer, exact=True,
        settings={}, images=3, skipped=0, patches=3, logit=1.0, residual=0.0, rest=0.0, relative_error=0.0,
        concepts=tuple(Concept(index=k, vector=store.encode_vector(v), importance=1.0, share=0.3, top_images=1,
                               crops=(), aligned=()) for k, v in enumerate(vectors)), seconds={})
    for k in range(3):  # each picture is its own concept's: first of 3, with the largest share
        found = picture_expression(tiny, bank, direction(layer, vectors[k], cosine=True), pictures[k])
        shares = concept_shares(tiny, layer, squares[k:k + 1], torch.from_numpy(vectors))[0]
        assert (found.rank, found.concepts) == (1, 3) and found.share == round(float(shares[k]), 4)
        assert found.share > 1 / 3 and found.holds
    other = picture_expression(tiny, bank, direction(layer, vectors[1], power=2), pictures[0])  # concept 2 on picture 1
    assert other.rank > 1 and other.share < found.share and not other.holds
    assert picture_expression(tiny, bank, direction(layer, vectors[0] + 1), pictures[0]) is None
