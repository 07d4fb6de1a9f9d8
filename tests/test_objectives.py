"""Objectives: ids, captions, algebra, values against hand-computed activations, hooks, and that they rise."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from atlas.errors import AtlasError
from atlas.models import load_model
from atlas.objectives import (
    ActivationCapture,
    Activations,
    BatchObjective,
    capture,
    channel,
    class_logit,
    class_logprob,
    class_margin,
    direction,
    neuron,
)
from atlas.presets import get_preset
from atlas.record import direction_id
from atlas.render import render

LAYERS = {"test_resnet": "layer2", "test_vit": "blocks.3", "test_efficientnet": "blocks.3"}


@pytest.fixture(scope="module", params=sorted(LAYERS))
def tiny(request):
    loaded = load_model(request.param, random_weights=True)
    # CNNs take any input size: small crops keep these tests fast (the ViT's grid is fixed at 160)
    return loaded if request.param == "test_vit" else dataclasses.replace(loaded, input_size=64)


def hooks_left(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in module.modules())


def reference_activation(loaded, layer: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's output as (B, C, H, W) by hand (ViT tokens without the class token), and the logits."""
    out = {}
    handle = loaded.module.get_submodule(layer).register_forward_hook(lambda _m, _i, o: out.setdefault("a", o))
    try:
        logits = loaded.module(x)
    finally:
        handle.remove()
    a = out["a"]
    if a.ndim == 3:
        tokens = a[:, loaded.module.num_prefix_tokens :]
        side = int(tokens.shape[1] ** 0.5)
        a = tokens.transpose(1, 2).reshape(a.shape[0], -1, side, side)
    return a, logits


def test_ids_and_captions():
    assert class_logit(967).id == "class:967"
    assert class_logit(967).describe("efficientnet_lite0") == "efficientnet_lite0 · class 967"
    assert channel("blocks.5", 17).id == "channel:blocks.5:17"
    assert channel("blocks.5", 17).describe("efficientnet_lite0") == "efficientnet_lite0 · blocks.5 · channel 17"
    assert neuron("blocks.5", 17, 3, 4).id == "neuron:blocks.5:17:3:4"
    assert neuron("blocks.5", 17).id == "neuron:blocks.5:17:centre"
    mixed = 0.5 * channel("blocks.5", 17) + class_logit(3)
    assert mixed.id == "0.5*channel:blocks.5:17+class:3"
    assert mixed.describe("m") == "m · 0.5 × (blocks.5 · channel 17) + class 3"
    assert (class_logit(3) + 0.5 * channel("blocks.5", 17)).id == mixed.id  # order does not matter
    assert (channel("a", 1) - class_logit(2)).id == "channel:a:1-class:2"
    assert (-class_logit(2)).id == "-class:2"
    assert (class_logit(2) / 4).id == "0.25*class:2"
    assert (class_logit(1) + class_logit(1)).id == (2 * class_logit(1)).id == "2*class:1"


def test_direction_ids_hash_the_vector():
    a = direction("blocks.5", [1.0, 0.0, 2.0])
    assert a.id.startswith("direction:blocks.5:dot:") and len(a.id.rsplit(":", 1)[1]) == 12
    assert a.id == direction("blocks.5", torch.tensor([1.0, 0.0, 2.0])).id
    assert a.id != direction("blocks.5", [1.0, 0.0, 2.5]).id
    assert direction("blocks.5", [1.0, 0.0, 2.0], cosine=True).id.startswith("direction:blocks.5:cos:")
    with pytest.raises(AtlasError, match="non-zero"):
        direction("blocks.5", [0.0, 0.0])


def test_direction_forms_keep_their_ids():
    # the dot and cos ids are cache keys of existing renders: they must not change
    digest = "79b234e7b21d"  # sha256 of float32 (1, 0, 2), first 12 hex
    assert direction("blocks.5", [1.0, 0.0, 2.0]).id == f"direction:blocks.5:dot:{digest}"
    assert direction("blocks.5", [1.0, 0.0, 2.0], cosine=True).id == f"direction:blocks.5:cos:{digest}"
    assert direction("blocks.5", [1.0, 0.0, 2.0], power=2).id == f"direction:blocks.5:dotcos2:{digest}"
    assert direction_id("blocks.5", False, digest) == f"direction:blocks.5:dot:{digest}"
    assert direction_id("blocks.5", True, digest) == f"direction:blocks.5:cos:{digest}"
    assert direction_id("blocks.5", False, digest, 4) == f"direction:blocks.5:dotcos4:{digest}"
    assert direction("b", [1.0], power=2).describe("m").endswith("(dot × cosine^2)")
    with pytest.raises(AtlasError, match="not both"):
        direction("b", [1.0], cosine=True, power=2)
    with pytest.raises(AtlasError, match="non-negative"):
        direction("b", [1.0], power=-1)


