"""A class's concepts from a notebook: `Atlas.concepts` stores the banks `atlas concepts` stores, and
`visualize` of them makes the concept pictures `atlas render` makes, so the site shows them alike;
a tiny random model on the CPU, on image folders of two scikit-image photos."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import atlas
from atlas.cli import main
from atlas.concepts.explained import Explanations
from atlas.concepts.store import CROP_SIDE, current_banks
from atlas.config import load_config
from atlas.errors import AtlasError
from atlas.models import load_model
from atlas.settings import RenderSettings
from tests.concept_folders import make_folder, one_thread  # noqa: F401 - a fixture
from tests.config_support import TINY_PRESET, write_config
from tests.test_notebook import small_cnn

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = {"classes": "0-1", "judges": [], "preset": TINY_PRESET, "layers": {}}
FOLDERS = {"n01440764": 3, "n01443537": 3}  # tench and goldfish


def test_notebook_concepts_and_their_pictures_are_what_the_commands_make(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(write_config(tmp_path, "test_efficientnet", device="cpu", judges=None, preset=None,
                                      layers=None, cpu=CPU))
    make_folder(tmp_path / "images", FOLDERS, side=160)
    model = load_model("test_efficientnet", random_weights=True)
    book = atlas.Atlas(tmp_path / "cache")
    lines: list[str] = []
    explained = book.concepts(model, tmp_path / "images", classes="tench,1", concepts=2, patch=64,
                              device="cpu", report=lines.append)
    assert "2 to compute" in lines[0]
    model_file = tmp_path / "cache" / "models" / f"{model.name}.json"
    assert json.loads(model_file.read_text())["spectrum_sha256"] == ""  # `build` can show the concepts already
    assert [(c.index, c.name, len(c)) for c in explained] == [(0, "tench", 2), (1, "goldfish", 2)]
    banks = current_banks(tmp_path / "cache", model.name, model.weights_sha256)
    for explanation in explained:
        bank = banks[explanation.index]
        assert explanation.bank == bank and explanation.layer == bank.layer
        # the concepts and the rest add up to the class logit, most important first
        importances = [c.importance for c in explanation.concepts]
        assert importances == sorted(importances, reverse=True)
        assert sum(importances) + explanation.rest == pytest.approx(explanation.logit, abs=1e-3)
        crops = explanation.concepts[0].crops
        assert len(crops) == len(bank.concepts[0].crops) and crops[0].size == (CROP_SIDE, CROP_SIDE)
    html = explained._repr_html_()
    assert html.count("<tr>") == 2 * 3 and "data:image/webp;base64," in html and "tench" in html
    many = Explanations(list(explained) * 6)  # a notebook shows the first ten classes, and says how many more
    assert many._repr_html_().count("<table>") == 10 and "and 2 more classes" in many._repr_html_()
    # `atlas concepts` with the same settings finds every bank made here
    assert main(["concepts", "--images", "images", "--concepts", "2", "--patch", "64", "--no-progress"]) == 0
    assert "0 to compute, 2 in the cache" in capsys.readouterr().out

    # each concept's picture, as `atlas render` makes it: the command then has no concept left to render
    settings = RenderSettings.from_config(config, config.cpu)
    pictures = atlas.visualize(model, explained, preset=settings, device="cpu")
    assert [(p.record.objective.kind, p.record.objective.class_index) for p in pictures] == \
        [("concept", 0), ("concept", 0), ("concept", 1), ("concept", 1)]
    assert all(p.record.expression is not None and p.record.expression.concepts == 2 for p in pictures)
    book.add(pictures)
    assert json.loads(model_file.read_text())["spectrum_sha256"] == pictures[0].record.spectrum_sha256
    assert main(["render", "--cpu-subset", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "6 objectives (4 of them concepts, from `atlas concepts`): 2 to render" in out, out
    assert main(["build", "--out", "site"]) == 0
    site = tmp_path / "site" / "test_efficientnet"
    doc = json.loads((site / "data" / "classes" / "0001.json").read_text())
    assert [c["render"]["key"] for c in doc["concepts"]["concepts"]] == [p.key for p in pictures[2:]]
    html = (site / "classes" / "0001.html").read_text()
    assert html.count("MACO visualization of concept") == 2 and "not rendered yet" not in html
    key = pictures[2].key
    stored = np.asarray(Image.open(tmp_path / "cache" / "entries" / key[:2] / key / "image.png"))
    assert np.array_equal(stored, np.asarray(pictures[2].image))


def test_one_concept_or_one_class_is_an_objective_and_bad_settings_are_refused(tmp_path):
    make_folder(tmp_path / "images", {"n01440764": 2}, side=96)
    model = load_model("test_efficientnet", random_weights=True)
    book = atlas.Atlas(tmp_path / "cache")
    for bad, message in (({"concepts": 0}, "concepts is an integer from 1 to 100, not 0"),
                         ({"images_per_class": True}, "images_per_class is an integer"),
                         ({"patch": 4}, "patch is an integer from 8"),
                         ({"classes": "n99999999"}, "n99999999"),
                         ({"layers": {"blocks.3": [0.5]}}, "a list of indices, not \\[0.5\\]"),
                         ({"layers": {"nope": "0"}}, "nope"),
                         ({"classes": []}, "classes names no class"),
                         ({"classes": 1.5}, "classes are a spec like"),
                         ({"layers": ["blocks.3"]}, "layers maps each layer to its channels")):
        with pytest.raises(AtlasError, match=message):
            book.concepts(model, tmp_path / "images", device="cpu", report=None, **bad)
    assert not (tmp_path / "cache").exists()  # refused before anything was written
    (tmp_path / "junk" / "n01440764").mkdir(parents=True)
    (tmp_path / "junk" / "n01440764" / "x.jpg").write_bytes(b"not a photo")
    with pytest.raises(AtlasError, match="no class folder of .*junk holds a readable image .such as"):
        book.concepts(model, tmp_path / "junk", device="cpu", report=None)
    assert not (tmp_path / "cache" / "models").exists()
    found = book.concepts(model, tmp_path / "images", concepts=2, patch=48, layers={"blocks.3": [0, 2]},
                          classes="all", device="cpu", report=None)  # "all" as --classes means it: every folder
    assert [c.index for c in book.concepts(model, tmp_path / "images", concepts=2, patch=48, classes=np.int64(0),
                                           device="cpu", report=None)] == [0]
    (explained,) = found
    # the channels' dataset examples as the notebook shows them: every image's peak region, highest first
    layer = found.examples["blocks.3"]
    assert [c.channel for c in layer] == [0, 2] and list(found.examples) == ["blocks.3"]
    two = layer.channel(2)
    assert repr(two) == "ExplainedChannel(blocks.3 channel 2, 2 examples)"
    assert two.activations == sorted(two.activations, reverse=True) and two.classes == [0, 0]
    photos = sorted(p.relative_to(tmp_path / "images").as_posix() for p in (tmp_path / "images").rglob("*.*"))
    assert sorted(two.files) == photos
    assert [crop.size for crop in two.crops] == [(CROP_SIDE, CROP_SIDE)] * 2
    shown = two._repr_html_()
    assert shown.count("data:image/webp;base64,") == 2 and shown.count(">tench</td>") == 2
    assert f"{two.activations[0]:.2f}" in shown
    with pytest.raises(KeyError, match="channel 1 has no dataset examples here: these are channels 0, 2"):
        layer.channel(1)
    assert "explained.examples[layer]" in found._repr_html_()
    stored = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    lines: list[str] = []
    again = book.concepts(model, tmp_path / "images", concepts=2, patch=48, layers={"blocks.3": [0, 2]},
                          device="cpu", report=lines.append)  # read from the cache, not computed again
    assert "0 to compute, 1 in the cache" in lines[0] and not any("one pass" in line for line in lines)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*") if p.is_file()} == stored
    assert again.examples["blocks.3"].channel(2).activations == two.activations
    # the model file `concepts` wrote names the classes its pages show: pictures under other names are refused
    renamed = atlas.visualize(model, "class:0", labels=[f"c{i}" for i in range(1000)], preset="cpu", canvas=32,
                              steps=2, crops=1, device="cpu", scores=False)
    with pytest.raises(AtlasError, match="names the classes of test_efficientnet otherwise"):
        book.add(renamed)
    # the channels' dataset examples on their pages, beside a picture once one is in the cache
    book.add(atlas.visualize(model, ["class:0", "channel:blocks.3:2"], preset="cpu", canvas=32, steps=2, crops=1,
                             device="cpu", scores=False))
    book.build(tmp_path / "site")
    page = (tmp_path / "site" / model.name / "layers" / "blocks.3" / "c0002.html").read_text()
    assert "Dataset examples" in page and page.count('alt="Example ') == 2  # one per image
    first = explained.concepts[0]
    assert repr(first).startswith("ExplainedConcept(class 0, concept 1, share ")
    one = atlas.visualize(model, first, preset="cpu", canvas=32, steps=2, crops=1, device="cpu", scores=False)
    assert len(one) == 1 and one[0].record.objective.id == first.objective.id
    mixed = atlas.visualize(model, [explained, "class:0"], preset="cpu", canvas=32, steps=2, crops=1,
                            device="cpu", scores=False)
    assert [p.record.objective.kind for p in mixed] == ["concept", "concept", "class"]
    with pytest.raises(AtlasError, match="are test_efficientnet's .* not test_resnet's"):
        atlas.visualize(load_model("test_resnet", random_weights=True), explained, preset="cpu", device="cpu")


def test_the_readme_concepts_example_runs_as_written(tmp_path, monkeypatch):
    from tests.test_notebook import ROOT

    monkeypatch.chdir(tmp_path)
    make_folder(tmp_path / "photos", {"tench": 3, "goldfish": 3}, side=96)
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## From a notebook", 1)[1].split("\n## ", 1)[0]
    pictures_block, concepts_block = re.findall(r"```python\n(.*?)```", section, flags=re.S)[:2]
    namespace: dict = {}
    exec(compile(pictures_block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    exec(compile(concepts_block, "README.md", "exec"), namespace)  # noqa: S102
    assert [(c.name, len(c)) for c in namespace["explained"]] == [("tench", 3), ("goldfish", 3)]
    assert Image.open(tmp_path / "concept.png").size == (CROP_SIDE, CROP_SIDE)
    html = (tmp_path / "notebook-site" / "test_resnet" / "classes" / "0001.html").read_text()
    assert html.count("MACO visualization of concept") == 3


def test_a_plain_torch_classifier_is_explained_at_the_map_its_head_pools(tmp_path):
    make_folder(tmp_path / "photos", {"cats": 3, "cups": 3}, side=64)
    book = atlas.Atlas(tmp_path / "cache")
    net = small_cnn(2)
    explained = book.concepts(net, tmp_path / "photos", concepts=2, input_size=32, name="mycnn",
                              device="cpu", report=None)
    # the last ReLU's map, which the head averages (not the pooling's 1x1 output): exact shares
    assert [(c.name, c.layer, c.bank.exact) for c in explained] == [("cats", "3", True), ("cups", "3", True)]
    for c in explained:
        assert sum(x.importance for x in c.concepts) + c.rest == pytest.approx(c.logit, abs=1e-4)
        assert len(c.bank.concepts[0].aligned) == 2  # the classes its head's weights point it to
    # its concepts' pictures (and a class picture beside them) take the folder names the concepts gave its head
    objectives = (o for o in [explained[0], "class:1"])  # read once, as any iterable may be
    pictures = atlas.visualize(net, objectives, input_size=32, name="mycnn", preset="cpu",
                               canvas=32, steps=2, crops=1, device="cpu", scores=False)
    assert [p.record.objective.class_index for p in pictures] == [0, 0, 1]
    assert pictures[2].class_names == ("cats", "cups")
    book.add(pictures)
    book.build(tmp_path / "site")
    assert "<h1><span class=\"num\">0001</span> cups</h1>" in (tmp_path / "site" / "mycnn" / "classes" /
                                                              "0001.html").read_text()
    torch.manual_seed(0)
    flat = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 8 * 8, 2))  # no average pooling: which map is not known
    with pytest.raises(AtlasError, match="layer= in a notebook"):
        book.concepts(flat, tmp_path / "photos", input_size=32, name="flat", device="cpu", report=None)
    named = book.concepts(flat, tmp_path / "photos", concepts=2, layer="1", input_size=32, name="flat",
                          device="cpu", report=None)
    assert [(c.layer, c.bank.exact) for c in named] == [("1", False), ("1", False)]
