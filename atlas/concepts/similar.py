"""Which concepts of other classes are alike: cosine between concept vectors of the same layer.

Torch-free (numpy), so the site can link "concept 0 is similar to concept 4 of Pekinese"
from the stored banks alone. Banks of different layers or models are never compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from atlas.record import ConceptBank


@dataclass(frozen=True)
class SimilarConcept:
    class_index: int
    wnid: str
    concept: int  # position in that class's bank (0: its most important concept)
    cosine: float


def similar_concepts(banks: Iterable[ConceptBank], top: int = 3) -> dict[tuple[int, int], tuple[SimilarConcept, ...]]:
    """(class index, concept position) -> the `top` most similar concepts of other classes, highest cosine first."""
    banks = list(banks)
    owners, vectors = [], []
    for bank in banks:
        for position, concept in enumerate(bank.concepts):
            owners.append((bank, position))
            vectors.append(concept.values)
    if not vectors:
        return {}
    groups: dict[tuple[str, str, str, int], list[int]] = {}
    for row, (bank, _) in enumerate(owners):
        groups.setdefault((bank.model, bank.weights_sha256, bank.layer, vectors[row].size), []).append(row)
    result: dict[tuple[int, int], tuple[SimilarConcept, ...]] = {}
    for rows in groups.values():
        matrix = np.stack([vectors[r] for r in rows]).astype(np.float64)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        cosine = matrix @ matrix.T
        classes = np.array([owners[r][0].class_index for r in rows])
        cosine[classes[:, None] == classes[None, :]] = -np.inf  # never a concept of the same class
        for i, row in enumerate(rows):
            order = np.argsort(-cosine[i], kind="stable")[:top]
            bank, position = owners[row]
            result[(bank.class_index, position)] = tuple(
                SimilarConcept(int(classes[j]), owners[rows[j]][0].wnid, owners[rows[j]][1], float(cosine[i, j]))
                for j in order if np.isfinite(cosine[i, j]))
    return result
