"""The same unit across models (atlas.rosetta, stored by atlas.matches): known answers on a tiny model."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch

from atlas import matches as store
from atlas.models import from_module
from atlas.rosetta import Correlator, match, mutual_best, on_grid
from atlas.store import file_path, read
from tests.concept_folders import make_folder

LAYERS = ["layer2", "layer4"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("rosetta-images")
    make_folder(root, {"a": 5, "b": 5}, side=96, tiles=3)
    return root


def _permuted_copy(loaded, layer: str, order: torch.Tensor):
    """A copy of the model whose `layer` gives channel order[j] of the original as its channel j."""
    module = copy.deepcopy(loaded.module)
    module.get_submodule(layer).register_forward_hook(lambda _m, _i, out: out[:, order])
    return from_module(module, name="permuted", input_size=loaded.input_size)


def _live(result, layer):
    return {m.channel_a: m for m in result.matches if m.layer_a == layer and m.layer_b == layer}


def test_a_model_matches_itself_channel_for_channel(tiny_resnet, images):
    result = match(tiny_resnet, tiny_resnet, images, layers_a=LAYERS, layers_b=LAYERS, grid=4, batch_size=4)
    assert result.images["count"] == 10 and result.images["skipped"] == 0
    assert len(result.matches) > 100  # most channels live (a dead one has no correlation and no match)
    for m in result.matches:
        assert (m.layer_b, m.channel_b) == (m.layer_a, m.channel_a)
        assert m.correlation == pytest.approx(1.0, abs=1e-4)


def test_a_permuted_copy_gives_back_the_permutation(tiny_resnet, images):
    channels = 96  # test_resnet's layer4
    order = torch.randperm(channels, generator=torch.Generator().manual_seed(3))
    other = _permuted_copy(tiny_resnet, "layer4", order)
    result = match(tiny_resnet, other, images, layers_a=["layer4"], layers_b=["layer4"], grid=4, batch_size=4)
    found = _live(result, "layer4")
    assert len(found) > channels // 2
    inverse = torch.argsort(order)
    for channel, m in found.items():
        assert m.channel_b == int(inverse[channel]), channel  # our channel c is the copy's channel order^-1[c]
        assert m.correlation == pytest.approx(1.0, abs=1e-4)
    assert result.models[1].name == "permuted"


def test_streamed_correlation_is_the_correlation_of_all_rows():
    torch.manual_seed(0)
    x, y = torch.randn(300, 5) * 4 + 100, torch.randn(300, 3)
    y[:, 0] = 2 * x[:, 2] + 0.1 * y[:, 0]
    correlator = Correlator("cpu")
    for start in range(0, 300, 64):
        correlator.update({"a": x[start : start + 64]}, {"b": y[start : start + 64]})
    expected = torch.corrcoef(torch.cat([x, y], 1).T)[:5, 5:]
    assert torch.allclose(correlator.matrix(["a"], ["b"]).float(), expected, atol=1e-5)
    assert mutual_best(correlator.matrix(["a"], ["b"]))[0][:2] == (2, 0)


def test_maps_are_resized_to_one_grid():
    maps = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    rows = on_grid(maps, 4)
    assert rows.shape == (2 * 16, 3)
    assert rows[0, 0] == pytest.approx(maps[0, 0, :2, :2].mean())  # shrinking averages the area


def test_the_stored_result_round_trips_and_hostile_files_are_skipped(tiny_resnet, images, tmp_path):
    result = match(tiny_resnet, tiny_resnet, images, layers_a=["layer4"], layers_b=["layer4"], grid=4)
    path = store.write(tmp_path, result)
    assert read(tmp_path, "matches", result.key) == result
    assert store.KIND.loads(store.KIND.dumps(result), result.key) == result
    good = json.loads(path.read_text())
    bad = file_path(tmp_path, "matches", "ff" + "0" * 62)
    bad.parent.mkdir(parents=True, exist_ok=True)
    for damage, why in ((lambda d: d["matches"].append(["layer4", 96, "layer4", 0, 0.5]), "outside"),
                        (lambda d: d["matches"].append(["layer4", 1, "layer4", 1, "NaN"]), "correlation"),
                        (lambda d: d["matches"].append(["layer4", 1.0, "layer4", 1, 0.5]), "channel_a is float"),
                        (lambda d: d["matches"].append(["layer9", 1, "layer4", 1, 0.5]), "layer9"),
                        (lambda d: d["matches"].append(["layer4", 1, "layer4", 1, 7.0]), "not in [-1, 1]"),
                        (lambda d: d.update(models="two"), "models is not a list of 2")):
        data = copy.deepcopy(good)
        damage(data)
        data["key"] = bad.stem
        bad.write_text(json.dumps(data))
        with pytest.warns(UserWarning) as caught:
            found = list(store.stored(tmp_path))
        assert found == [result]
        message = str(caught[0].message)
        assert len(caught) == 1 and "\n" not in message and str(bad) in message and why in message, message
    bad.write_text(path.read_text().replace('"matches": [', '"matches": [["layer4", 0, "layer4", 0, NaN], ', 1)
                   .replace(result.key, bad.stem))
    with pytest.warns(UserWarning, match="not a finite number"):
        assert list(store.stored(tmp_path)) == [result]
    bad.unlink()
    assert store.counterparts(tmp_path, tiny_resnet.name, tiny_resnet.weights_sha256) == {}  # itself: nothing
    copy_side = dataclasses.replace(result.models[1], name="copy")
    shifted = tuple(m._replace(channel_b=(m.channel_b + 1) % 96) for m in result.matches)
    store.write(tmp_path, dataclasses.replace(result, key="ee" + "0" * 62, models=(result.models[0], copy_side),
                                              matches=shifted))
    first = result.matches[0]
    [ours] = store.counterparts(tmp_path, tiny_resnet.name, tiny_resnet.weights_sha256)[("layer4", first.channel_a)]
    assert (ours.model, ours.layer, ours.channel, ours.images) == ("copy", "layer4", (first.channel_b + 1) % 96, 10)
    [theirs] = store.counterparts(tmp_path, "copy", tiny_resnet.weights_sha256)[("layer4", (first.channel_b + 1) % 96)]
    assert (theirs.model, theirs.channel) == (tiny_resnet.name, first.channel_a)


def test_the_key_names_both_models_the_images_and_the_settings():
    a = store.Side("a", "w1", (("l", 4),))
    b = store.Side("b", "w2", (("m", 8),))
    key = store.key_of(a, b, "images", {"grid": 7})
    assert key == store.key_of(b, a, "images", {"grid": 7})
    assert len({key, store.key_of(a, b, "other images", {"grid": 7}), store.key_of(a, b, "images", {"grid": 14}),
                store.key_of(a, store.Side("b", "w3", (("m", 8),)), "images", {"grid": 7})}) == 4


def test_the_command_stores_each_pair_once(images, tmp_path, capsys):
    from atlas.cli import main

    line = ["match", "--images", str(images), "--models", "test_resnet", "test_resnet", "--random-weights",
            "--layers", "layer4", "--grid", "3", "--cache", str(tmp_path), "--device", "cpu"]
    assert main(line) == 0
    first = capsys.readouterr().out
    assert "mutual matches of 96 x 96 channels on 10 images" in first
    [path] = (tmp_path / store.KIND.folder).glob("*/*.json")
    value = read(tmp_path, "matches", path.stem)
    assert value is not None and value.settings["grid"] == 3 and value.models[0].layers == (("layer4", 96),)
    assert main(line) == 0 and "already in the cache" in capsys.readouterr().out
    assert main([*line[:-4], "--layers", "test_resnet:layer9"]) == 1
    assert "test_resnet has no layer 'layer9'" in capsys.readouterr().err


def test_two_architectures_of_other_input_sizes_and_an_unreadable_file(tiny_resnet, images, tmp_path):
    import shutil

    from atlas.models import load_model

    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    (folder / "a" / "broken.png").write_bytes(b"not a png")
    other = load_model("test_efficientnet", random_weights=True)
    result = match(tiny_resnet, other, folder, layers_a=["layer4"], grid=5, batch_size=4)
    assert result.images["count"] == 10 and result.images["skipped"] == 1
    layers_b = {name for name, _ in result.models[1].layers}
    assert result.matches and all(m.layer_a == "layer4" and m.layer_b in layers_b for m in result.matches)
    assert all(-1 <= m.correlation <= 1 for m in result.matches)
    channels = [m.channel_a for m in result.matches]
    assert len(set(channels)) == len(channels)  # mutual: one partner each
