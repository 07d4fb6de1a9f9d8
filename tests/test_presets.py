"""Preset settings added for the CPU search: phase offsets, crop input size, learning-rate decay."""

from __future__ import annotations

import pytest
import torch

from atlas.device import native_bf16
from atlas.errors import AtlasError
from atlas.models import LoadedModel
from atlas.objectives import channel, class_logit
from atlas.presets import PRESETS, Preset, get_preset
from atlas.render import render


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_renders_and_reads_back_from_its_dict(name, tiny_resnet):
    preset = PRESETS[name]
    assert Preset(**preset.to_dict()) == preset  # what records and keys store is the whole preset
    small = get_preset(name, canvas=32, steps=1, crops=1)
    result = render(tiny_resnet, [channel("layer2", 0)], small, [0])
    assert result.images.shape == (1, 3, 32, 32) and bool(result.finite.all())


def test_overrides_apply_and_unknown_or_out_of_range_fields_are_refused():
    changed = get_preset("atlas", steps=7, crop_anneal=[0.5, 0.1])
    assert (changed.steps, changed.anneal_schedule) == (7, (0.5, 0.1))
    assert get_preset("atlas").steps != 7  # the table itself is untouched
    with pytest.raises(AtlasError, match="unknown preset setting 'stepz'"):
        get_preset("atlas", stepz=3)
    with pytest.raises(AtlasError, match="canvas must be an integer from 16 to 4096 pixels, not 100000"):
        get_preset("atlas", canvas=100000)
    with pytest.raises(AtlasError, match="unknown preset 'fast': choose one of"):
        get_preset("fast")


def test_the_cpu_presets_are_the_settings_their_searches_measured():
    from atlas.bench import CPU_BEFORE, SEARCH_ROUNDS

    # under their search labels (docs/benchmarks.md): what was measured is what ships
    for name, round_, label in (("cpu", 3, "N, 4 crops + 1 whole view (124) = `cpu`"),
                                ("cpu-fine", 2, "N, 8 crops, 96 steps (398)"),
                                ("cpu-best", 4, "N, 7 crops + 1 whole view, 128 steps (531) = `cpu-best`"),
                                ("cpu", 6, "N, 4 crops + 1 whole view (124) = `cpu`"),
                                ("cpu-best", 6, "N, 7 crops + 1 whole view, 128 steps (531) = `cpu-best`")):
        searched = dict(SEARCH_ROUNDS[round_])[label]
        assert get_preset("cpu", **(CPU_BEFORE | searched)).to_dict() | {"name": name} \
            == PRESETS[name].to_dict()


def test_the_first_cpu_preset_names_every_field_so_that_it_stays_what_it_was():
    """v1, the baseline of every search, is the `cpu` preset with all its fields replaced: a field that
    today's `cpu` preset sets (a whole view a step) must not leak into it."""
    from dataclasses import fields

    from atlas.bench import CPU_BEFORE

    assert set(CPU_BEFORE) == {f.name for f in fields(PRESETS["cpu"])} - {"name"}
    v1 = get_preset("cpu", **CPU_BEFORE)
    assert (v1.whole_views, v1.phase_offset, v1.canvas, v1.steps, v1.views) == (0, False, 256, 64, 4)


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
    ({"whole_views": 2000}, "whole_views must be an integer from 0 to 1024, not 2000"),
    ({"whole_views": -1}, "whole_views"),
    ({"whole_views": 0.5}, "whole_views"),
    ({"noise": float("nan")}, "noise must be a finite number, not nan"),
    ({"lr": float("inf")}, "lr must be a finite number, not inf"),
    ({"crop_max": True}, "crop_max must be a finite number, not True"),
    ({"lr": "1"}, "lr must be a finite number, not '1'"),
    ({"crop_anneal": (0.5, float("nan"))}, "crop_anneal must be true/false or two fractions"),
    ({"crop_anneal": ("a", 0.1)}, "crop_anneal must be true/false or two fractions"),
])
def test_bad_new_settings_are_explained(overrides, message):
    with pytest.raises(AtlasError, match=message):
        get_preset("cpu", **overrides)


def test_no_whole_views_leave_the_presets_dict_and_so_its_cache_key_unchanged():
    plain = get_preset("cpu", whole_views=0).to_dict()
    assert "whole_views" not in plain
    assert Preset(**plain) == get_preset("cpu", whole_views=0)
    changed = get_preset("cpu", whole_views=1)
    assert changed.to_dict() == plain | {"whole_views": 1}
    assert Preset(**changed.to_dict()) == changed


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


def test_whole_views_change_the_picture_and_stay_reproducible(tiny_resnet):
    objective = [class_logit(3)]
    plain = render(tiny_resnet, objective, get_preset("cpu", canvas=32, steps=3, crops=3, whole_views=0), [0])
    preset = get_preset("cpu", canvas=32, steps=3, crops=3, whole_views=1)
    first, again = (render(tiny_resnet, objective, preset, [0]) for _ in range(2))
    assert bool(first.finite.all())
    torch.testing.assert_close(first.images, again.images, rtol=0, atol=0)
    assert not torch.equal(first.images, plain.images)
