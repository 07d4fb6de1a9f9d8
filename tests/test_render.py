"""The render loop: batched equals separate, determinism, odd canvases, failures, options; and presets."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from atlas.errors import AtlasError
from atlas.models import LoadedModel, load_model
from atlas.objectives import channel, class_logit, direction, neuron
from atlas.presets import PRESETS, Preset, get_preset
from atlas.render import render
from atlas.settings import RenderSettings
from atlas.spectrum import default_spectrum_path, load_spectrum

TINY = get_preset("cpu", canvas=40, steps=5, crops=2, crop_min=0.5, crop_max=0.9)


@pytest.fixture(scope="module")
def resnet() -> LoadedModel:
    # CNNs take any input size; 48 px crops keep the loop fast
    return dataclasses.replace(load_model("test_resnet", random_weights=True), input_size=48)


def hooks_left(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in module.modules())


def test_batch_equals_separate_runs(resnet):
    objectives = [class_logit(3), channel("layer2", 5), neuron("layer3", 7), channel("layer1", 2) - class_logit(1)]
    seeds = [11, 12, 13, 14]
    batch = render(resnet, objectives, TINY, seeds)
    assert batch.images.shape == batch.attributions.shape == (4, 3, 40, 40)
    assert batch.images.dtype == torch.float32 and batch.images.device.type == "cpu"
    assert not batch.images.requires_grad and batch.finite.all() and batch.seconds > 0
    for k, (objective, seed) in enumerate(zip(objectives, seeds, strict=True)):
        alone = render(resnet, [objective], TINY, [seed])
        torch.testing.assert_close(batch.images[k], alone.images[0], atol=1e-4, rtol=0)
        torch.testing.assert_close(batch.attributions[k], alone.attributions[0], atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(batch.values[k], alone.values[0], atol=1e-4, rtol=1e-4)
    assert hooks_left(resnet.module) == 0


def test_same_seed_same_image(resnet):
    first = render(resnet, [channel("layer2", 1)] * 2, TINY, [5, 6])
    again = render(resnet, [channel("layer2", 1)] * 2, TINY, [5, 6])
    assert torch.equal(first.images, again.images) and torch.equal(first.attributions, again.attributions)
    assert (first.images[0] - first.images[1]).abs().mean() > 0.01  # another seed, another image


def test_images_and_attributions_are_what_they_claim(resnet):
    result = render(resnet, [class_logit(0)], get_preset("cpu", canvas=41, steps=3, crops=2), [0])  # odd canvas
    assert result.images.shape == (1, 3, 41, 41)
    assert torch.all((result.images > 0) & (result.images < 1))
    alpha = result.attributions[0]
    assert torch.all(alpha >= 0) and alpha.sum() > 0
    # more steps, more gradient: the attribution is a raw sum over the steps
    longer = render(resnet, [class_logit(0)], get_preset("cpu", canvas=41, steps=6, crops=2), [0])
    assert longer.attributions.sum() > 1.5 * result.attributions.sum()


def test_progress_is_reported_every_step(resnet):
    calls = []
    render(resnet, [class_logit(0)], TINY, [0], progress=lambda step, total: calls.append((step, total)))
    assert calls == [(s, TINY.steps) for s in range(1, TINY.steps + 1)]


def test_fourier_baseline_runs_through_the_same_loop(resnet):
    first = render(resnet, [channel("layer2", 5)], RenderSettings.make(TINY, steps=1, param="fourier"), [0])
    last = render(resnet, [channel("layer2", 5)], RenderSettings.make(TINY, steps=8, param="fourier"), [0])
    assert last.images.shape == (1, 3, 40, 40) and last.values[0] > first.values[0]
    maco = render(resnet, [channel("layer2", 5)], dataclasses.replace(TINY, steps=1), [0])
    assert not torch.allclose(maco.images, first.images)


def test_spectrum_sources_agree(resnet, tmp_path):
    array = load_spectrum()
    path = tmp_path / "copy.npy"
    np.save(path, array)
    short = dataclasses.replace(TINY, steps=2)
    results = [render(resnet, [class_logit(1)], RenderSettings.make(short, spectrum=s), [3]).images
               for s in (None, default_spectrum_path(), path, array, torch.from_numpy(array))]
    for other in results[1:]:
        assert torch.equal(results[0], other)
    flat = render(resnet, [class_logit(1)], RenderSettings.make(short, spectrum=np.ones((3, 64, 33), np.float32)),
                  [3]).images
    assert not torch.allclose(flat, results[0], atol=1e-2)


def test_options_run_on_cpu():
    loaded = dataclasses.replace(load_model("test_efficientnet", random_weights=True), input_size=48)
    plain = render(loaded, [channel("blocks.2", 3)], TINY, [0])
    last = render(loaded, [channel("blocks.2", 3)], RenderSettings.make(TINY, channels_last=True), [0])
    torch.testing.assert_close(last.images, plain.images, atol=1e-3, rtol=0)
    bf16 = render(loaded, [channel("blocks.2", 3)], RenderSettings.make(TINY, bf16=True), [0])
    assert torch.isfinite(bf16.images).all() and bf16.finite.all()
    assert (bf16.images - plain.images).abs().mean() < 0.05


class _Log(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)


def _toy_model() -> LoadedModel:
    """A conv whose channel 0 is always negative (its log is NaN) and channel 1 positive."""
    conv = torch.nn.Conv2d(3, 2, 3)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[1] = 0.01 * torch.randn((3, 3, 3), generator=torch.Generator().manual_seed(0))
        conv.bias.copy_(torch.tensor([-1.0, 1.0]))
    module = torch.nn.Sequential()
    module.add_module("conv", conv)
    module.add_module("log", _Log())
    module.eval().requires_grad_(False)
    return LoadedModel("toy", module, (0.5,) * 3, (0.5,) * 3, 16, 0, "toy", "toy")


def test_a_failing_sample_does_not_spoil_the_batch():
    toy = _toy_model()
    preset = get_preset("cpu", canvas=32, steps=4, crops=2)
    result = render(toy, [channel("log", 0), channel("log", 1)], preset, [0, 1])
    assert result.finite.tolist() == [False, True]
    assert torch.isfinite(result.images).all() and torch.isfinite(result.attributions).all()
    assert result.attributions[0].abs().sum() == 0
    alone = render(toy, [channel("log", 1)], preset, [1])
    torch.testing.assert_close(result.images[1], alone.images[0], atol=1e-5, rtol=0)
    assert torch.isnan(result.values[0]) and torch.isfinite(result.values[1])


def test_bad_calls_are_explained(resnet):
    with pytest.raises(AtlasError, match="one seed per objective"):
        render(resnet, [class_logit(0), class_logit(1)], TINY, [0])
    with pytest.raises(AtlasError, match="at least one objective"):
        render(resnet, [], TINY, [])
    with pytest.raises(AtlasError, match="unknown parameterisation"):
        render(resnet, [class_logit(0)], RenderSettings.make(TINY, param="pixels"), [0])
    with pytest.raises(AtlasError, match="unknown device"):
        render(resnet, [class_logit(0)], TINY, [0], device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(AtlasError, match="no CUDA"):
            render(resnet, [class_logit(0)], TINY, [0], device="cuda")
    with pytest.raises(AtlasError, match="no layer"):
        render(resnet, [channel("layer9", 0)], TINY, [0])
    with pytest.raises(AtlasError, match="needs 48 entries"):
        render(resnet, [direction("layer2", [1.0, 2.0])], TINY, [0])
    assert hooks_left(resnet.module) == 0


# --- presets -----------------------------------------------------------------------------------
def test_presets_hold_the_reference_defaults():
    horama, xplique = PRESETS["horama"], PRESETS["xplique"]
    assert (horama.canvas, horama.steps, horama.crops, horama.noise, horama.lr) == (1280, 1000, 6, 0.05, 1.0)
    assert (horama.crop_min, horama.crop_max, horama.anneal_schedule) == (0.20, 0.25, None)
    assert (xplique.canvas, xplique.steps, xplique.crops, xplique.noise) == (512, 256, 32, 0.08)
    assert xplique.anneal_schedule == (0.5, 0.05)
    assert {"atlas", "cpu"} <= set(PRESETS) and PRESETS["cpu"].canvas <= 384

    def model_work(p):  # network passes per image, the bulk of a step
        return p.steps * p.crops * p.input_scale**2

    assert model_work(PRESETS["cpu"]) < model_work(PRESETS["atlas"]) / 10


def test_get_preset_overrides_and_round_trips():
    preset = get_preset("xplique", steps=10, crop_anneal=(0.6, 0.1))
    assert preset.steps == 10 and preset.anneal_schedule == (0.6, 0.1)
    data = json.loads(json.dumps(preset.to_dict()))
    assert Preset(**data) == preset and data["crop_anneal"] == [0.6, 0.1]


@pytest.mark.parametrize(("name", "overrides", "message"), [
    ("fast", {}, "unknown preset 'fast'"),
    ("atlas", {"step": 3}, "unknown preset setting 'step'"),
    ("atlas", {"steps": 0}, "steps must be an integer from 1 to 100000"),
    ("atlas", {"crop_min": 0.7, "crop_max": 0.5}, "crop_min <= crop_max"),
    ("atlas", {"crop_anneal": (0.5,)}, "crop_anneal"),
    ("atlas", {"init": "uniform"}, "init must be one of normal"),
    ("atlas", {"noise": -1.0}, "noise must be >= 0"),
])
def test_bad_presets_are_explained(name, overrides, message):
    with pytest.raises(AtlasError, match=message):
        get_preset(name, **overrides)


def test_presets_do_not_import_torch():
    code = "import sys, atlas.presets; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
