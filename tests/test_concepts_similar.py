"""Similar concepts: computed in blocks (the same links as all pairs at once), stored once per set of
banks, and read by the site without comparing all pairs again."""

from __future__ import annotations

import numpy as np
import pytest

from atlas.concepts import similar, store
from atlas.concepts.formats import BANK_KIND, Concept, ConceptBank
from atlas.errors import AtlasError


def bank(index: int, vectors: np.ndarray, layer: str = "bn2", model: str = "m") -> ConceptBank:
    concepts = tuple(Concept(i, store.encode_vector(v), 0.0, 0.0, 0, (), ()) for i, v in enumerate(vectors))
    return ConceptBank(key=BANK_KIND.key({"class": index, "layer": layer, "v": vectors.tolist()}), model=model,
                       weights_sha256="w", class_index=index, wnid=f"n{index:08d}", layer=layer, exact=True,
                       settings={}, images=1, skipped=0, patches=1, logit=0.0, residual=0.0, rest=0.0,
                       relative_error=0.0, concepts=concepts, seconds={})


def banks(classes: int, concepts: int, dim: int = 16, seed: int = 0) -> dict[int, ConceptBank]:
    rng = np.random.default_rng(seed)
    # non-negative like NMF's, quantised so that equal cosines (ties) occur
    return {c: bank(c, np.round(rng.random((concepts, dim)) * 3).astype(np.float32)) for c in range(classes)}


def dense(found: dict[int, ConceptBank], top: int) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """The all-pairs reference: float64, every row sorted whole, ties to the lower (class, position)."""
    owners = [(c, p) for c in sorted(found) for p in range(len(found[c].concepts))]
    matrix = np.stack([found[c].concepts[p].values for c, p in owners]).astype(np.float64)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    cosine = np.round(matrix @ matrix.T, 6)  # as the blocks round theirs: exact ties stay ties
    result = {}
    for i, (c, p) in enumerate(owners):
        others = [j for j in range(len(owners)) if owners[j][0] != c]
        others.sort(key=lambda j: (-cosine[i, j], owners[j]))
        result[(c, p)] = [owners[j] for j in others[:top]]
    return result


@pytest.mark.parametrize("block", [1, 7, 1024])
def test_blocks_give_the_links_of_all_pairs_at_once(block):
    found = banks(classes=9, concepts=4)
    links = similar.similar_concepts(found.values(), top=3, block=block)
    reference = dense(found, 3)
    assert {k: [(s.class_index, s.concept) for s in v] for k, v in links.items()} == reference
    assert all(s.wnid == f"n{s.class_index:08d}" for v in links.values() for s in v)


def test_banks_of_another_layer_or_model_are_never_compared():
    vector = np.ones((1, 8), dtype=np.float32)
    found = [bank(0, vector), bank(1, vector), bank(2, vector, layer="blocks.3"), bank(3, vector, model="other")]
    links = similar.similar_concepts(found)
    assert [s.class_index for s in links[(0, 0)]] == [1]
    assert links[(2, 0)] == () and links[(3, 0)] == ()


def test_stored_once_per_set_of_banks_and_stale_when_a_bank_changes(tmp_path, monkeypatch):
    found = banks(classes=5, concepts=3)
    assert similar.update(tmp_path, found, "m", "w") is True
    stored = store.read_similar(tmp_path, "m", "w")
    assert stored.key == similar.similar_key(found.values()) and stored.banks == 5
    assert similar.from_stored(stored) == similar.similar_concepts(found.values())  # exact after the round trip

    def never(*_args, **_kwargs):
        raise AssertionError("compared all pairs again")

    monkeypatch.setattr(similar, "similar_concepts", never)
    assert similar.update(tmp_path, found, "m", "w") is False
    links, note = similar.current(tmp_path, found, "m", "w")
    assert note == "" and links == similar.from_stored(stored)
    monkeypatch.undo()

    changed = {**found, 2: bank(2, np.eye(3, 16, dtype=np.float32))}  # a new bank of class 2
    links, note = similar.current(tmp_path, changed, "m", "w")
    assert note.startswith("similar concepts of 5 banks computed") and "stored for the next build" in note
    assert store.read_similar(tmp_path, "m", "w").key == similar.similar_key(changed.values())
    assert links == similar.similar_concepts(changed.values())


def test_a_damaged_or_unwritable_store_still_gives_the_links(tmp_path, monkeypatch):
    found = banks(classes=3, concepts=2)
    similar.update(tmp_path, found, "m", "w")
    store.similar_path(tmp_path, "m", "w").write_text('{"key": "not ours"}')
    assert store.read_similar(tmp_path, "m", "w") is None

    def read_only(*_args):
        raise AtlasError("cannot write")

    monkeypatch.setattr(store, "write_similar", read_only)
    links, note = similar.current(tmp_path, found, "m", "w")
    assert links == similar.similar_concepts(found.values()) and "not writable" in note


def test_the_build_stores_missing_links_once_and_then_only_reads_them(tmp_path, monkeypatch):
    from atlas.site.build import build
    from tests.concept_site_support import concept_cache

    cache = concept_cache(tmp_path / "cache")  # banks written directly: no stored links yet
    said: list[str] = []
    first = build(cache, tmp_path / "site", progress=said.append)
    computed = [line for line in said if line.startswith("similar concepts")]
    assert len(computed) == 1 and computed[0] in first.notes
    assert len(list((cache / "similar").glob("*.json"))) == 1

    def never(*_args, **_kwargs):
        raise AssertionError("the build compared all pairs again")

    monkeypatch.setattr(similar, "similar_concepts", never)
    said.clear()
    second = build(cache, tmp_path / "site", progress=said.append)
    assert not [line for line in said if line.startswith("similar concepts")] and not second.notes
    from tests.site_support import MODEL

    page = (tmp_path / "site" / MODEL / "classes" / "0967.html").read_text()
    assert page.count('href="0001.html#concept-') >= 3  # the links came from the stored file
