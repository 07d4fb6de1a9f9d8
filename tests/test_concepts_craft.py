"""CRAFT mechanics on tiny random models: the feature layer, patches, exact importance, alignment, objectives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from atlas.concepts import craft
from atlas.concepts.formats import Concept
from atlas.concepts.nmf import nmf
from atlas.concepts.patches import cut_patches, patch_grid
from atlas.concepts.store import encode_vector
from atlas.models import from_module, load_model
from atlas.objectives import capture
from tests.concept_folders import one_thread  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_efficientnet():
    return load_model("test_efficientnet", random_weights=True)


def images(loaded, count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(count, loaded.input_size, loaded.input_size, 3, generator=generator) * 255).to(torch.uint8)


def test_feature_layer_is_the_map_the_head_pools(tiny_efficientnet, tiny_resnet):
    assert craft.feature_layer(tiny_efficientnet) == craft.FeatureLayer("bn2", exact=True)
    assert craft.feature_layer(tiny_resnet) == craft.FeatureLayer("layer4", exact=True)


class TorchvisionStyle(torch.nn.Module):
    """A ResNet as torchvision writes one: its own forward, no forward_features, pooling done in forward."""

    def __init__(self, resnet: torch.nn.Module) -> None:
        super().__init__()
        self.m = resnet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.m
        x = m.maxpool(m.act1(m.bn1(m.conv1(x))))
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
        return m.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_without_timms_split_the_feature_layer_is_the_map_the_last_linear_averages(tiny_resnet):
    plain = from_module(TorchvisionStyle(tiny_resnet.module), name="tv", input_size=64)
    assert craft.feature_layer(plain) == craft.FeatureLayer("m.layer4", exact=True)


def test_patch_grid_uses_a_stride_of_0_8_of_the_side():
    grid = patch_grid(224, 64)
    assert sorted({left for left, _ in grid}) == [0, 51, 102, 153]
    assert len(grid) == 16 and grid[1] == (51, 0)
    with pytest.raises(ValueError):
        patch_grid(32, 64)


def test_cut_patches_resizes_each_square_to_the_input():
    x = torch.rand(2, 3, 40, 40)
    grid = patch_grid(40, 16)
    out = cut_patches(x, grid, 16, 40)
    assert out.shape == (2 * len(grid), 3, 40, 40)
    left, top = grid[3]
    expected = F.interpolate(x[1:2, :, top : top + 16, left : left + 16], size=(40, 40), mode="bilinear",
                             align_corners=False)
    assert torch.allclose(out[len(grid) + 3], expected[0])


def test_patch_activations_are_mean_pooled_layer_outputs_of_each_patch(tiny_efficientnet):
    loaded = tiny_efficientnet
    squares = images(loaded, 2)
    patch = 48
    acts = craft.patch_activations(loaded, "bn2", squares, patch, batch_size=5)
    grid = patch_grid(loaded.input_size, patch)
    assert acts.shape == (2 * len(grid), 256)
    x = craft.to_model_input(loaded, squares[1:2])
    left, top = grid[-1]
    one = F.interpolate(x[:, :, top : top + patch, left : left + patch], size=(loaded.input_size,) * 2,
                        mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = loaded.module.forward_features(one).mean(dim=(2, 3))[0]
    assert torch.allclose(acts[-1], expected, atol=1e-5)


def test_importance_at_the_feature_map_is_the_exact_share_of_the_logit(tiny_efficientnet):
    loaded = tiny_efficientnet
    squares = images(loaded, 3, seed=1)
    acts = craft.patch_activations(loaded, "bn2", squares, 48)
    concepts = nmf(acts.clamp_min(0), 3).concepts
    target = 7
    parts = craft.importance(loaded, "bn2", squares, target, concepts, batch_size=2)
    with torch.no_grad():
        logits = loaded.module(craft.to_model_input(loaded, squares))[:, target]
    head = loaded.module.get_classifier()
    assert torch.allclose(parts.logits, logits, atol=1e-5)  # replacing the layer's output changed nothing
    total = parts.shares.sum(dim=1) + parts.residual + float(head.bias[target])
    scale = float(logits.abs().max())
    assert torch.allclose(total, logits, atol=1e-4 * max(scale, 1e-3))
    assert torch.allclose(parts.rest, head.bias[target].expand(3), atol=1e-4 * max(scale, 1e-3))
    # the closed form of the share: mean coefficient times the concept's alignment with the class weights
    from atlas.concepts.nmf import nmf_transform

    with torch.no_grad():
        maps = loaded.module.forward_features(craft.to_model_input(loaded, squares))
    flat = maps.permute(0, 2, 3, 1).flatten(1, 2)
    u = nmf_transform(flat.clamp_min(0), concepts)
    closed = u.mean(dim=1) * (concepts @ head.weight[target])
    assert torch.allclose(parts.shares, closed, atol=1e-5)


def test_gradient_x_input_elsewhere_is_the_first_order_effect_of_scaling_a_concept(tiny_efficientnet):
    """At an inner layer, concept k's share is d logit / d eps when its coefficients are scaled by (1 + eps)."""
    loaded = tiny_efficientnet
    layer = "blocks.3"
    squares = images(loaded, 2, seed=2)
    acts = craft.patch_activations(loaded, layer, squares, 48)
    concepts = nmf(acts.clamp_min(0), 2).concepts
    parts = craft.importance(loaded, layer, squares, 3, concepts)
    from atlas.concepts.nmf import nmf_transform

    def logits_with(k: int, eps: float) -> torch.Tensor:
        def scale(_module, _inputs, output):
            b, c, h, w = output.shape
            flat = output.permute(0, 2, 3, 1).reshape(b, h * w, c)
            u = nmf_transform(flat.clamp_min(0), concepts)
            bump = torch.zeros_like(u)
            bump[..., k] = eps * u[..., k]
            return (flat + bump @ concepts).reshape(b, h, w, c).permute(0, 3, 1, 2)

        handle = loaded.module.get_submodule(layer).register_forward_hook(scale)
        try:
            with torch.no_grad():
                return loaded.module(craft.to_model_input(loaded, squares))[:, 3]
        finally:
            handle.remove()

    eps = 1e-2
    for k in range(2):
        slope = (logits_with(k, eps) - logits_with(k, -eps)) / (2 * eps)
        assert torch.allclose(parts.shares[:, k], slope, rtol=0.05, atol=1e-6), (parts.shares[:, k], slope)
    assert torch.allclose(parts.shares.sum(1) + parts.residual + parts.rest, parts.logits, atol=1e-6)


