"""`atlas bench`'s card questions, run small on the CPU: the whole `atlas render` against its engine,
the reference phase's suspects, and a step under the profiler with its arithmetic."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import replace

import pytest
import torch

import atlas.param
from atlas import render as engine
from atlas.bench import command as command_bench
from atlas.bench import kernels, phase
from atlas.commands import bench as command
from atlas.config import Config, PresetChoice, Selection
from atlas.presets import get_preset

TINY = (("canvas", 32), ("crops", 1), ("steps", 2))


def tiny_config(**changes) -> Config:
    full = Selection(classes="all", preset=PresetChoice("cpu", 1, TINY), judges=("test_efficientnet",))
    cpu = Selection(classes="1", preset=PresetChoice("cpu-fine", 1, TINY))
    return replace(Config(model="test_resnet", random_weights=True, full=full, cpu=cpu), **changes)


def test_the_command_bench_times_the_whole_render_and_then_the_engine_on_the_same_jobs(monkeypatch):
    calls = []
    real = engine.render

    def spy(loaded, objectives, settings, seeds, **kw):
        calls.append(([o.id for o in objectives], list(seeds), kw.get("progress") is not None,
                      kw.get("keep_on_device", False), settings.preset.steps))
        return real(loaded, objectives, settings, seeds, **kw)

    monkeypatch.setattr(engine, "render", spy)
    measured = command_bench.bench_command([1, 2, 3], "cpu", config=tiny_config())
    in_command = [c for c in calls if c[2]]  # the run's batches report their steps
    alone = [c for c in calls if not c[2] and c[3]]  # the engine alone keeps its pictures on the device
    assert len(in_command) == len(alone) == 2 and sum(len(c[0]) for c in alone) == 3
    assert Counter((i, s) for c in in_command for i, s in zip(c[0], c[1], strict=True)) == \
        Counter((i, s) for c in alone for i, s in zip(c[0], c[1], strict=True))
    assert [len(c[0]) for c in alone] == [len(c[0]) for c in in_command] == [2, 1]
    assert {c[4] for c in in_command + alone} == {2}
    assert (measured.images, measured.batch_size, measured.preset, measured.full_images) == (3, 2, "cpu", 1000)
    assert 0 < measured.startup_seconds and 0 < measured.loop_seconds
    assert measured.startup_seconds + measured.loop_seconds <= measured.whole_seconds
    assert measured.engine_seconds > 0 and measured.render_seconds > 0
    assert measured.judging_seconds > 0  # the generator and the judge scored every picture in the loop
    assert any(line.startswith("- loop / engine: ") for line in measured.lines())
    assert json.loads(json.dumps(measured.to_json()))["loop_over_engine"] == pytest.approx(measured.loop_over_engine)


def test_the_command_bench_renders_with_the_subset_it_is_given():
    measured = command_bench.bench_command([5], "cpu", config=tiny_config(), subset="cpu", steps=3)
    assert (measured.preset, measured.images, measured.full_images) == ("cpu-fine", 1, 1)


def test_the_projection_pays_the_start_up_once():
    measured = command_bench.CommandBench("m", "atlas", "cuda", images=100, batch_size=32, whole_seconds=111.0,
                                          startup_seconds=10.0, loop_seconds=100.0, engine_seconds=90.0,
                                          render_seconds=85.0, judging_seconds=10.0, full_images=1000)
    assert measured.full_hours() == pytest.approx(((10 + 1000) / 3600, 900 / 3600))
    assert measured.loop_over_engine == pytest.approx(100 / 90)
    assert "outside the goal of 1.10" in measured.lines()[3]
    assert "within the goal" in replace(measured, loop_seconds=95.0).lines()[3]


def test_the_phase_rows_render_the_same_seeds_alone_and_together(tiny_resnet):
    rows = phase.phase_rows(tiny_resnet, [1, 2, 3], "cpu", steps=2)
    assert [r.config for r in rows] == ["ours · v1 (reference phase) · 1 a call", "ours · v1 · 3 a call",
                                        "ours · v1 · 3 a call · picture made on the CPU",
                                        "horama 0.3.0 · v1's settings", "ours · v1 + phase offsets · 3 a call"]
    assert all(r.tf32 is None and len(r.high_frequency) == len(r.corner_ratio) == 3 for r in rows)
    # one picture a call and three a call are the same pictures (a batch equals separate runs)
    assert rows[0].high_frequency == pytest.approx(rows[1].high_frequency, abs=2e-4)
    assert rows[2].high_frequency == rows[1].high_frequency  # on a CPU the host path is the same arithmetic
    assert rows[1].high_frequency != pytest.approx(rows[4].high_frequency, abs=1e-9)  # the offsets change them
    v1 = phase.reference_preset(2)
    assert (v1.phase_offset, v1.whole_views, v1.canvas, v1.steps) == (False, 0, 256, 2)


def test_the_picture_is_made_on_the_host_inside_the_block_only():
    made = atlas.param.maco_image
    phase_, magnitude = torch.randn(2, 3, 8, 5, requires_grad=True), torch.rand(3, 8, 5)
    with phase.picture_on_host():
        assert atlas.param.maco_image is not made
        picture = atlas.param.MacoParam(magnitude, [torch.Generator().manual_seed(1)], torch.device("cpu"))()
        atlas.param.maco_image(phase_, magnitude).sum().backward()
    assert atlas.param.maco_image is made
    assert picture.shape == (1, 3, 8, 8) and phase_.grad is not None and phase_.grad.abs().sum() > 0


def test_a_phase_row_counts_its_noisy_pictures_and_tf32_is_restored():
    row = phase.PhaseRow("x", False, 1.0, (0.001, 0.4, 0.06), (1.0, 1.1, 0.9))
    assert row.noisy == 2 and row.cells()[1:3] == ["off", "2 of 3"]
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with phase.tf32(not saved[0]):
        assert torch.backends.cudnn.allow_tf32 is (not saved[0])
        assert torch.backends.cuda.matmul.allow_tf32 is (not saved[0])
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == saved


def test_a_profiled_step_counts_operators_and_host_time(tiny_resnet):
    preset = get_preset("atlas", canvas=64, crops=2)
    rows = kernels.one_picture_profiles(tiny_resnet, preset, 2, "cpu")
    assert [r.implementation for r in rows] == ["atlas (ours)", "horama 0.3.0 maco"]
    for row in rows:
        assert row.wall_ms > 0 and row.operators > 10 and row.launches == 0 and row.device_busy_ms == 0
        assert any("convolution" in name for name, _ in row.host_top) and row.device_top == ()


def test_the_arithmetic_of_a_step_grows_with_the_batch_and_knows_the_cards(tiny_resnet):
    preset = get_preset("atlas", canvas=64, crops=2)
    one, two = (kernels.step_flops(tiny_resnet, preset, batch, "cpu") for batch in (1, 2))
    assert one > 0 and two == pytest.approx(2 * one, rel=1e-6)
    assert kernels.card_peak("NVIDIA H100 80GB HBM3")["bf16"] == 989.4
    assert kernels.card_peak("NVIDIA H100 PCIe")["tf32"] == 378.0
    assert kernels.card_peak("AMD EPYC") is None
    measured = kernels.Arithmetic(32, 100.0, 10.0, 98.94, kernels.card_peak("NVIDIA H200"))
    assert measured.shares()["bf16"] == pytest.approx(0.1)


def test_the_bench_command_prints_the_card_tables(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("atlas.models.load_model", lambda name, **kw: name)
    fake = command_bench.CommandBench("efficientnet_lite0", "cpu-best", "cpu", 4, 2, 50.0, 10.0, 40.0, 30.0, 25.0,
                                      12.0, 24)
    seen = {}
    monkeypatch.setattr(command_bench, "bench_command",
                        lambda classes, device, **kw: seen.update(classes=classes, **kw) or fake)
    monkeypatch.setattr(phase, "phase_rows", lambda *a, **kw: [phase.PhaseRow("ours", None, 2.0, (0.1,), (1.0,))])
    profile = kernels.StepProfile("atlas (ours)", 1, 2, 30.0, 0.0, 0.0, 1.0, 0.0, 100.0, (("aten::conv", 5.0),), ())
    monkeypatch.setattr(kernels, "one_picture_profiles", lambda *a, **kw: [profile])
    monkeypatch.setattr(kernels, "arithmetic", lambda loaded, preset, batch, steps, device:
                        kernels.Arithmetic(batch, 4.0 * batch, 100.0 * batch, 0.04, None))
    parsed = argparse.ArgumentParser()
    command.add_arguments(parsed)
    assert command.run(parsed.parse_args(["--only", "command,phase,kernels", "--out", str(tmp_path)])) == 0
    out = capsys.readouterr().out
    assert len(seen["classes"]) == 4 and seen["subset"] == "cpu" and seen["steps"] is None
    assert "- loop / engine: 1.333 (outside the goal of 1.10)" in out
    assert "| ours | n/a | 1 of 1 | 100.0‰ | 100.0‰ | 1.00 | 2.0 |" in out
    assert "| atlas (ours) | 30.0 | 0.0 | 0% | 0 | 1 | 0 | 100 |" in out and "aten::conv 5.00 ms" in out
    assert "| 2 | 8.0 | 200.0 | 0.04 |" in out and "no peak known" in out
    results = json.loads((tmp_path / "results-cpu.json").read_text())
    assert list(results)[-3:] == ["command", "phase", "kernels"]
    assert results["command"]["full_hours_command"] == pytest.approx((10 + 6 * 40) / 3600)


def test_without_horama_the_card_parts_keep_our_rows(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "horama" else real(name, *a))
    monkeypatch.setattr("atlas.models.load_model", lambda name, **kw: name)
    asked = []
    monkeypatch.setattr(phase, "phase_rows", lambda *a, references=True, **kw: asked.append(references) or [])
    monkeypatch.setattr(kernels, "one_picture_profiles",
                        lambda *a, references=True, **kw: asked.append(references) or [])
    monkeypatch.setattr(kernels, "arithmetic", lambda loaded, preset, batch, steps, device:
                        kernels.Arithmetic(batch, 1.0, 1.0, 1.0, None))
    parsed = argparse.ArgumentParser()
    command.add_arguments(parsed)
    assert command.run(parsed.parse_args(["--only", "phase,kernels", "--out", str(tmp_path)])) == 0
    assert asked == [False, False]
    assert capsys.readouterr().err.count("horama's rows skipped") == 2
