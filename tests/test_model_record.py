"""`models/<name>.json` (atlas.model_record): the committed sample reads and writes back the same, what is
required, what defaults, and the module stays torch-free."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from atlas import model_record
from atlas.cli import main
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


def test_the_input_reading_is_kept_and_a_module_read_otherwise_is_told_apart():
    info = ModelInfo("m", "0" * 64, "random", 1, (ClassInfo(0, "", "class 0", ()),), {}, (), {}, "cpu", "atlas",
                     "1" * 64, input_size=32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert model_record.loads(model_record.dumps(info)) == info
    assert model_record.reads_otherwise(info, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 32) is None
    assert model_record.reads_otherwise(info, (0.485, 0.456, 0.406), (0.5, 0.5, 0.5), 32) == \
        "std 0.229, 0.224, 0.225 there, 0.5, 0.5, 0.5 here"
    older = model_record.from_dict({k: v for k, v in model_record.to_dict(info).items() if k not in ("mean", "std")})
    assert older.mean is None and model_record.reads_otherwise(older, (0.5,) * 3, (0.5,) * 3, 32) is None
    for bad in ([0.5, 0.5], [0.5, "x", 0.5], [0.5, float("nan"), 0.5], "0.5"):
        with pytest.raises(model_record.InvalidModelInfo):
            model_record.from_dict(model_record.to_dict(info) | {"mean": bad})


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


def _sample_with(**changes) -> dict:
    raw = json.loads(SAMPLE.read_text(encoding="utf-8"))
    raw.update(changes)
    return raw


def _long_class_name(raw: dict) -> dict:
    raw["classes"][0]["name"] = "x" * 100_000
    return raw


def _long_synonym(raw: dict) -> dict:
    raw["classes"][3]["synonyms"] = ["shark", "y" * 5000]
    return raw


@pytest.mark.parametrize(("change", "message"), [
    (lambda raw: {**raw, "classes": []}, "num_classes is 1000 but the file lists 0 classes"),
    (lambda raw: {**raw, "num_classes": -5}, "num_classes is -5, it must be 0 or more"),
    (lambda raw: {**raw, "num_classes": 999}, "num_classes is 999 but the file lists 1000 classes"),
    (lambda raw: {**raw, "input_size": -5}, "input_size is -5, it must be 1 or more"),
    (lambda raw: {**raw, "input_size": 0}, "input_size is 0, it must be 1 or more"),
    (lambda raw: {**raw, "parameters": -1}, "parameters is -1"),
    (lambda raw: {**raw, "name": ""}, "the model's name is empty"),
    (lambda raw: {**raw, "name": "   "}, "the model's name is empty"),
    (lambda raw: {**raw, "name": "m" * 300}, "the model's name 'mmmm"),
    (lambda raw: {**raw, "dataset": "d" * 1000}, "dataset 'dddd"),
    (lambda raw: {**raw, "layers": [{"name": "blocks.3", "channels": -1, "reduction": 16}]},
     "layer blocks.3's channels is -1"),
    (lambda raw: {**raw, "layers": [{"name": "blocks.3", "channels": 80, "reduction": 0}]},
     "layer blocks.3's reduction is 0"),
    (_long_class_name, "class 0's name 'xxxx"),
    (_long_synonym, "class 3's synonym 'yyyy"),
    (lambda raw: {**raw, "classes": [{**raw["classes"][0], "name": ""}, *raw["classes"][1:]]},
     "class 0's name is empty"),
    (lambda raw: {**raw, "classes": [{**raw["classes"][0], "name": "a\nb"}, *raw["classes"][1:]]},
     "class 0's name 'a\\nb' is not a printable name"),
])
def test_a_model_file_with_impossible_sizes_or_names_is_refused_in_one_line(change, message):
    raw = change(_sample_with())
    with pytest.raises(InvalidModelInfo, match=re.escape(message)) as caught:
        model_record.loads(json.dumps(raw))
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_a_model_without_a_classifier_has_no_classes_and_reads_back():
    headless = ModelInfo("features", "0" * 64, "in-memory Sequential", 0, (), {}, (LayerInfo("2", 16, 2),), {},
                         "cpu", "atlas", "1" * 64, input_size=32, parameters=0)
    assert model_record.loads(model_record.dumps(headless)) == headless
    legacy = {"name": "features", "weights_sha256": "0" * 64, "classes": []}  # no num_classes: as many as listed
    assert model_record.from_dict(legacy).num_classes == 0
    longest = _sample_with()
    longest["classes"][0]["name"] = "z" * model_record.MAX_CLASS_NAME  # a long but real name still reads
    assert model_record.from_dict(longest).classes[0].name == longest["classes"][0]["name"]


def _cache_with_model(tmp_path: Path, **changes) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(SAMPLE.parents[1], cache)
    (cache / "models" / SAMPLE.name).write_text(json.dumps(_sample_with(**changes)), encoding="utf-8")
    return cache


@pytest.mark.parametrize(("changes", "message"), [
    ({"classes": []}, "num_classes is 1000 but the file lists 0 classes"),
    ({"name": ""}, "the model's name is empty"),
    ({"input_size": -5}, "input_size is -5"),
])
def test_atlas_build_names_a_bad_model_file_in_one_line(tmp_path, capsys, changes, message):
    cache = _cache_with_model(tmp_path, **changes)
    before = (cache / "models" / SAMPLE.name).read_bytes()
    assert main(["build", "--cache", str(cache), "--out", str(tmp_path / "site")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("atlas build: error: cannot read") and message in err and "\n" not in err
    assert "re-run `atlas render`" in err and "Traceback" not in err
    assert (cache / "models" / SAMPLE.name).read_bytes() == before  # the user's file is left as it was


def test_a_cache_of_a_model_without_a_classifier_builds_its_channels(tmp_path):
    cache = _cache_with_model(tmp_path, classes=[], num_classes=0, nearest_classes={}, channel_top_classes={})
    out = tmp_path / "site"
    assert main(["build", "--cache", str(cache), "--out", str(out)]) == 0
    home = (out / "efficientnet_lite0" / "index.html").read_text(encoding="utf-8")
    assert "start at" not in home and "data/search-index.js" in home  # no first class to start at
    assert "Class pages are named" not in (out / "404.html").read_text(encoding="utf-8")
    assert list(out.glob("efficientnet_lite0/layers/*/c*.html")) and not list(out.glob("*/classes/*.html"))
