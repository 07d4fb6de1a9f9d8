"""Preset settings added for the CPU search: phase offsets, crop input size, learning-rate decay."""

from __future__ import annotations

import pytest
import torch

from atlas.device import native_bf16
from atlas.errors import AtlasError
from atlas.models import LoadedModel
from atlas.objectives import channel
from atlas.presets import PRESETS, get_preset
from atlas.render import render


def test_the_reference_presets_keep_the_reference_phase():
    assert PRESETS["horama"].phase_offset is False and PRESETS["xplique"].phase_offset is False
    assert PRESETS["cpu"].phase_offset is True and PRESETS["atlas"].phase_offset is True


def test_cpu_fine_is_the_cpu_preset_with_more_crops_and_steps_and_nothing_else():
    from atlas.bench import CPU_BEFORE, SEARCH_ROUNDS

    fine, cpu = PRESETS["cpu-fine"].to_dict(), PRESETS["cpu"].to_dict()
    assert {k for k in fine if fine[k] != cpu[k]} == {"name", "crops", "steps"}
    assert (fine["crops"], fine["steps"]) == (2 * cpu["crops"], 2 * cpu["steps"])
    # the settings that search round 2 measured (docs/benchmarks.md), under their search label
    searched = dict(SEARCH_ROUNDS[2])["N, 8 crops, 96 steps (398)"]
    assert get_preset("cpu", **(CPU_BEFORE | searched)).to_dict() | {"name": "cpu-fine"} == fine


def test_lr_decays_by_a_cosine_to_its_end_fraction():
    constant = get_preset("cpu", steps=10, lr=2.0)
    assert [constant.lr_at(s) for s in range(10)] == [2.0] * 10
    decayed = get_preset("cpu", steps=10, lr=2.0, lr_end=0.1)
    lrs = [decayed.lr_at(s) for s in range(10)]
    assert lrs[0] == pytest.approx(2.0) and lrs[-1] == pytest.approx(0.2)
    assert all(a > b for a, b in zip(lrs[:-1], lrs[1:], strict=True))
    assert lrs[5] == pytest.approx(0.2 + 1.8 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 5 / 9)).item()))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"input_scale": 0.0}, "input_scale"),
    ({"input_scale": 1.2}, "input_scale"),
    ({"lr_end": 0.0}, "lr_end"),
    ({"lr_end": 1.5}, "lr_end"),
    ({"phase_offset": "yes"}, "phase_offset"),
])
def test_bad_new_settings_are_explained(overrides, message):
    with pytest.raises(AtlasError, match=message):
        get_preset("cpu", **overrides)


class _Sizes(torch.nn.Module):
    """Records the side of every batch it reads; channel 0 is the mean of the input."""

    def __init__(self) -> None:
        super().__init__()
        self.sides: list[int] = []
        self.pool = torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sides.append(x.shape[-1])
        return self.pool(x)


def test_crops_reach_the_model_at_the_presets_input_scale():
    module = _Sizes()
    loaded = LoadedModel("sizes", module, (0.5,) * 3, (0.5,) * 3, 32, 0, "none", "none")
    render(loaded, [channel("pool", 0)], get_preset("cpu", canvas=48, steps=2, crops=2, input_scale=1.0), [0])
    render(loaded, [channel("pool", 0)], get_preset("cpu", canvas=48, steps=2, crops=2, input_scale=0.6), [0])
    assert module.sides == [32, 32, 16, 16]  # 0.6 x 32 = 19.2, to a multiple of 8
    lite = get_preset("cpu", input_scale=0.72)
    assert (lite.input_side(224), lite.input_side(240), lite.input_side(20)) == (160, 176, 16)


def test_bf16_counts_as_native_only_with_bf16_instructions():
    assert native_bf16("cpu", "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert native_bf16("cpu", "flags\t\t: fpu avx2 amx_tile amx_bf16\n")
    assert not native_bf16("cpu", "flags\t\t: fpu sse avx avx2 fma\n")
    assert not native_bf16("cpu", "")
