"""How strongly a picture expresses each concept of its class: the measure a concept's picture is judged by.

The picture goes back through the model to the bank's layer; its spatially pooled activation is
projected onto the bank's concepts (non-negative coefficients, `nmf_transform`, as CRAFT reads an
image) and each concept's share of the coefficients is returned. A concept's picture that holds
its concept gives that concept the largest share; one that renders as noise spreads it.
docs/concepts.md compares render objectives by the own concept's share.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from atlas.concepts import craft
from atlas.concepts.formats import ConceptBank
from atlas.concepts.nmf import nmf_transform
from atlas.models import LoadedModel
from atlas.objectives import ActivationCapture, Direction, Objective
from atlas.record import ConceptExpression


def as_squares(pictures: list[np.ndarray], side: int) -> torch.Tensor:
    """(H, W, 3) uint8 pictures -> (n, side, side, 3) uint8, resized as a saved picture is read back."""
    return torch.from_numpy(np.stack([
        np.asarray(Image.fromarray(np.ascontiguousarray(p, dtype=np.uint8)).resize((side, side),
                                                                                   Image.Resampling.BICUBIC))
        for p in pictures]))


@torch.no_grad()
def concept_shares(loaded: LoadedModel, layer: str, squares: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
    """(n, K): each concept's share of a picture's non-negative coefficients at `layer`; rows sum to 1
    (0 everywhere for a picture with no coefficient at all). `squares`: (n, S, S, 3) uint8 at the model's
    side; `concepts`: (K, C) the bank's vectors."""
    x = craft.to_model_input(loaded, squares)
    with ActivationCapture(loaded.module, {layer}, logits=False) as capture:
        pooled = capture(x).layers[layer].float().mean(dim=(2, 3))
    u = nmf_transform(pooled.cpu(), concepts.float().cpu())
    return u / u.sum(dim=1, keepdim=True).clamp_min(1e-12)


def picture_expression(loaded: LoadedModel, bank: ConceptBank, objective: Objective,
                       picture: np.ndarray) -> ConceptExpression | None:
    """How strongly `picture` ((S, S, 3) uint8, as stored), rendered for `objective` (a direction of
    one of `bank`'s concepts), expresses that concept against the bank's others: the record's
    `expression`. None when the objective is no direction of the bank's (one from elsewhere)."""
    digests = {term.digest for _, term in objective.terms if isinstance(term, Direction)}
    own = next((i for i, concept in enumerate(bank.concepts) if concept.digest in digests), None)
    if own is None:
        return None
    vectors = torch.from_numpy(np.stack([concept.values for concept in bank.concepts]))
    shares = concept_shares(loaded, bank.layer, as_squares([picture], loaded.input_size), vectors)[0]
    return ConceptExpression(share=round(float(shares[own]), 4), rank=1 + int((shares > shares[own]).sum()),
                             concepts=len(bank.concepts))
