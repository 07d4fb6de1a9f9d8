"""The configured classifier on a tiny model fine-tuned to four classes: class names from a labels
file or the image folder, class specs by name, `atlas eval` on the folder's names, and every bad
input as one line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from atlas.cache import Cache
from atlas.classifier import load_configured_model, same_classes
from atlas.cli import main
from atlas.config import Config
from atlas.models import load_model
from tests.config_support import write_config

NAMES = ("apple", "banana", "cherry", "date")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A folder with a 4-class checkpoint of test_efficientnet, its labels file and an image folder."""
    root = tmp_path_factory.mktemp("classifier")
    state = load_model("test_efficientnet", random_weights=True).module.state_dict()
    generator = torch.Generator().manual_seed(0)
    state["classifier.weight"] = torch.randn(len(NAMES), state["classifier.weight"].shape[1], generator=generator)
    state["classifier.bias"] = torch.zeros(len(NAMES))
    torch.save(state, root / "head4.pth")
    (root / "labels.txt").write_text("\n".join(NAMES) + "\n")
    rng = np.random.default_rng(0)
    for name in NAMES:
        (root / "images" / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "images" / name / f"{i}.png")
    return root


def config(project: Path, folder: Path, **settings) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(folder, "test_efficientnet", random_weights=None, checkpoint=str(project / "head4.pth"),
                        scoring={"crops": 2}, **settings)


def one_line_error(capsys, argv: list[str], *fragments: str) -> str:
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_names_come_from_labels_then_folders_then_numbers(project):
    base = Config(model="test_efficientnet", checkpoint=project / "head4.pth")
    assert [c.name for c in load_configured_model(dataclasses.replace(base, labels=project / "labels.txt")).classes] \
        == list(NAMES)
    from_folder = load_configured_model(base, project / "images")
    assert [c.name for c in from_folder.classes] == list(NAMES) and from_folder.dataset is None
    assert [c.name for c in load_configured_model(base).classes] == [f"class {i}" for i in range(4)]
    # an ImageNet head keeps its own table whatever folder is given, and ImageNet names the classes
    imagenet = load_configured_model(Config(model="test_efficientnet", random_weights=True), project / "images")
    assert imagenet.classes[1].wnid == "n01443537" and imagenet.dataset == "ImageNet"
    assert not same_classes(imagenet, from_folder) and same_classes(from_folder, from_folder)



def test_layers_shows_the_checkpoint_head_and_its_names(project, capsys):
    assert main(["layers", "test_efficientnet", "--checkpoint", str(project / "head4.pth"), "--labels",
                 str(project / "labels.txt")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("4 classes (apple, banana, cherry, date)") and "checkpoint head4.pth" in first


def test_render_by_class_name_then_eval_on_the_folder_names(project, tmp_path, capsys):
    path = config(project, tmp_path, concepts={"images": str(project / "images")})
    assert main(["render", "--config", str(path), "--full", "--no-progress", "--classes", "Banana,3"]) == 0
    info = json.loads((tmp_path / "cache" / "models" / "test_efficientnet.json").read_text())
    assert [c["name"] for c in info["classes"]] == list(NAMES) and "dataset" not in info
    out = tmp_path / "eval.json"
    assert main(["eval", "--config", str(path), "--images", str(project / "images"), "--feature-model",
                 "test_efficientnet", "--crops", "2", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["classes"]
    assert [(r["class_index"], r["name"], r["wnid"], r["real_images"]) for r in rows] == \
        [(1, "banana", None, 2), (3, "date", None, 2)]
    assert "banana" in capsys.readouterr().out


def test_a_checkpoint_of_the_same_classes_judges(project, tmp_path):
    state = torch.load(project / "head4.pth")
    state["classifier.weight"] = state["classifier.weight"].flip(0)  # another classifier of the same classes
    torch.save(state, tmp_path / "other.pth")
    path = config(project, tmp_path, labels=str(project / "labels.txt"))
    text = path.read_text().replace("judges = []", 'judges = [{model = "test_efficientnet", checkpoint = "other.pth", '
                                    'labels = "' + str(project / "labels.txt") + '"}]')
    path.write_text(text)
    assert main(["render", "--config", str(path), "--full", "--no-progress", "--classes", "cherry"]) == 0
    (record,) = Cache(tmp_path / "cache").render_records(verify=True)
    assert [(m.name, m.role) for m in record.scores.models] == [("test_efficientnet", "generator"),
                                                                ("test_efficientnet@other", "judge")]
    assert all(m.target_top1_rate is not None for m in record.scores.models)


def test_bad_input_is_one_line(project, tmp_path, capsys):
    path = config(project, tmp_path, judges=[])
    render = ["render", "--config", str(path), "--full", "--no-progress"]
    three = tmp_path / "three.txt"
    three.write_text("apple\nbanana\ncherry\n")
    one_line_error(capsys, [*render, "--labels", str(three)], "names 3 classes but the model's head has 4")
    blank = tmp_path / "blank.txt"
    blank.write_text("apple\n\ncherry\ndate\n")
    one_line_error(capsys, [*render, "--labels", str(blank)], "line 2 is blank")
    twice = tmp_path / "twice.txt"
    twice.write_text("apple\nbanana\napple\ndate\n")
    one_line_error(capsys, [*render, "--labels", str(twice)], "'apple' is on lines 1 and 3")
    labels = ["--labels", str(project / "labels.txt")]
    one_line_error(capsys, [*render, *labels, "--classes", "kiwi"], "unknown class 'kiwi'")
    one_line_error(capsys, [*render, "--labels", str(tmp_path / "missing.txt")], "cannot read labels file")

    # an image folder whose names match no label: a few of them named, and the names expected
    for name in ("dog", "cat", "bird", "cow", "apple"):
        (tmp_path / "animals" / name).mkdir(parents=True)
    err = one_line_error(capsys, ["concepts", "--config", str(path), *labels, "--images", str(tmp_path / "animals"),
                                  "--no-progress"], "4 of 5 folders", "'bird', 'cat', 'cow' and 1 more",
                         "'apple', 'banana', 'cherry', 'date'")
    assert "dog" not in err
    # the folders as labels, with a head of another size
    one_line_error(capsys, ["concepts", "--config", str(path), "--images", str(tmp_path / "animals"), "--no-progress"],
                   "image folder", "names 5 classes but the model's head has 4")