def test_dot_times_cosine_power_by_hand():
    # one sample, two positions: a = (3, 4) and (-1, 1) against v = (1, 0)
    # (3, 4): dot 3, cosine 0.6 ; (-1, 1): dot -1, cosine -0.707 floored at 0.1
    act = torch.tensor([[[[3.0, -1.0]], [[4.0, 1.0]]]])  # (B=1, C=2, H=1, W=2)
    activations = Activations({"l": act}, None, 1)
    expected = {
        direction("l", [1.0, 0.0]): (3 - 1) / 2,
        direction("l", [1.0, 0.0], cosine=True): (0.6 - 2 ** -0.5) / 2,
        direction("l", [1.0, 0.0], power=1): (3 * 0.6 - 1 * 0.1) / 2,
        direction("l", [1.0, 0.0], power=2): (3 * 0.36 - 1 * 0.01) / 2,
        direction("l", [2.0, 0.0], power=2): (6 * 0.36 - 2 * 0.01) / 2,
    }
    for objective, value in expected.items():
        torch.testing.assert_close(objective(activations), torch.tensor([value]), msg=objective.id)
    # the three forms of one vector batched together stay apart (one group each)
    objectives = list(expected)
    rows = Activations({"l": act.repeat(len(objectives), 1, 1, 1)}, None, len(objectives))
    torch.testing.assert_close(BatchObjective(objectives, 1)(rows), torch.tensor(list(expected.values())))


def test_record_fields():
    assert (class_logit(5).kind, class_logit(5).class_index, class_logit(5).layer) == ("class", 5, None)
    ch = channel("blocks.2", 7)
    assert (ch.kind, ch.class_index, ch.layer, ch.channel) == ("channel", None, "blocks.2", 7)
    assert neuron("blocks.2", 7).kind == "neuron" and direction("b", [1.0]).kind == "direction"
    mixed = channel("a", 1) + class_logit(2)
    assert (mixed.kind, mixed.class_index, mixed.layer, mixed.channel) == ("sum", None, None, None)
    assert mixed.layers == {"a"} and mixed.needs_logits and not ch.needs_logits


def test_class_objectives_that_weigh_the_other_classes():
    """The log-probability and the margin target one class like the logit, under ids of their own."""
    for make, kind, text in [(class_logprob, "logprob", "log-probability"), (class_margin, "margin", "mean")]:
        objective = make(620)
        assert objective.id == f"{kind}:620" and objective.id != class_logit(620).id
        assert (objective.kind, objective.class_index, objective.layer) == (kind, 620, None)
        assert objective.needs_logits and not objective.layers
        assert text in objective.describe("m")
    assert (class_logit(620) + class_logprob(620)).id == "class:620+logprob:620"


def test_bad_arguments_are_refused():
    with pytest.raises(AtlasError, match="cancel"):
        class_logit(1) - class_logit(1)
    with pytest.raises(AtlasError, match="non-negative"):
        channel("a", -1)
    with pytest.raises(AtlasError, match="both x and y"):
        neuron("a", 1, x=2)
    with pytest.raises(TypeError):
        class_logit(1) + 1


