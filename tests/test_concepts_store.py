"""The concept store: typed round trips, crash leftovers and damaged entries read as absent."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from atlas.concepts import store
from atlas.concepts.formats import BANK_KIND, AlignedClass, ChannelExamples, Concept, ConceptBank, Crop, ExampleSet
from atlas.objectives import direction
from atlas.typed_json import FileInfo


def make_bank(key: str = "ab" + "0" * 62) -> tuple[ConceptBank, dict[str, bytes]]:
    pixels = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    data = store.encode_webp(pixels)
    crop = Crop("n01440764/a.png", (1, 2, 30, 31), 0.5, store.crop_name(data))
    vector = np.linspace(0, 1, 12, dtype=np.float32) ** 2 / 3
    concept = Concept(3, store.encode_vector(vector), 1.25, 0.4, 7, (crop, crop), (AlignedClass(1, "n01443537", 0.8),))
    bank = ConceptBank(key=key, model="m", weights_sha256="w", class_index=0, wnid="n01440764", layer="bn2",
                       exact=True, settings={"concepts": 1}, images=10, skipped=1, patches=160, logit=3.0,
                       residual=0.5, rest=1.25, relative_error=0.6, concepts=(concept,), seconds={"nmf": 0.1})
    return bank, {crop.image: data}


def test_bank_round_trip_keeps_every_field_and_the_vector_bits(tmp_path):
    bank, crops = make_bank()
    path = store.write_bank(tmp_path, bank, crops)
    assert path.name == "bank.json" and path.parent.name == bank.key
    again = store.read_bank(tmp_path, bank.key)
    data = crops[bank.concepts[0].crops[0].image]
    assert again.files == {crop: FileInfo(len(data), hashlib.sha256(data).hexdigest()) for crop in crops}
    bank = dataclasses.replace(bank, files=again.files)
    assert again == bank
    concept = again.concepts[0]
    assert concept.values.dtype == np.float32
    assert concept.digest == direction("bn2", concept.values).single.digest
    assert list(store.banks(tmp_path)) == [bank]
    with open(store.crop_path(tmp_path, bank, concept.crops[0]), "rb") as handle:
        assert handle.read(4) == b"RIFF"


def test_examples_round_trip(tmp_path):
    data = store.encode_webp(np.zeros((8, 8, 3), dtype=np.uint8))
    whole = store.encode_webp(np.full((6, 8, 3), 200, dtype=np.uint8), store.SOURCE_QUALITY)
    crop = Crop("n01440764/a.png", (0, 0, 8, 8), 2.5, store.crop_name(data), (8, 6), store.crop_name(whole))
    examples = ExampleSet(key="cd" + "1" * 62, model="m", weights_sha256="w", layer="blocks.3", settings={},
                          images=4, skipped=0, channels=(ChannelExamples(5, (crop,), (0,)),), seconds=1.0)
    store.write_examples(tmp_path, examples, {crop.image: data, crop.thumbnail: whole})
    examples = dataclasses.replace(examples, files={crop.image: FileInfo.of(data), crop.thumbnail: FileInfo.of(whole)})
    assert store.read_examples(tmp_path, examples.key) == examples
    assert list(store.example_sets(tmp_path)) == [examples]
    written = json.loads((store.entry_folder(tmp_path, examples) / store.EXAMPLES).read_text())
    assert written["format"] == 3 and written["channels"][0]["examples"][0]["thumbnail"] == crop.thumbnail


def test_an_example_set_reads_in_format_2_and_3_and_a_bank_never_writes_a_thumbnail(tmp_path):
    data = store.encode_webp(np.zeros((8, 8, 3), dtype=np.uint8))
    crop = Crop("n01440764/a.png", (0, 0, 8, 8), 2.5, store.crop_name(data), (8, 8))
    path = store.write_examples(tmp_path, ExampleSet(
        key="cd" + "2" * 62, model="m", weights_sha256="w", layer="blocks.3", settings={}, images=1, skipped=0,
        channels=(ChannelExamples(5, (crop,), (0,)),), seconds=1.0), {crop.image: data})
    for found, usable in ((2, True), (3, True), (4, False)):
        path.write_text(json.dumps({**json.loads(path.read_text()), "format": found}))
        read = store.read_examples(tmp_path, "cd" + "2" * 62)
        assert (read is not None, read.format if read else None) == (usable, found if usable else None)
    bank, crops = make_bank()
    assert "thumbnail" not in store.write_bank(tmp_path, bank, crops).read_text()  # banks are byte for byte as before
    # a new format is a new key: `atlas concepts` computes the set again beside an old one
    from atlas.kind import content_key

    assert store.EXAMPLES_KIND.key({"layer": "blocks.3"}) != content_key({"format": 2, "layer": "blocks.3"})


def test_a_thumbnail_name_that_is_a_path_is_invalid():
    from atlas.concepts.formats import loads_concepts
    from atlas.typed_json import InvalidRecord

    for name in ("../x.webp", "/etc/passwd", "a/b.webp", ""):
        data = {"file": "a.png", "box": [0, 0, 1, 1], "value": 1.0, "image": "a.webp", "thumbnail": name}
        raw = json.dumps({"key": "k", "model": "m", "weights_sha256": "w", "layer": "l", "settings": {}, "images": 1,
                          "skipped": 0, "channels": [{"channel": 0, "examples": [data], "classes": [0]}],
                          "seconds": 0.0, "format": 3}).encode()
        with pytest.raises(InvalidRecord, match="crop thumbnail"):
            loads_concepts(ExampleSet, raw)


@pytest.mark.parametrize("damage", ["truncated", "other key", "unknown field", "wrong type", "missing crop", "no json"])
def test_damaged_entries_read_as_absent(tmp_path, damage):
    bank, crops = make_bank()
    path = store.write_bank(tmp_path, bank, crops)
    data = json.loads(path.read_text())
    if damage == "truncated":
        path.write_text(path.read_text()[:100])
    elif damage == "other key":
        path.write_text(json.dumps({**data, "key": "ff" * 32}))
    elif damage == "unknown field":
        path.write_text(json.dumps({**data, "surprise": 1}))
    elif damage == "wrong type":
        path.write_text(json.dumps({**data, "images": "ten"}))
    elif damage == "missing crop":
        (path.parent / bank.concepts[0].crops[0].image).unlink()
    else:
        path.unlink()
    assert store.read_bank(tmp_path, bank.key) is None
    assert list(store.banks(tmp_path)) == []


def test_key_covers_every_field_of_the_material():
    base = {"model": "m", "layer": "bn2", "settings": {"concepts": 10}}
    assert BANK_KIND.key(base) == BANK_KIND.key(dict(reversed(list(base.items()))))
    assert BANK_KIND.key(base) != BANK_KIND.key({**base, "settings": {"concepts": 11}})


def test_similar_concepts_link_other_classes_of_the_same_layer():
    from atlas.concepts.similar import similar_concepts

    rng = np.random.default_rng(1)
    base, _ = make_bank()
    shared = rng.random(12).astype(np.float32)

    def bank_of(index: int, vectors: list[np.ndarray], layer: str = "bn2") -> ConceptBank:
        concepts = tuple(Concept(i, store.encode_vector(v), 0.0, 0.0, 0, (), ()) for i, v in enumerate(vectors))
        return ConceptBank(**{**base.__dict__, "key": f"{index:064d}", "class_index": index, "wnid": f"n{index:08d}",
                              "layer": layer, "concepts": concepts})

    a = bank_of(0, [shared, rng.random(12).astype(np.float32)])
    b = bank_of(1, [rng.random(12).astype(np.float32), shared * 2 + 0.01])
    c = bank_of(2, [shared], layer="blocks.3")  # another layer: never compared
    links = similar_concepts([a, b, c], top=2)
    best = links[(0, 0)][0]
    assert (best.class_index, best.concept, best.wnid) == (1, 1, "n00000001") and best.cosine > 0.99
    assert all(s.class_index != 0 for s in links[(0, 0)] + links[(0, 1)])
    assert links[(2, 0)] == ()
    assert [s.cosine for s in links[(1, 0)]] == sorted((s.cosine for s in links[(1, 0)]), reverse=True)


def test_store_and_similar_never_import_torch():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nimport atlas.concepts.store, atlas.concepts.similar\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm')))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(root), "PATH": ""})
    assert out.stdout.strip() == "[]"
