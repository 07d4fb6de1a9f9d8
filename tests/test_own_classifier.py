"""Your own classifier, end to end: EfficientNet-Lite0 fine-tuned here to three classes of packaged
photos (a nearest-class-mean head on its pooled features), saved as a plain state dict, then
rendered, explained by concepts, built and browsed under its own class names, never ImageNet's."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from atlas.cache import Cache
from atlas.classifier import load_configured_model
from atlas.cli import main
from atlas.concepts import store
from atlas.concepts.craft import to_model_input
from atlas.config import Config, load_config
from atlas.models import pooled_features
from tests.browser_support import chromium, open_tab
from tests.concept_folders import one_thread  # noqa: F401 - a fixture
from tests.config_support import TINY_PRESET, write_config
from tests.photos import photo

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

# The classes, in the order of their sorted folder names (torchvision's ImageFolder order), and their photo.
PHOTOS = {"cat": "chelsea", "cup": "coffee", "flower": "flower.jpg"}
PER_CLASS = 3
SIDE = 224


def crops(name: str, count: int, seed: int) -> list[np.ndarray]:
    """`count` random square crops of a photo (half to all of its shorter side), resized to SIDE."""
    image = np.asarray(Image.fromarray(photo(name)).convert("RGB"))
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    out = []
    for _ in range(count):
        side = int(rng.integers(min(height, width) // 2, min(height, width)))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        square = Image.fromarray(image[top : top + side, left : left + side]).resize((SIDE, SIDE))
        out.append(np.asarray(square))
    return out


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, lite0):
    """The fine-tuned checkpoint, its labels file and its image folder (one subfolder per class)."""
    root = tmp_path_factory.mktemp("own-classifier")
    pixels, targets = [], []
    for k, (label, name) in enumerate(PHOTOS.items()):
        (root / "images" / label).mkdir(parents=True)
        for i, square in enumerate(crops(name, PER_CLASS, seed=k)):
            Image.fromarray(square).save(root / "images" / label / f"{i}.png")
            pixels.append(square)
            targets.append(k)
    with torch.no_grad():
        features = pooled_features(lite0, to_model_input(lite0, torch.from_numpy(np.stack(pixels)))).double()
    targets = torch.tensor(targets)
    means = torch.stack([features[targets == k].mean(dim=0) for k in range(len(PHOTOS))])
    # nearest class mean as a linear head: logit_k = <f, m_k> - |m_k|^2 / 2, scaled by one constant
    scale = means.norm(dim=1).mean()
    weight, bias = means / scale, -(means.norm(dim=1) ** 2) / (2 * scale)
    state = {key: value.clone() for key, value in lite0.module.state_dict().items()}
    assert state["classifier.weight"].shape == (1000, features.shape[1])
    state["classifier.weight"], state["classifier.bias"] = weight.float(), bias.float()
    torch.save(state, root / "finetuned.pth")
    (root / "labels.txt").write_text("\n".join(PHOTOS) + "\n")
    return SimpleNamespace(root=root, checkpoint=root / "finetuned.pth", labels=root / "labels.txt",
                           images=root / "images", pixels=np.stack(pixels), targets=targets)


def config_for(fitted, folder: Path, **settings) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"random_weights": None, "checkpoint": str(fitted.checkpoint), "scoring": {"crops": 2},
                "preset": TINY_PRESET, "cpu": {"preset": TINY_PRESET}, **settings}
    return write_config(folder, "efficientnet_lite0", **settings)


def test_the_checkpoint_brings_its_head_and_the_labels_name_its_classes(fitted):
    config = dataclasses.replace(Config(), checkpoint=fitted.checkpoint, labels=fitted.labels)
    loaded = load_configured_model(config)
    assert loaded.num_classes == 3 and loaded.weights_source == "checkpoint finetuned.pth"
    assert [(c.index, c.name, c.wnid) for c in loaded.classes] == [(0, "cat", ""), (1, "cup", ""), (2, "flower", "")]
    assert loaded.dataset is None  # not ImageNet's classes
    with torch.no_grad():
        logits = loaded.module(to_model_input(loaded, torch.from_numpy(fitted.pixels)))
    assert logits.argmax(dim=1).tolist() == fitted.targets.tolist()  # it classifies its training photos

    # without labels: the image folder's class folders, in ImageFolder order; a dataset name when given
    named = load_configured_model(dataclasses.replace(config, labels=None, dataset="Kitchen"), fitted.images)
    assert [c.name for c in named.classes] == list(PHOTOS) and named.dataset == "Kitchen"
    assert [c.name for c in load_configured_model(dataclasses.replace(config, labels=None)).classes] == \
        ["class 0", "class 1", "class 2"]


def test_concepts_render_build_and_browse_under_the_folder_names(fitted, tmp_path, capsys):
    # no labels file: the class folders of [concepts] images name the classes, for every command
    config = config_for(fitted, tmp_path, judges=["efficientnet_lite1"], concepts={"images": str(fitted.images)})
    assert main(["concepts", "--config", str(config), "--concepts", "2", "--images-per-class", str(PER_CLASS),
                 "--classes", "cat,flower", "--layers", "conv_head=0-1", "--no-progress"]) == 0
    banks = {bank.class_index: bank for bank in store.banks(tmp_path / "cache")}
    assert sorted(banks) == [0, 2] and [banks[0].wnid, banks[2].wnid] == ["cat", "flower"]
    for bank in banks.values():  # the exact logit shares, as for an ImageNet head
        assert bank.exact and bank.images == PER_CLASS
        assert sum(c.importance for c in bank.concepts) + bank.residual + bank.rest == pytest.approx(bank.logit,
                                                                                                    abs=1e-3)
        assert all(0 <= a.index < 3 for c in bank.concepts for a in c.aligned)
    capsys.readouterr()

    assert main(["render", "--config", str(config), "--full", "--no-progress", "--classes", "cat,2",
                 "--layers", "conv_head=0"]) == 0
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if "efficientnet_lite1" in line]
    assert len(warning) == 1 and "cannot judge the 3 classes" in warning[0], captured.err
    cache = Cache(tmp_path / "cache")
    info = cache.read_model("efficientnet_lite0")
    assert [c.name for c in info.classes] == list(PHOTOS) and info.num_classes == 3 and info.dataset is None
    records = list(cache.render_records(verify=True))
    classes = [r for r in records if r.objective.kind == "class"]
    assert sorted(r.objective.class_index for r in classes) == [0, 2]
    assert {r.objective.description for r in classes} == {"efficientnet_lite0 · class 0 · cat",
                                                          "efficientnet_lite0 · class 2 · flower"}
    assert sum(r.objective.kind == "concept" for r in records) == 4  # two concepts of each explained class
    for record in classes:  # scored by the generator alone: the ImageNet judge was left out
        assert [m.name for m in record.scores.models] == ["efficientnet_lite0"]
        assert all(0 <= t.index < 3 for t in record.scores.models[0].top5)

    assert main(["build", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "site")]) == 0
    with chromium() as browser:
        tab = open_tab(browser, (tmp_path / "site").as_uri() + "/")
        tab.goto("efficientnet_lite0/classes/0000.html")
        assert tab.page.locator("h1").inner_text().endswith("cat")
        assert tab.page.locator("p.eyebrow").text_content().startswith("Class 0 ")
        assert "ImageNet" not in tab.page.content()
        assert tab.page.locator("li.concept").count() == 2
        tab.goto("efficientnet_lite0/index.html")
        assert "draws for each class" in tab.page.locator("h1").inner_text()
        assert "ImageNet" not in tab.page.content()
        tab.assert_clean()


def test_a_labels_file_and_a_dataset_name_the_classes_on_the_site(fitted, tmp_path, capsys):
    config = config_for(fitted, tmp_path, labels="labels.txt", dataset="Kitchen", judges=[])
    (tmp_path / "labels.txt").write_text("tabby\nmug\ndaisy\n")
    assert load_config(config).labels == tmp_path / "labels.txt"  # relative to the config's folder
    assert main(["render", "--config", str(config), "--full", "--no-progress", "--classes", "mug"]) == 0
    info = json.loads((tmp_path / "cache" / "models" / "efficientnet_lite0.json").read_text())
    assert [c["name"] for c in info["classes"]] == ["tabby", "mug", "daisy"] and info["dataset"] == "Kitchen"
    assert main(["build", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "efficientnet_lite0" / "classes" / "0001.html").read_text()
    assert "Kitchen class 1" in page and "mug" in page and "ImageNet" not in page
    assert "draws for each Kitchen class" in (tmp_path / "site" / "efficientnet_lite0" / "index.html").read_text()

    # folders named by other names than the cache's classes: one line naming a few, and the names expected
    capsys.readouterr()
    assert main(["eval", "--config", str(config), "--images", str(fitted.images)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'cat', 'cup', 'flower'" in err and "'tabby', 'mug', 'daisy'" in err, err


def test_the_readme_config_renders_the_cpu_subset_of_its_own_classes(fitted, tmp_path, capsys):
    # no [cpu] classes, judges or layers: the subset samples this head's classes, and `judges = []` holds there too
    config = config_for(fitted, tmp_path, labels=str(fitted.labels), dataset="Kitchen", judges=[])
    assert main(["render", "--config", str(config), "--cpu-subset", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "judges left out" not in captured.err and "about 9 minutes" not in captured.out, captured
    records = list(Cache(tmp_path / "cache").render_records(verify=True))
    assert sorted(r.objective.class_index for r in records if r.objective.kind == "class") == [0, 1, 2]
    assert {r.objective.layer for r in records if r.objective.kind == "channel"} == {"blocks.3", "conv_head"}
    assert all([m.name for m in r.scores.models] == ["efficientnet_lite0"] for r in records if r.scores)


def test_other_labels_for_the_same_weights_keep_the_cache_names_and_say_so(fitted, tmp_path, capsys):
    config = config_for(fitted, tmp_path, labels="labels.txt", judges=[])
    (tmp_path / "labels.txt").write_text("tabby\nmug\ndaisy\n")
    assert main(["render", "--config", str(config), "--full", "--no-progress", "--classes", "0"]) == 0
    model_file = tmp_path / "cache" / "models" / "efficientnet_lite0.json"
    before = model_file.read_bytes()
    (tmp_path / "labels.txt").write_text("cat\nmug\ndaisy\n")
    capsys.readouterr()
    assert main(["render", "--config", str(config), "--full", "--no-progress", "--classes", "1"]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "otherwise" in line]
    assert len(warning) == 1 and "class 0 is 'tabby' there, 'cat' here); its names are kept" in warning[0], warning
    assert model_file.read_bytes() == before