def test_values_match_the_activations(tiny):
    layer = LAYERS[tiny.module.default_cfg["architecture"]]
    x = torch.randn((2, 3, tiny.input_size, tiny.input_size), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        act, logits = reference_activation(tiny, layer, x)
        vector = torch.randn(act.shape[1], generator=torch.Generator().manual_seed(1))
        cases = {
            class_logit(3): logits[:, 3],
            class_logprob(3): torch.log_softmax(logits, dim=1)[:, 3],
            class_margin(3): logits[:, 3] - torch.cat([logits[:, :3], logits[:, 4:]], dim=1).mean(1),
            class_logit(3) + class_logprob(3): logits[:, 3] + torch.log_softmax(logits, dim=1)[:, 3],
            channel(layer, 5): act[:, 5].mean((1, 2)),
            neuron(layer, 2): act[:, 2, act.shape[2] // 2, act.shape[3] // 2],
            neuron(layer, 2, 1, 0): act[:, 2, 0, 1],
            direction(layer, vector): torch.einsum("bchw,c->bhw", act, vector).mean((1, 2)),
            direction(layer, vector, cosine=True): torch.nn.functional.cosine_similarity(
                act, vector.view(1, -1, 1, 1), dim=1).mean((1, 2)),
            direction(layer, vector, power=2): (torch.einsum("bchw,c->bhw", act, vector) * torch.nn.functional
                                                .cosine_similarity(act, vector.view(1, -1, 1, 1), dim=1)
                                                .clamp_min(0.1) ** 2).mean((1, 2)),
            0.5 * channel(layer, 5) - 2 * class_logit(3): 0.5 * act[:, 5].mean((1, 2)) - 2 * logits[:, 3],
        }
        for objective, expected in cases.items():
            got = objective(capture(tiny.module, [objective], x))
            torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4, msg=objective.id)
    assert hooks_left(tiny.module) == 0


def test_batched_evaluation_equals_each_objective_on_its_rows(tiny):
    layer = LAYERS[tiny.module.default_cfg["architecture"]]
    objectives = [class_logit(1), channel(layer, 3), neuron(layer, 0), channel(layer, 1) + class_logit(2),
                  channel(layer, 3), class_logprob(2), class_margin(1) + 0.5 * class_logit(1)]
    crops = 2
    x = torch.randn((len(objectives) * crops, 3, tiny.input_size, tiny.input_size))
    with torch.no_grad():
        acts = capture(tiny.module, objectives, x)
        batched = BatchObjective(objectives, crops)(acts, reduce=False)
        for k, objective in enumerate(objectives):
            rows = x[k * crops : (k + 1) * crops]
            torch.testing.assert_close(batched[k], objective(capture(tiny.module, [objective], rows)),
                                       atol=1e-4, rtol=1e-4)


def test_layer_only_objectives_stop_the_forward_early(tiny):
    layer = LAYERS[tiny.module.default_cfg["architecture"]]
    head = tiny.module.get_classifier()
    calls = []
    handle = head.register_forward_hook(lambda *_: calls.append(1))
    try:
        x = torch.randn((1, 3, tiny.input_size, tiny.input_size))
        with torch.no_grad():
            acts = capture(tiny.module, [channel(layer, 0)], x)
            assert acts.logits is None and not calls
            acts = capture(tiny.module, [channel(layer, 0) + class_logit(0)], x)
            assert acts.logits.shape == (1, tiny.num_classes) and calls
    finally:
        handle.remove()
    assert hooks_left(tiny.module) == 0


def test_hooks_are_removed_when_the_forward_fails(tiny_resnet):
    wrong = torch.randn((1, 5, 32, 32))  # five channels: the stem raises
    with pytest.raises(RuntimeError):
        with ActivationCapture(tiny_resnet.module, {"layer1", "layer2"}, logits=False) as capturing:
            capturing(wrong)
    assert hooks_left(tiny_resnet.module) == 0


def test_unknown_layers_and_indices_are_explained(tiny_resnet):
    x = torch.randn((1, 3, tiny_resnet.input_size, tiny_resnet.input_size))
    with pytest.raises(AtlasError, match="no layer 'layer9'"):
        capture(tiny_resnet.module, [channel("layer9", 0)], x)
    for objective, message in [(channel("layer2", 4096), "channel 4096 is out of range"),
                               (class_logit(5000), "class 5000 is out of range"),
                               (class_logprob(5000), "class 5000 is out of range"),
                               (neuron("layer2", 0, 99, 0), "neuron x 99"),
                               (direction("layer2", [1.0, 2.0]), "needs 48 entries")]:
        with pytest.raises(AtlasError, match=message), torch.no_grad():
            objective(capture(tiny_resnet.module, [objective], x))
    assert hooks_left(tiny_resnet.module) == 0


def test_every_objective_rises(tiny):
    layer = LAYERS[tiny.module.default_cfg["architecture"]]
    channels = capture(tiny.module, [channel(layer, 0)], torch.zeros((1, 3, tiny.input_size, tiny.input_size)))
    width = channels.layers[layer].shape[1]
    objectives = [class_logit(3), channel(layer, 5), neuron(layer, 2), direction(layer, torch.linspace(-1, 1, width)),
                  direction(layer, torch.linspace(1, -1, width), cosine=True), channel(layer, 1) - 0.5 * class_logit(7),
                  class_logprob(4), class_margin(5)]
    seeds = list(range(len(objectives)))
    # random crops only: a whole view changes the noise draws, and on random weights a neuron can
    # sit dead under one draw and not another
    preset = get_preset("cpu", canvas=48, steps=6, crops=2, crop_min=0.6, crop_max=0.9, whole_views=0)
    first = render(tiny, objectives, dataclasses.replace(preset, steps=1), seeds).values  # the initial images
    last = render(tiny, objectives, preset, seeds).values
    gain = last - first
    assert torch.all(gain > 0), dict(zip([o.id for o in objectives], gain.tolist(), strict=True))
    assert hooks_left(tiny.module) == 0

