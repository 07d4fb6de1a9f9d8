"""Which concepts of other classes are alike: cosine between concept vectors of the same layer.

Torch-free (numpy), so the site can link "concept 0 is similar to concept 4 of Pekinese"
from the stored banks alone. Banks of different layers or models are never compared.

All pairs of 1000 classes x 10 concepts are 10^8 cosines: they are computed in blocks of
`BLOCK` rows against all (float32), keeping each row's top few with argpartition, so memory
stays at one block whatever the number of banks. `atlas concepts` computes them once, when the
banks change, and stores them (`atlas.concepts.store.write_similar`); `atlas build` reads them
(`current`), and computes and stores them itself only when the stored ones are missing or were
made from other banks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from atlas.concepts import store
from atlas.concepts.formats import SIMILAR_KIND, ConceptBank, SimilarSet
from atlas.errors import AtlasError

TOP = 3  # similar concepts per concept, as the class pages show them
BLOCK = 1024  # rows per block: 1024 x 10,000 float32 cosines are 40 MB
VERSION = 1  # bump when the method changes results: part of the stored key

Similar = dict[tuple[int, int], tuple["SimilarConcept", ...]]


@dataclass(frozen=True)
class SimilarConcept:
    class_index: int
    wnid: str
    concept: int  # position in that class's bank (0: its most important concept)
    cosine: float


def similar_concepts(banks: Iterable[ConceptBank], top: int = TOP, block: int = BLOCK) -> Similar:
    """(class index, concept position) -> the `top` most similar concepts of other classes, highest cosine first
    (ties: the lower class, then the lower position)."""
    owners: list[tuple[ConceptBank, int]] = []
    vectors = []
    for bank in banks:
        for position, concept in enumerate(bank.concepts):
            owners.append((bank, position))
            vectors.append(concept.values)
    groups: dict[tuple[str, str, str, int], list[int]] = {}
    for row, (bank, _) in enumerate(owners):
        groups.setdefault((bank.model, bank.weights_sha256, bank.layer, vectors[row].size), []).append(row)
    result: Similar = {}
    for rows in groups.values():
        # rows in (class, position) order, so that the column index breaks ties as the docstring says
        rows = sorted(rows, key=lambda r: (owners[r][0].class_index, owners[r][1]))
        matrix = np.stack([vectors[r] for r in rows]).astype(np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        classes = np.array([owners[r][0].class_index for r in rows])
        for start in range(0, len(rows), block):
            for i, (columns, cosines) in enumerate(_block_top(matrix, classes, start, block, top)):
                bank, position = owners[rows[start + i]]
                result[(bank.class_index, position)] = tuple(
                    SimilarConcept(int(classes[j]), owners[rows[j]][0].wnid, owners[rows[j]][1], float(c))
                    for j, c in zip(columns, cosines, strict=True))
    return result


def _block_top(matrix: np.ndarray, classes: np.ndarray, start: int, block: int, top: int):
    """For rows start..start+block: (columns, cosines) of the `top` highest cosines to other classes."""
    # (block, n) float32, rounded to 1e-6: cosines equal in exact arithmetic (repeated vectors) differ in their
    # last float32 bit with the block's shape; rounded, they tie, and ties go to the lower column
    cosine = np.round(matrix[start : start + block] @ matrix.T, 6)
    cosine[classes[start : start + block, None] == classes[None, :]] = -np.inf  # never a concept of the same class
    keep = min(top, cosine.shape[1])
    if keep < cosine.shape[1]:
        candidates = np.argpartition(-cosine, keep - 1, axis=1)[:, :keep]
        # argpartition leaves ties at the k-th value to chance: take every column tied with it too
        threshold = np.take_along_axis(cosine, candidates, axis=1).min(axis=1, keepdims=True)
    else:
        threshold = np.full((cosine.shape[0], 1), -np.inf, dtype=cosine.dtype)
    for row, bound in zip(cosine, threshold[:, 0], strict=True):
        columns = np.flatnonzero((row >= bound) & np.isfinite(row))
        order = np.lexsort((columns, -row[columns]))[:keep]  # highest cosine first, then the lower column
        yield columns[order], row[columns[order]]


def similar_key(banks: Iterable[ConceptBank], top: int = TOP) -> str:
    """What a stored result was computed from: the sorted keys of the banks, the method and `top`."""
    return SIMILAR_KIND.key({"kind": "similar", "version": VERSION, "top": top, "banks": sorted(b.key for b in banks)})


def to_stored(banks: Iterable[ConceptBank], model: str, weights_sha256: str, top: int = TOP) -> SimilarSet:
    """The similar concepts of `banks` (the current banks of one model's weights), as stored."""
    banks = list(banks)
    links = similar_concepts(banks, top)
    rows = tuple((c, p, tuple((s.class_index, s.wnid, s.concept, s.cosine) for s in found))
                 for (c, p), found in sorted(links.items()))
    return SimilarSet(key=similar_key(banks, top), model=model, weights_sha256=weights_sha256, top=top,
                      banks=len(banks), concepts=rows, created=datetime.now(timezone.utc).isoformat())


def from_stored(value: SimilarSet) -> Similar:
    return {(c, p): tuple(SimilarConcept(*link) for link in links) for c, p, links in value.concepts}


def _stored(root: str | Path, banks: Mapping[int, ConceptBank], model: str, weights_sha256: str,
            top: int) -> tuple[SimilarSet, bool]:
    """The stored similar concepts when they were made from exactly these banks, else newly computed (not
    stored yet); and whether they are new."""
    stored = store.read_similar(root, model, weights_sha256)
    if stored is not None and stored.key == similar_key(banks.values(), top):
        return stored, False
    return to_stored(banks.values(), model, weights_sha256, top), True


def update(root: str | Path, banks: Mapping[int, ConceptBank], model: str, weights_sha256: str,
           top: int = TOP) -> bool:
    """Store the similar concepts of these current banks unless the cache holds them already; whether it computed.

    Concurrent callers (shards finishing together) may both compute: each writes a whole file atomically,
    and a file of older banks is only stale, which the next reader sees by its key."""
    value, new = _stored(root, banks, model, weights_sha256, top)
    if new:
        store.write_similar(root, value)
    return new


def current(root: str | Path, banks: Mapping[int, ConceptBank], model: str, weights_sha256: str) -> tuple[Similar, str]:
    """What the site shows: the stored similar concepts of these banks; when missing or stale, computed once
    here (in blocks) and stored for the next build. The second value is a line to tell the user ("" when stored)."""
    if not banks:
        return {}, ""
    value, new = _stored(root, banks, model, weights_sha256, TOP)
    if not new:
        return from_stored(value), ""
    why = f"similar concepts of {len(banks)} banks computed: the cache's copy is missing or from other banks"
    try:
        store.write_similar(root, value)
    except AtlasError as exc:  # read-only, or a linked folder: the site still gets them, the next build computes
        return from_stored(value), f"{why}, and the cache is not writable ({exc})"
    return from_stored(value), f"{why}; stored for the next build"