def test_aligned_classes_find_the_classifier_rows_a_concept_points_along():
    classifier = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
    concepts = torch.stack([classifier[4] * 3, classifier[11] + 0.01 * classifier[2]])
    indices, cosines = craft.aligned_classes(concepts, classifier, top=3)
    assert indices[:, 0].tolist() == [4, 11]
    assert cosines[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert (cosines[:, :-1] >= cosines[:, 1:]).all()


def test_a_concept_is_a_direction_objective_keyed_by_its_vector(tiny_efficientnet):
    vector = np.random.default_rng(0).random(256).astype(np.float32)
    stored = Concept(0, encode_vector(vector), 0.0, 0.0, 0, (), ())
    objective = craft.concept_objective("bn2", stored.values)
    assert objective.kind == "direction" and objective.layer == "bn2"
    assert objective.single.digest == stored.digest
    assert objective.id == f"direction:bn2:dot:{stored.digest}"
    x = craft.to_model_input(tiny_efficientnet, images(tiny_efficientnet, 2))
    acts = capture(tiny_efficientnet.module, [objective], x)
    expected = torch.einsum("bchw,c->bhw", acts.layers["bn2"], torch.from_numpy(vector)).mean(dim=(1, 2))
    assert torch.allclose(objective(acts), expected, atol=1e-5)
