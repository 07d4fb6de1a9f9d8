"""atlas as a library: visualize any module, show pictures in Jupyter, keep them as cache entries
that `atlas build` shows, the README's notebook example as written, and a light `import atlas`."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import atlas
from atlas import pipeline
from atlas.cache import IMAGE, Cache
from atlas.cli import main
from atlas.config import load_config, override
from atlas.errors import AtlasError
from atlas.models import IMAGENET_MEAN, IMAGENET_STD, from_module, load_model
from atlas.objectives import channel, class_logit, class_logprob, class_margin, direction, neuron, parse_objective
from atlas.settings import RenderSettings
from tests.config_support import write_config

ROOT = Path(__file__).resolve().parents[1]
TINY = {"preset": "cpu", "canvas": 32, "steps": 3, "crops": 2, "device": "cpu"}


def small_cnn(classes: int | None = 10) -> torch.nn.Module:
    """A plain torch CNN, no timm: a classifier, or a feature extractor when `classes` is None."""
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
              torch.nn.ReLU()]
    if classes is not None:
        layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, classes)]
    return torch.nn.Sequential(*layers)


def test_a_plain_torch_classifier_gives_one_picture_per_objective_and_seed():
    pictures = atlas.visualize(small_cnn(), ["class:3", channel("2", 5) + 0.5 * channel("0", 1)], seeds=2,
                               input_size=32, **TINY)
    assert [p.objective for p in pictures] == ["class:3", "class:3", "0.5*channel:0:1+channel:2:5"] + \
        ["0.5*channel:0:1+channel:2:5"]
    assert len({p.seed for p in pictures}) == 4
    for picture in pictures:
        assert isinstance(picture.image, Image.Image) and picture.image.size == (32, 32)
        assert picture.attribution.shape == (32, 32) and picture.attribution.dtype == np.float32
        assert np.isfinite(picture.value) and picture.record.status == "ok"
        assert len(picture.top5) == 5 and all(0 <= t.index < 10 for t in picture.top5)
    assert pictures[0].value != pictures[2].value  # each picture's own objective
    model = pictures[0].record.model
    assert (model.input_size, model.mean, model.std) == (32, IMAGENET_MEAN, IMAGENET_STD)


def test_labels_name_a_classifier_in_captions_and_in_the_cache(tmp_path):
    (picture,) = atlas.visualize(small_cnn(classes=3), "class:2", labels=["apple", "pear", "plum"], input_size=32,
                                 name="fruit", **TINY)
    assert picture.description == "fruit · class 2 · plum"
    atlas.Atlas(tmp_path / "cache").add([picture])
    info = Cache(tmp_path / "cache").read_model("fruit")
    assert [c.name for c in info.classes] == ["apple", "pear", "plum"] and info.dataset_name == ""
    for labels, message in ((["apple", "pear"], "names 2 classes but the model's head has 3"),
                            (["apple", "pear", "apple"], "'apple' is on lines 1 and 3")):
        with pytest.raises(AtlasError, match=message):
            atlas.visualize(small_cnn(classes=3), "class:2", labels=labels, input_size=32, **TINY)


def test_a_feature_extractor_has_no_top5_and_refuses_class_objectives():
    extractor = small_cnn(classes=None)
    pictures = atlas.visualize(extractor, "channel:2:0", input_size=32, **TINY)
    assert pictures[0].top5 == () and pictures[0].record.scores is None and np.isfinite(pictures[0].value)
    with pytest.raises(AtlasError, match="asks for class 1, but sequential has no classifier"):
        atlas.visualize(extractor, "class:1", input_size=32, **TINY)


def test_strings_and_objective_values_are_the_same_objectives():
    net = small_cnn()
    by_id = atlas.visualize(net, ["class:2", "0.5*channel:2:3+class:1"], input_size=32, **TINY)
    by_value = atlas.visualize(net, [class_logit(2), class_logit(1) + 0.5 * channel("2", 3)], input_size=32, **TINY)
    for a, b in zip(by_id, by_value, strict=True):
        assert a.key == b.key and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    objective = 0.2 * channel("layer3", 20) - channel("layer2", 1) + neuron("layer1", 2, 1, 3)
    assert parse_objective(objective.id) == objective
    keeps_class = class_logit(7) + 0.5 * class_logprob(7) - class_margin(3)
    assert parse_objective(keeps_class.id) == keeps_class
    toward = direction("2", np.linspace(-1, 1, 16), cosine=True)
    (along,) = atlas.visualize(net, toward, input_size=32, **TINY)
    assert along.objective == toward.id and along.record.objective.kind == "direction" and -1 <= along.value <= 1


@pytest.mark.parametrize(("objective", "message"), [
    ("class:x", "cannot read objective 'class:x'"),
    ("direction:layer4:cos:0123456789ab", "a direction needs its vector"),
    ("class:10", "asks for class 10, but sequential has 10 classes"),
])
def test_bad_objectives_are_one_line_errors(objective, message):
    with pytest.raises(AtlasError, match=re.escape(message)):
        atlas.visualize(small_cnn(), objective, input_size=32, **TINY)


def test_weights_that_are_not_finite_misspelled_settings_and_modules_without_parameters_are_refused():
    with pytest.raises(AtlasError, match=re.escape("the weight of channel:2:1 is nan: an objective's weights are "
                                                   "finite numbers")):
        channel("2", 1) * float("nan")
    with pytest.raises(AtlasError, match="divided by 0"):
        channel("2", 1) / 0
    net = small_cnn().train()
    with pytest.raises(AtlasError, match="unknown preset setting 'stpes'"):
        atlas.visualize(net, "class:1", input_size=32, preset=RenderSettings.make("cpu"), stpes=16)
    with pytest.raises(AtlasError, match="seeds is the number of pictures"):
        atlas.visualize(net, "class:1", input_size=32, seeds=0, **TINY)
    assert net.training and all(p.requires_grad for p in net.parameters())  # refused before it was touched
    with pytest.raises(AtlasError, match="Atlas.add takes pictures from atlas.visualize, not NoneType"):
        atlas.Atlas(Path("never-written")).add(None)
    pooling = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with pytest.raises(AtlasError, match="the Sequential has no parameters"):
        atlas.visualize(pooling, "class:1", input_size=32, **TINY)


def test_a_module_read_otherwise_under_the_same_name_is_refused_before_its_pictures_take_the_keys(tmp_path):
    from tests.concept_folders import make_folder

    net = small_cnn()
    book = atlas.Atlas(tmp_path / "cache")
    (first,) = atlas.visualize(net, "class:1", input_size=32, name="mine", **TINY)
    book.add(first)
    folder = Cache(tmp_path / "cache").entry_dir(first.key)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for options, said in (({"input_size": 48}, "input 32 px there, 48 px here"),
                          ({"input_size": 32, "mean": (0.5, 0.5, 0.5)}, "mean 0.485, 0.456, 0.406 there, 0.5, 0.5, "
                                                                        "0.5 here")):
        (other,) = atlas.visualize(net, "class:1", name="mine", **options, **TINY)
        assert other.key == first.key  # the key does not tell them apart: the cache must
        with pytest.raises(AtlasError, match=re.escape(f"holds mine reading its input otherwise ({said})")):
            book.add(other)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    make_folder(tmp_path / "photos", {"class 0": 2}, side=48)  # the head's own numbered names
    with pytest.raises(AtlasError, match=re.escape("holds mine reading its input otherwise (std")):
        book.concepts(net, tmp_path / "photos", name="mine", input_size=32, std=(0.5, 0.5, 0.5), device="cpu",
                      labels=[f"class {i}" for i in range(10)], report=None)


def test_a_failed_try_never_replaces_a_finished_picture(tmp_path):
    import dataclasses

    net = small_cnn()
    book = atlas.Atlas(tmp_path / "cache")
    (done,) = atlas.visualize(net, "class:1", input_size=32, **TINY)
    book.add(done)
    folder = Cache(tmp_path / "cache").entry_dir(done.key)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    failed = dataclasses.replace(done, record=dataclasses.replace(done.record, status="failed",
                                                                  failure="NaN loss", objective_value=None))
    assert book.add(failed) == [done.key]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert Cache(tmp_path / "cache").check(done.key).status == "ok"


def test_a_timm_model_brings_its_data_config_and_others_take_overrides():
    tiny = load_model("test_resnet", random_weights=True)
    wrapped = from_module(tiny.module)
    assert (wrapped.mean, wrapped.std, wrapped.input_size, wrapped.num_classes) == \
        (tiny.mean, tiny.std, tiny.input_size, 1000)
    assert wrapped.weights_sha256 == tiny.weights_sha256 and wrapped.name == "test_resnet"
    plain = from_module(small_cnn(), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=40, name="mine")
    assert (plain.name, plain.mean, plain.std, plain.input_size, plain.num_classes) == \
        ("mine", (0.5,) * 3, (0.25,) * 3, 40, 10)
    with pytest.raises(AtlasError, match="cannot read a 1 x 3 x 8 x 8 image"):
        from_module(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 7)), input_size=8)


def test_pictures_show_in_jupyter_one_by_one_and_as_a_row():
    pictures = atlas.visualize(load_model("test_resnet", random_weights=True), ["class:1", "class:207"], **TINY)
    shown = Image.open(io.BytesIO(pictures[0]._repr_png_()))
    assert np.array_equal(np.asarray(shown.convert("RGB")), np.asarray(pictures[0].image))
    row = pictures._repr_html_()
    assert row.count("<figure") == 2 and row.count("data:image/png;base64,") == 2
    assert "test_resnet · class 207 · golden retriever" in row  # ImageNet names for a 1000-class model
    assert Image.open(io.BytesIO(pictures._repr_png_())).size == (64, 32)


def test_atlas_render_and_visualize_make_the_same_entries(tmp_path):
    """`atlas render` and the library go through one engine entry with one settings value: the
    same model and settings give the same keys and the same pixels."""
    config = load_config(write_config(tmp_path, "test_resnet", classes="0-1", batch_size=2))
    selection = override(config.full)
    pipeline.run(pipeline.RenderRequest(config=config, selection=selection, device="cpu", batch_size=2),
                 report=lambda _line: None)
    cache = Cache(config.cache)
    settings = RenderSettings.from_config(config, selection)
    pictures = atlas.visualize(load_model("test_resnet", random_weights=True), ["class:0", "class:1"],
                               preset=settings, device="cpu")
    assert sorted(p.key for p in pictures) == sorted(cache.keys())
    for picture in pictures:
        stored = np.asarray(Image.open(cache.entry_dir(picture.key) / IMAGE))
        assert np.array_equal(stored, np.asarray(picture.image))


def test_pictures_from_a_notebook_become_a_site(tmp_path, capsys):
    net = small_cnn()
    pictures = atlas.visualize(net, ["class:1", "class:4", "channel:2:3", "0.5*class:1+class:2"], name="mycnn",
                               input_size=32, **TINY)
    book = atlas.Atlas(tmp_path / "cache")
    keys = book.add(pictures)
    assert keys == [p.key for p in pictures]
    cache = Cache(tmp_path / "cache")
    assert all(cache.check(key).status == "ok" for key in keys)
    assert cache.read_model("mycnn").num_classes == 10
    assert main(["build", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "site")]) == 0
    out = capsys.readouterr().out
    assert "cache entries not shown: 1 sum objective" in out  # the site shows classes and channels only
    page = (tmp_path / "site/mycnn/classes/0001.html").read_text(encoding="utf-8")  # the model's folder
    doc = json.loads((tmp_path / "site/mycnn/data/classes/0001.json").read_text(encoding="utf-8"))
    assert doc["status"] == "ok" and "Not rendered yet" not in page
    assert [r["key"] for r in doc["renders"]] == [pictures[0].key]
    assert (tmp_path / "site" / doc["renders"][0]["images"]["detail"]).is_file()
    assert "channel 3" in (tmp_path / "site/mycnn/layers/2/c0003.html").read_text(encoding="utf-8")
    # the same pictures again: the same entries, nothing new
    assert book.add(pictures) == keys and sorted(cache.keys()) == sorted(keys)
    other = from_module(small_cnn(classes=3), name="mycnn", input_size=32)
    with pytest.raises(AtlasError, match="holds mycnn with other weights"):
        book.add(atlas.visualize(other, "class:0", **TINY))


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## From a notebook", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "README's From a notebook section has no python block"
    return blocks[0]


def test_the_readme_notebook_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    pictures = namespace["pictures"]
    assert len(pictures) == 4 and all(p.image.size == (64, 64) for p in pictures)
    assert (tmp_path / "best.png").is_file()
    assert len(list(Cache(tmp_path / "notebook-cache").keys())) == len(pictures)


def test_import_atlas_stays_torch_free_until_the_library_is_used():
    code = ("import sys, atlas, atlas.flags, atlas.settings, atlas.picture\n"
            "assert atlas.__version__ and 'visualize' in dir(atlas)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm'))\n"
            "assert not bad, bad\n"
            "atlas.visualize\n"
            "assert 'torch' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("objectives", "message"), [
    (5, "not int 5 (for class 5: \"class:5\")"),
    (2.5, "not float 2.5"),
    (None, "not NoneType None"),
])
def test_an_objective_that_is_no_id_value_or_list_is_a_one_line_error(objectives, message):
    with pytest.raises(AtlasError, match=re.escape(message)) as caught:
        atlas.visualize(small_cnn(), objectives, input_size=32, **TINY)
    assert "objectives are an id like \"class:1\"" in str(caught.value)


@pytest.mark.parametrize(("options", "message"), [
    ({"input_size": 0}, "input_size is the model's input side in pixels, an integer of 8 or more; got 0"),
    ({"input_size": -32}, "an integer of 8 or more; got -32"),
    ({"input_size": 4}, "an integer of 8 or more; got 4"),
    ({"input_size": 32.5}, "an integer of 8 or more; got 32.5"),
    ({"std": (float("nan"),) * 3}, "std is one value per RGB channel, three finite numbers above 0"),
    ({"std": (0.2, 0.0, 0.2)}, "three finite numbers above 0"),
    ({"std": (0.2, 0.2)}, "three finite numbers above 0"),
    ({"mean": (0.5, float("inf"), 0.5)}, "mean is one value per RGB channel, three finite numbers;"),
    ({"name": "../../evil"}, "name= is the model's name in captions and the cache, a plain name"),
    ({"name": ".hidden"}, "got '.hidden'"),
    ({"name": "a\\b"}, "no / or \\, no leading dot"),
    ({"name": ""}, "got ''"),
    ({"mean": 0.5}, "mean is one value per RGB channel, three finite numbers; got 0.5"),
    ({"mean": "0.5"}, "mean is one value per RGB channel"),
])
def test_model_options_that_cannot_be_a_model_are_refused_before_rendering(tmp_path, monkeypatch, options, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AtlasError, match=re.escape(message)):
        atlas.visualize(small_cnn(), "class:1", **{"input_size": 32, **options}, **TINY)
    assert list(tmp_path.iterdir()) == []


def test_adding_pictures_under_other_class_names_leaves_the_cache_as_it_was(tmp_path):
    net = small_cnn(classes=3)
    book = atlas.Atlas(tmp_path / "cache")
    book.add(atlas.visualize(net, "class:2", labels=["apple", "pear", "plum"], input_size=32, name="fruit", **TINY))
    model_file = Cache(tmp_path / "cache").model_path("fruit")
    before, keys = model_file.read_bytes(), sorted(Cache(tmp_path / "cache").keys())
    renamed = atlas.visualize(net, "class:1", labels=["apple", "cherry", "plum"], input_size=32, name="fruit", **TINY)
    with pytest.raises(AtlasError, match=re.escape("names the classes of fruit otherwise (class 1 is 'pear' there, "
                                                   "'cherry' here): pass the labels= its pictures were made with")):
        book.add(renamed)
    unnamed = atlas.visualize(net, "class:1", input_size=32, name="fruit", **TINY)
    with pytest.raises(AtlasError, match=re.escape("class 0 is 'apple' there, 'class 0' here")):
        book.add(unnamed)
    assert model_file.read_bytes() == before and sorted(Cache(tmp_path / "cache").keys()) == keys
    same = atlas.visualize(net, "class:1", labels=["apple", "pear", "plum"], input_size=32, name="fruit", **TINY)
    assert book.add(same) == [same[0].key] and len(list(Cache(tmp_path / "cache").keys())) == 2


def test_module_options_with_a_named_or_loaded_model_are_refused_not_ignored(tiny_resnet):
    for model in ("test_resnet", tiny_resnet):
        with pytest.raises(AtlasError, match=r"name=, input_size= describe a torch module, but .* brings its own"):
            atlas.visualize(model, "class:1", input_size=64, name="mine", steps=1)
