"""`models/<name>.json` (atlas.model_record): the committed sample reads and writes back the same, what is
required, what defaults, and the module stays torch-free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from atlas import model_record
from atlas.model_record import ClassInfo, InvalidModelInfo, LayerInfo, ModelInfo

SAMPLE = Path(__file__).parent / "data" / "sample_cache" / "models" / "efficientnet_lite0.json"


def test_the_sample_cache_model_reads_typed_and_writes_back_the_same_json():
    raw = json.loads(SAMPLE.read_text(encoding="utf-8"))
    info = model_record.loads(SAMPLE.read_bytes())
    assert info.name == "efficientnet_lite0" and info.num_classes == len(info.classes) == 1000
    assert info.classes[1] == ClassInfo(1, "n01443537", "goldfish", ("goldfish", "Carassius auratus"))
    assert info.layers[0] == LayerInfo("blocks.3", 80, 16) and info.input_size is None
    assert all(isinstance(i, int) and isinstance(s, float) for i, s in info.nearest_classes[0])
    assert set(info.channel_top_classes) == {"conv_head"} and 42 in info.channel_top_classes["conv_head"]
    assert model_record.to_dict(info) == raw  # no input_size in the sample: left out while None
    assert model_record.loads(model_record.dumps(info)) == info


def test_a_class_without_wordnet_id_is_written_null_and_read_empty():
    info = ModelInfo("m", "0" * 64, "random", 1, (ClassInfo(0, "", "class 0", ()),), {}, (LayerInfo("x", 8, 2),), {},
                     "cpu", "atlas", "1" * 64, input_size=32)
    data = model_record.to_dict(info)
    assert data["classes"] == [{"index": 0, "wnid": None, "name": "class 0", "synonyms": []}]
    assert list(data)[:6] == ["format", "name", "weights_sha256", "weights_source", "num_classes", "input_size"]
    assert model_record.from_dict(data) == info


def test_dataset_is_written_when_named_and_older_files_name_imagenet_by_their_classes():
    fruit = ModelInfo("m", "0" * 64, "checkpoint ft.pth", 2, (ClassInfo(0, "", "apple", ("apple",)),
                      ClassInfo(1, "", "pear", ("pear",))), {}, (), {}, "cpu", "atlas", "1" * 64, dataset="Orchard")
    data = model_record.to_dict(fruit)
    assert data["dataset"] == "Orchard" and model_record.from_dict(data) == fruit
    assert fruit.dataset_name == "Orchard"
    unnamed = model_record.from_dict({k: v for k, v in data.items() if k != "dataset"})
    assert unnamed.dataset is None and unnamed.dataset_name == ""  # the site says "Class 1"
    assert "dataset" not in model_record.to_dict(unnamed)
    sample = model_record.loads(SAMPLE.read_bytes())  # written before the field: 1000 classes with WordNet ids
    assert sample.dataset is None and sample.dataset_name == "ImageNet"


def test_only_name_weights_and_classes_are_required_and_classes_go_by_index():
    minimal = {"name": "m", "weights_sha256": "0" * 64, "classes": [{"index": 0, "name": "a"}],
               "layers": [{"name": "blocks.1"}]}
    info = model_record.from_dict(minimal)
    assert info.num_classes == 1 and info.hardware == "" and info.nearest_classes == {}
    assert info.layers == (LayerInfo("blocks.1", None, None),)
    for bad in ({"name": "m", "weights_sha256": "x"}, {**minimal, "classes": [{"index": 1, "name": "a"}]},
                {**minimal, "nearest_classes": {"0": [[1]]}}, [1, 2]):
        with pytest.raises(InvalidModelInfo):
            model_record.from_dict(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidModelInfo, match="not JSON"):
        model_record.loads(b"{")


def test_the_model_record_module_imports_neither_torch_nor_numpy():
    code = "import sys, atlas.model_record; print([m for m in ('torch', 'numpy', 'PIL') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
