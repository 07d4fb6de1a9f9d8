"""Batched random crops and noise: geometry, layout, gradients, aliasing, per-sample streams."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from atlas.presets import get_preset
from atlas.transforms import (
    RandomCrops,
    add_noise,
    crop_boxes,
    crop_resize,
    nominal_side,
    pool_factor,
    whole_view,
)


def generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def box(cx: float, cy: float, side: float) -> torch.Tensor:
    return torch.tensor([[[cx, cy, side]]])


@pytest.fixture()
def images() -> torch.Tensor:
    return torch.rand((2, 3, 64, 64), generator=torch.Generator().manual_seed(0))


def test_whole_canvas_crop_is_the_image(images):
    out = crop_resize(images[:1], box(0.5, 0.5, 1.0), 64)
    torch.testing.assert_close(out, images[:1], atol=1e-6, rtol=0)


def test_pixel_aligned_crop_is_the_slice(images):
    # a 32 px box whose corner is at pixel (8, 16), read at its own size
    out = crop_resize(images[:1], box((16 + 16) / 64, (8 + 16) / 64, 0.5), 32)
    torch.testing.assert_close(out, images[:1, :, 8:40, 16:48], atol=1e-6, rtol=0)


def test_upsampled_crop_is_bilinear_interpolation(images):
    out = crop_resize(images[:1], box(0.5, 0.5, 0.5), 64)
    expected = F.interpolate(images[:1, :, 16:48, 16:48], size=(64, 64), mode="bilinear", align_corners=False)
    # away from the border, where the slice has no neighbours but the canvas does
    torch.testing.assert_close(out[..., 2:-2, 2:-2], expected[..., 2:-2, 2:-2], atol=1e-5, rtol=0)


def test_batch_layout_is_sample_major(images):
    boxes = crop_boxes(generators(1, 2), get_preset("cpu", crops=3), 0)
    out = crop_resize(images, boxes, 24)
    assert out.shape == (6, 3, 24, 24)
    for k in range(2):
        for j in range(3):
            alone = crop_resize(images[k : k + 1], boxes[k : k + 1, j : j + 1], 24)
            torch.testing.assert_close(out[k * 3 + j], alone[0], atol=1e-6, rtol=0)


def test_crops_are_differentiable_only_where_they_look(images):
    canvas = images[:1].clone().requires_grad_(True)
    crop_resize(canvas, box(0.125, 0.875, 0.25), 32).sum().backward()
    grad = canvas.grad[0, 0]
    assert grad[48:64, 0:16].abs().min() > 0  # the box: x in [0, 16), y in [48, 64)
    outside = grad.clone()
    outside[47:64, 0:17] = 0
    assert outside.abs().max() == 0


def test_boxes_stay_inside_with_the_preset_sides():
    preset = get_preset("cpu", crops=1000, crop_min=0.2, crop_max=0.3)
    boxes = crop_boxes(generators(0), preset, 0)[0]
    centres, sides = boxes[:, :2], boxes[:, 2]
    assert sides.min() >= 0.2 and sides.max() < 0.3
    assert torch.all(centres - sides[:, None] / 2 >= 0) and torch.all(centres + sides[:, None] / 2 <= 1)
    # centres 0.5 + 0.15 N(0,1): clamping only trims the tails
    assert abs(centres.mean().item() - 0.5) < 0.02
    assert 0.12 < centres.std().item() < 0.16


def test_annealed_sides_follow_the_schedule():
    preset = get_preset("xplique", crops=1000, steps=100)
    first = crop_boxes(generators(0), preset, 0)[0, :, 2]
    last = crop_boxes(generators(0), preset, 99)[0, :, 2]
    assert abs(first.mean().item() - 0.5) < 0.01 and abs(first.std().item() - 0.05) < 0.01
    assert last.min() >= preset.crop_min and last.mean() < 0.1
    assert nominal_side(preset, 0) == pytest.approx(0.6) and nominal_side(preset, 99) == pytest.approx(0.15)


def test_each_sample_has_its_own_streams():
    preset = get_preset("cpu", crops=5)
    together = crop_boxes(generators(7, 8), preset, 3)
    torch.testing.assert_close(together[1:], crop_boxes(generators(8), preset, 3))
    crops = torch.zeros((10, 3, 8, 8))
    noisy = add_noise(crops, 0.05, generators(7, 8))
    torch.testing.assert_close(noisy[5:], add_noise(crops[5:], 0.05, generators(8)))


def test_noise_is_gaussian_plus_uniform():
    crops = torch.zeros((4, 3, 64, 64))
    noise = add_noise(crops, 0.1, generators(0, 1))
    assert abs(noise.mean().item()) < 2e-3
    assert noise.std().item() == pytest.approx(0.1 * math.sqrt(1 + 1 / 12), rel=0.02)
    assert add_noise(crops, 0.0, generators(0, 1)) is crops


def test_pool_factor_keeps_the_scale_under_two():
    assert pool_factor(1280, 224, 0.25) == 1  # horama: 320 px crops read at 224
    assert pool_factor(512, 224, 0.6) == 1
    assert pool_factor(2048, 224, 1.0) == 5
    for canvas, side in [(2048, 1.0), (1000, 0.9), (3000, 0.3)]:
        f = pool_factor(canvas, 224, side)
        assert side * canvas / (f * 224) <= 2 < side * canvas / ((f - 1) * 224) or f == 1


def test_prefilter_stops_aliasing():
    """Reading a 4x smaller view of white noise: the prefiltered crop is the area average, the bare one aliases."""
    noise = torch.rand((1, 3, 256, 256), generator=torch.Generator().manual_seed(0))
    whole = box(0.5, 0.5, 1.0)
    area = F.interpolate(noise, size=(64, 64), mode="area")  # 4x4 box filter: no energy folds back
    pooled = crop_resize(noise, whole, 64, pool=pool_factor(256, 64, 1.0))
    bare = crop_resize(noise, whole, 64, pool=1)
    torch.testing.assert_close(pooled, area, atol=1e-6, rtol=0)
    assert bare.std() > 1.8 * area.std()  # 2x2 of every 4x4 pixels: high frequencies alias in


def test_random_crops_make_a_model_batch(images):
    preset = get_preset("cpu", crops=3, noise=0.05, whole_views=0)
    augment = RandomCrops(preset, 40, generators(0, 1), generators(2, 3))
    canvas = images.clone().requires_grad_(True)
    out = augment(canvas, 0)
    assert out.shape == (6, 3, 40, 40)
    out.sum().backward()
    assert canvas.grad.abs().sum() > 0


def test_boxes_drawn_up_front_are_the_per_step_draws(images):
    """RandomCrops draws every step's boxes at its first call (one host-to-device copy); the
    crops of each step must be those of drawing step by step from the same generators."""
    preset = get_preset("xplique", crops=3, noise=0.0, steps=4)  # annealed: the boxes depend on the step
    augment = RandomCrops(preset, 40, generators(0, 1), generators(2, 3))
    sequential = generators(0, 1)
    for step in range(preset.steps):
        boxes = crop_boxes(sequential, preset, step)
        pool = pool_factor(images.shape[-1], 40, nominal_side(preset, step))
        torch.testing.assert_close(augment(images, step), crop_resize(images, boxes, 40, pool), rtol=0, atol=0)


def test_whole_views_follow_each_samples_random_crops(images):
    """Sample k's rows are its random crops, drawn as without whole views, then its whole views:
    the canvas shrunk with an area prefilter, a view of everything."""
    mixed = RandomCrops(get_preset("cpu", crops=3, whole_views=1, noise=0.0), 24, generators(0, 1), generators(2, 3))
    plain = RandomCrops(get_preset("cpu", crops=3, whole_views=0, noise=0.0), 24, generators(0, 1), generators(2, 3))
    out, crops = mixed(images, 0), plain(images, 0)
    assert out.shape == (8, 3, 24, 24)
    for k in range(2):
        torch.testing.assert_close(out[4 * k : 4 * k + 3], crops[3 * k : 3 * k + 3], rtol=0, atol=0)
        torch.testing.assert_close(out[4 * k + 3], whole_view(images, 24)[k], rtol=0, atol=0)
    # the prefilter: a whole view of white noise is smooth where a bare resampling aliases
    noise = torch.rand((1, 3, 256, 256), generator=torch.Generator().manual_seed(0))
    assert whole_view(noise, 64).std() < 1.2 * F.interpolate(noise, size=(64, 64), mode="area").std()

