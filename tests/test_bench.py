"""`atlas bench`: the measuring functions return plain data, the command prints and writes it.

No test here renders at a real preset: the measurements are replaced by fixed numbers where the
loop around them, or the tables and JSON made of them, is what is tested.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from atlas import bench
from atlas.bench import checkpoints, protocol, throughput
from atlas.commands import bench as command
from atlas.presets import get_preset


def quality_row(config: str, classes=(10, 30), top5: float = 0.5) -> bench.QualityRow:
    rates = {"efficientnet_lite0": (0.25, 0.75), "efficientnet_lite1": (0.1, top5), "efficientnet_lite2": (0.2, 0.4)}
    per_class = {c: {scale: dict(rates) for scale in ("small", "large", "whole")} for c in classes}
    stats = {c: {"corner_ratio": 1.5, "border_energy_share": 0.25, "high_frequency_share": 0.0123} for c in classes}
    return bench.QualityRow(config, len(classes), 12.5, per_class, stats)


def test_our_timed_run_renders_the_asked_batch_with_the_asked_options(tiny_resnet, monkeypatch):
    """The rows of the render-options table: the batch is the one asked for, channels_last gives
    the same images, and bf16 reaches the engine (other images)."""
    preset = get_preset("cpu", canvas=32, steps=2, crops=1)
    images, seconds = bench.run_ours(tiny_resnet, preset, 2, "cpu", classes=[1, 2])
    assert images.shape == (2, 3, 32, 32) and seconds > 0
    last, _ = bench.run_ours(tiny_resnet, preset, 2, "cpu", classes=[1, 2], channels_last=True)
    torch.testing.assert_close(last, images, atol=1e-3, rtol=0)
    seen = []
    real = bench.runs.render
    monkeypatch.setattr(bench.runs, "render", lambda loaded, objectives, settings, seeds, **kw: (
        seen.append(settings), real(loaded, objectives, settings, seeds, **kw))[1])
    bench.run_ours(tiny_resnet, preset, 1, "cpu", autocast_bf16=True, param="fourier")
    assert (seen[0].bf16, seen[0].param, seen[0].preset) == (True, "fourier", preset)


def test_seconds_per_image_scales_a_few_timed_steps_to_the_whole_preset(tiny_resnet, monkeypatch):
    calls = []

    def fake_run(loaded, preset, batch, device, **options):
        calls.append((preset.steps, batch, options))
        return None, 2.0

    monkeypatch.setattr(bench.runs, "run_ours", fake_run)
    wall, _cpu = bench.seconds_per_image(tiny_resnet, get_preset("cpu"), "cpu", batch=2, steps=4,
                                         channels_last=True)
    assert calls == [(1, 2, {"channels_last": True}), (4, 2, {"channels_last": True})]  # a warm-up, then timed
    assert wall == pytest.approx(2.0 * get_preset("cpu").steps / 4 / 2)


def test_quality_configs_per_machine():
    cpu = bench.quality_configs(gpu=False)
    assert [c[0] for c in cpu] == ["before: cpu v1", "after: cpu", "fourier · cpu"]
    assert cpu[0][1:] == ("cpu", bench.CPU_BEFORE, {}, None) and cpu[2][3] == {"param": "fourier"}
    gpu = bench.quality_configs(gpu=True)
    assert [(c[0], c[1], c[4]) for c in gpu] == [("maco · atlas", "atlas", None), ("fourier · atlas", "atlas", None),
                                                 ("maco · xplique", "xplique", 16)]
    for _, preset, overrides, _, _ in cpu + gpu:
        get_preset(preset, **overrides)  # every row names a real preset and real fields


def test_search_configs_are_the_last_round_over_the_old_cpu_preset():
    configs = bench.search_configs()
    assert [c[0] for c in configs] == [label for label, _ in bench.SEARCH_ROUNDS[max(bench.SEARCH_ROUNDS)]]
    assert all(c[1] == "cpu" and c[2] == bench.CPU_BEFORE | o for c, (_, o) in zip(configs, bench.SEARCH, strict=True))


def test_quality_classes_take_the_fixed_list_then_spread_over_the_1000():
    assert bench.quality_classes(3) == (10, 30, 50)
    assert bench.quality_classes(50) == bench.QUALITY_CLASSES
    spread = bench.quality_classes(100)
    assert len(spread) == 100 and spread[:3] == (0, 10, 20)


def test_the_held_out_list_is_seeded_and_disjoint_from_the_tuning_list():
    held = bench.HELDOUT_CLASSES
    assert len(held) == len(set(held)) == 100
    assert not set(held) & set(bench.QUALITY_CLASSES) and all(0 <= c < 1000 for c in held)
    assert min(held[:20]) < 300 < max(held[:20])  # a prefix spans the classes, not only the first (animals)
    assert sorted(held)[:6] == [3, 15, 21, 24, 36, 40]  # the seed's draw: reports stay comparable across sessions
    assert bench.quality_classes(7, held_out=True) == held[:7]


def test_objective_configs_compare_every_class_objective_on_each_machine_preset():
    cpu, gpu = bench.objective_configs(gpu=False), bench.objective_configs(gpu=True)
    assert [(c[1], c[3]["objective"]) for c in cpu] == [("cpu", o) for o in bench.CLASS_OBJECTIVES]
    assert {c[1] for c in gpu} == {"cpu", "atlas"} and len(gpu) == 2 * len(bench.CLASS_OBJECTIVES)
    picked = bench.objective_configs(gpu=True, objectives=("blend", "logit"))
    assert [(c[1], c[3]["objective"]) for c in picked] == [
        ("cpu", "blend"), ("cpu", "logit"), ("atlas", "blend"), ("atlas", "logit")]


def test_objectives_are_chosen_on_the_tuning_list_and_reported_on_the_held_out_list(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("atlas.models.load_model", lambda name, **kw: SimpleNamespace(name=name))
    monkeypatch.setattr(bench, "load_judges", lambda: [])
    seen = []

    def rows(loaded, judges, configs, classes, *a, on_row=None, checkpoints=None, **kw):
        seen.append(([(c[1], c[3]["objective"]) for c in configs], classes, checkpoints))
        return [(quality_row(c[0], classes=classes), get_preset("cpu")) for c in configs]

    monkeypatch.setattr(bench, "quality_rows", rows)
    parsed = argparse.ArgumentParser()
    command.add_arguments(parsed)
    args = parsed.parse_args(["--only", "objectives-tuning,objectives", "--objectives", "margin,blend",
                              "--classes", "2", "--heldout-classes", "3", "--out", str(tmp_path)])
    assert command.run(args) == 0
    assert seen == [([("cpu", "margin"), ("cpu", "blend")], bench.QUALITY_CLASSES[:2], None),
                    ([("cpu", "margin"), ("cpu", "blend")], bench.HELDOUT_CLASSES[:3], None)]
    seen.clear()
    args = parsed.parse_args(["--only", "objectives", "--objectives", "logit", "--presets", "atlas,cpu-best",
                              "--heldout-classes", "3", "--checkpoints", str(tmp_path / "kept"),
                              "--out", str(tmp_path)])
    assert command.run(args) == 0
    assert seen == [([("atlas", "logit"), ("cpu-best", "logit")], bench.HELDOUT_CLASSES[:3], tmp_path / "kept")]
    out = capsys.readouterr().out
    assert "## Class objectives on the tuning list, where the objective is chosen (2 classes)" in out
    assert "## Class objectives on the held-out list, seed 21 (3 classes)" in out
    with pytest.raises(SystemExit) as stop:
        parsed.parse_args(["--objectives", "logit,nope"])
    assert stop.value.code == 2
    assert "nope is not a class objective: name some of logit,margin,logprob,blend" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        parsed.parse_args(["--presets", "atlas,big"])
    assert stop.value.code == 2 and "big is not a preset: name some of horama,xplique,atlas" in capsys.readouterr().err


@pytest.mark.parametrize("fields, message", [("crop_mn=0.1", "unknown preset setting 'crop_mn'"),
                                             ("crop_min=2", "need 0 < crop_min <= crop_max <= 1"),
                                             ("crop_min=small", "is not FIELD=NUMBER")])
def test_preset_fields_change_the_objectives_rows_and_bad_ones_stop_before_any_render(fields, message, capsys):
    parsed = argparse.ArgumentParser()
    command.add_arguments(parsed)
    args = parsed.parse_args(["--preset-fields", "crop_min=0.15,crop_max=0.5,crops=6"])
    assert args.preset_fields == {"crop_min": 0.15, "crop_max": 0.5, "crops": 6}
    (label, preset, overrides, options, _), = bench.objective_configs(False, ("logit",), args.preset_fields)
    assert label == "logit · cpu crop_min=0.15 crop_max=0.5 crops=6" and options == {"objective": "logit"}
    assert get_preset(preset, **overrides).crops == 6 and get_preset(preset, **overrides).crop_min == 0.15
    with pytest.raises(SystemExit) as stop:
        parsed.parse_args(["--preset-fields", fields])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_each_class_objective_renders_its_class(tiny_resnet):
    """The bench renders every compared objective through the engine, one picture per class."""
    preset = get_preset("cpu", canvas=48, steps=2, crops=2)
    for name in bench.CLASS_OBJECTIVES:
        images, seconds = bench.run_ours(tiny_resnet, preset, 2, "cpu", classes=[1, 2], objective=name)
        assert images.shape == (2, 3, 48, 48) and torch.isfinite(images).all() and seconds > 0
    assert bench.class_objective("blend", 7).id == "class:7+logprob:7"


def test_a_quality_row_cut_short_resumes_from_its_kept_chunks(tiny_resnet, monkeypatch, tmp_path, capsys):
    """A row renders each chunk once: run again, it reads the kept pictures back (same figures, same
    seconds); a changed setting renders again; a kept file that does not read back is rendered and replaced."""
    preset = get_preset("cpu", canvas=32, steps=2, crops=1)
    rendered = []
    real = protocol.run_ours
    monkeypatch.setattr(protocol, "run_ours", lambda loaded, preset, batch, device, classes, **kw: (
        rendered.append((preset.steps, list(classes))), real(loaded, preset, batch, device, classes=classes, **kw))[1])
    first = bench.quality(tiny_resnet, [], preset, [1, 2, 3], "cpu", config="tiny", batch=2, crops=2,
                          checkpoints=tmp_path)
    assert rendered == [(2, [1, 2]), (2, [3])] and len(list(tmp_path.glob("*.npz"))) == 2
    again = bench.quality(tiny_resnet, [], preset, [1, 2, 3], "cpu", config="tiny", batch=2, crops=2,
                          checkpoints=tmp_path)
    assert rendered == [(2, [1, 2]), (2, [3])]  # nothing rendered the second time
    assert again.per_class == first.per_class and again.stats == first.stats
    assert again.seconds_per_image == first.seconds_per_image

    bench.quality(tiny_resnet, [], replace(preset, steps=3), [1, 2], "cpu", config="tiny", batch=2, crops=2,
                  checkpoints=tmp_path)
    assert rendered[-1] == (3, [1, 2]) and len(list(tmp_path.glob("*.npz"))) == 3

    key = checkpoints.chunk_key(tiny_resnet, preset, [3], "cpu", "ours", {})
    (tmp_path / f"{key}.npz").write_bytes(b"cut short")
    mended = bench.quality(tiny_resnet, [], preset, [1, 2, 3], "cpu", config="tiny", batch=2, crops=2,
                           checkpoints=tmp_path)
    assert rendered[-1] == (2, [3]) and "does not read back" in capsys.readouterr().err
    assert mended.per_class == first.per_class
    assert checkpoints.load_chunk(tmp_path, key, 1, 32) is not None


def test_kept_chunks_are_read_only_as_what_they_claim(tmp_path, tiny_resnet, monkeypatch):
    preset = get_preset("cpu", canvas=16, steps=1, crops=1)
    key = checkpoints.chunk_key(tiny_resnet, preset, [5, 6], "cpu", "ours", {"objective": "logit"})
    assert key != checkpoints.chunk_key(tiny_resnet, preset, [5, 6], "cpu", "ours", {"objective": "blend"})
    assert key != checkpoints.chunk_key(tiny_resnet, preset, [6, 5], "cpu", "ours", {"objective": "logit"})
    monkeypatch.setattr(checkpoints, "ENGINE_VERSION", "next")  # another engine draws other pictures
    assert key != checkpoints.chunk_key(tiny_resnet, preset, [5, 6], "cpu", "ours", {"objective": "logit"})
    monkeypatch.undo()
    images = torch.rand(2, 3, 16, 16)
    checkpoints.save_chunk(tmp_path, key, images, 4.5)
    pixels, seconds = checkpoints.load_chunk(tmp_path, key, 2, 16)
    assert seconds == 4.5 and torch.equal(pixels, (images * 255).round() / 255)
    assert checkpoints.load_chunk(tmp_path, key, 3, 16) is None  # not the pictures asked for
    assert checkpoints.load_chunk(tmp_path, key, 2, 32) is None
    assert checkpoints.load_chunk(tmp_path, "0" * 64, 2, 16) is None  # never kept


def test_a_chunk_that_is_not_finite_is_not_kept(tiny_resnet, monkeypatch, tmp_path):
    preset = get_preset("cpu", canvas=16, steps=1, crops=1)
    monkeypatch.setattr(protocol, "run_ours", lambda *a, classes, **kw: (torch.full((len(classes), 3, 16, 16),
                                                                                   float("nan")), 1.0))
    bench.quality(tiny_resnet, [], preset, [1], "cpu", config="broken", batch=1, crops=2, checkpoints=tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_cpu_quality_row_renders_atlas_sized_pictures_one_at_a_time():
    assert bench.quality_batch(get_preset("cpu"), gpu=False) == 2
    assert bench.quality_batch(get_preset("cpu-best"), gpu=False) == 2
    assert bench.quality_batch(get_preset("atlas"), gpu=False) == 1
    assert bench.quality_batch(get_preset("atlas"), gpu=True) == 512 // get_preset("atlas").views


def test_quality_rows_batch_limit_and_each_row_reported(monkeypatch):
    calls, reported = [], []

    def fake(loaded, judges, preset, classes, device, *, config, batch, checkpoints, **options):
        calls.append((config, preset.name, list(classes), batch, options))
        return quality_row(config, classes)

    monkeypatch.setattr(protocol, "quality", fake)
    measured = bench.quality_rows(None, [], bench.quality_configs(gpu=True), list(range(20)), "cuda", gpu=True,
                                  on_row=lambda row, n: reported.append((row.config, len(n))))
    atlas_views, xplique_views = get_preset("atlas").views, get_preset("xplique").views
    assert [(c[0], len(c[2]), c[3]) for c in calls] == [
        ("maco · atlas", 20, min(32, 512 // atlas_views)), ("fourier · atlas", 20, min(32, 512 // atlas_views)),
        ("maco · xplique", 16, min(32, 512 // xplique_views))]
    assert calls[1][4] == {"param": "fourier"}
    assert reported == [("maco · atlas", 20), ("fourier · atlas", 20), ("maco · xplique", 16)]
    row, preset = measured[2]
    assert preset.name == "xplique"
    assert list(bench.quality_json(row, preset)) == ["config", "classes", "seconds_per_image", "per_class", "stats",
                                                     "rates", "preset"]


def test_speed_rows_carry_the_ratio_to_horama(monkeypatch):
    def fake(model, preset, steps, device, batches):
        assert batches == (1, 4)
        return [bench.SpeedRow("atlas (ours)", model, 1, 10.0, 10.0),
                bench.SpeedRow("atlas (ours)", model, 4, 20.0, 5.0),
                bench.SpeedRow("horama 0.3.0 maco", model, 1, 30.0, 30.0)]

    monkeypatch.setattr(throughput, "speed", fake)
    rows = bench.speed_rows(("a", "b"), bench.speed_preset(), 3, "cpu", gpu=False)
    assert [r["model"] for r in rows] == ["a"] * 3 + ["b"] * 3
    assert list(rows[0]) == ["implementation", "model", "batch", "ms_per_step", "ms_per_image_step",
                             "per_hour_256_steps", "x_horama"]
    assert [r["x_horama"] for r in rows[:3]] == [3.0, 6.0, 1.0]
    assert rows[1]["per_hour_256_steps"] == pytest.approx(3600 * 1000 / (5.0 * 256))


def test_cost_keeps_the_faster_of_two_orders(monkeypatch):
    seen = []

    def fake(loaded, preset, device, *, batch, steps, **options):
        seen.append((preset.canvas, batch, tuple(sorted(options.items()))))
        return (2.0, 1.0) if len(seen) % 2 else (1.5, 1.25)

    monkeypatch.setattr(throughput, "seconds_per_image", fake)
    monkeypatch.setattr("atlas.device.native_bf16", lambda device: False)
    cost = bench.cost(None, get_preset("cpu"), 2, "cpu")
    assert list(cost) == ["threads", "configs", "options"]
    assert list(cost["configs"]) == [label for label, _ in bench.SEARCH]
    assert len(seen) == 2 * (len(bench.SEARCH) + 4)  # every config and option twice, no bf16 rows here
    for timing in [*cost["configs"].values(), *cost["options"]]:
        assert (timing["wall"], timing["cpu"]) == (1.5, 1.0)
    assert [(o["batch"], o["channels_last"], o["bf16"]) for o in cost["options"]] == [
        (1, False, False), (1, True, False), (2, False, False), (2, True, False)]


def test_the_command_prints_and_writes_what_the_measurements_return(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("atlas.models.load_model", lambda name, **kw: SimpleNamespace(name=name))
    monkeypatch.setattr(bench, "split_rows", lambda *a: [
        {"model": "efficientnet_lite0", "batch": 1, "step_ms": 100.0, "image_ms": 25.0, "image_fraction": 0.25}])
    monkeypatch.setattr(bench, "load_judges", lambda: [])
    rows = [quality_row("before: cpu v1"), quality_row("after: cpu", top5=0.9)]
    monkeypatch.setattr(bench, "quality_rows", lambda *a, on_row=None, **kw: [(r, get_preset("cpu")) for r in rows])
    parsed = argparse.ArgumentParser()
    command.add_arguments(parsed)
    args = parsed.parse_args(["--only", "split,quality", "--classes", "2", "--heldout-classes", "3",
                              "--out", str(tmp_path)])
    assert command.run(args) == 0
    out = capsys.readouterr().out
    assert "| model | batch | step ms | image handling ms | image handling share |\n|---|---|---|---|---|\n" \
           "| efficientnet_lite0 | 1 | 100.0 | 25.0 | 25.0% |" in out
    assert ("| config | classes | s/image | corner ratio | border share | HF share | whole Lite0 top-1 | "
            "large Lite0 top-1 | "
            "large Lite1 top-1 / top-5 | large Lite2 top-1 / top-5 | small Lite1 top-5 | small Lite2 top-5 | "
            "whole Lite1 top-5 | whole Lite2 top-5 |") in out
    assert ("| after: cpu | 2 | 12.5 | 1.50 | 0.25 | 12.3‰ | 25% | 25% | 10% / 90% | 20% / 40% | 90% | 40% | 90% | "
            "40% |") in out
    assert (tmp_path / "quality-cpu.png").is_file()
    results = json.loads((tmp_path / "results-cpu.json").read_text())
    assert list(results) == ["machine", "device", "date", "command", "split", "quality"]
    assert results["command"] == "atlas bench --part cpu --only split,quality"
    assert [r["config"] for r in results["quality"]] == ["before: cpu v1", "after: cpu"]


def test_no_tf32_turns_tf32_off_for_the_run_and_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("atlas.models.load_model", lambda name, **kw: SimpleNamespace(name=name))
    monkeypatch.setattr(bench, "split_rows", lambda *a: [
        {"model": "efficientnet_lite0", "batch": 1, "step_ms": 100.0, "image_ms": 25.0, "image_fraction": 0.25}])
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    args = argparse.Namespace(part="cpu", only=("split",), device=None, classes=2, heldout_classes=3, steps=None,
                              images=None, out=tmp_path, no_tf32=True)
    try:
        assert command.run(args) == 0
        assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    assert ", TF32 off" in capsys.readouterr().out.splitlines()[0]
    assert json.loads((tmp_path / "results-cpu.json").read_text())["command"].endswith("--only split --no-tf32")


def test_scaling_stops_at_the_first_batch_that_does_not_fit(monkeypatch):
    def fake_run(loaded, preset, batch, device, **options):
        if batch > 16:
            raise torch.OutOfMemoryError("fake")
        return None, 0.5 * preset.steps

    monkeypatch.setattr(throughput, "run_ours", fake_run)
    monkeypatch.setattr(throughput, "peak_memory_mb", lambda loaded, preset, batch, device: float(preset.canvas))
    preset = get_preset("atlas")
    result = bench.scaling(None, preset, 4, "cuda", gpu=True)
    assert [r["batch"] for r in result["batch"]] == [1, 2, 4, 8, 16]
    assert list(result["batch"][0]) == ["batch", "ms_per_step", "images_per_hour", "peak_mb"]
    assert result["batch"][1]["ms_per_step"] == 500.0
    assert result["batch"][1]["images_per_hour"] == pytest.approx(3600 * 2 / (0.5 * preset.steps))
    assert result["canvas"] == [{"canvas": c, "batch": 4, "peak_mb": float(c)} for c in (256, 512, 1024, 1280)]


def test_gpu_options_time_each_option_and_project_the_best(monkeypatch, tiny_resnet):
    calls = []

    def fake_run(loaded, preset, batch, device, autocast_bf16=False, channels_last=False):
        calls.append((batch, preset.steps, autocast_bf16, channels_last))
        return None, 0.008 * preset.steps * batch  # 8 ms an image-step

    monkeypatch.setattr(throughput, "run_ours", fake_run)
    monkeypatch.setattr(torch, "compile", lambda module: module)
    preset = get_preset("atlas")
    result = bench.gpu_options(tiny_resnet, tiny_resnet, preset, 5, "cuda")
    assert [(r["bf16"], r["channels_last"], r["compile"]) for r in result["options"]] == [
        (False, False, False), (False, True, False), (True, False, False), (True, True, False), (False, False, True)]
    assert all(r["ms_per_image_step"] == pytest.approx(8.0) for r in result["options"])
    assert calls[4][:2] == (bench.GPU_OPTIONS_BATCH, 2)  # the compilation call
    assert result["projection"] == pytest.approx({"lite0_atlas_hours": preset.steps * 8.0 / 3600,
                                                  "resnet50_horama_hours": get_preset("horama").steps * 8.0 / 3600})


def test_the_site_benchmark_builds_a_synthetic_concept_atlas_and_measures_the_build(tmp_path):
    from atlas.bench.site import bench_site

    result = bench_site(classes=3, concepts=2, crops=2, channels=2, work=tmp_path)
    # banks, examples (each a crop and its source's thumbnail), renders, model
    assert result.cache_files == 3 * (2 * 2 + 1) + (2 * 16 * 2 + 1) + 2 * 3 + 1
    assert [(b.case, b.computed_similar) for b in result.builds] == [
        ("similar concepts stored, new site", False), ("similar concepts stored, nothing changed", False),
        ("similar concepts missing, new site", True)]
    for run in result.builds:
        assert run.seconds > 0 and run.site_mb > 0 and run.largest_page_kb > 0
        assert 20 < run.peak_mb < 1024  # the build's own process, not this one (which holds torch)
        assert run.pages >= 3 + 2  # a page per class and per channel, at least
    assert result.lines()[0].startswith("3 classes x 2 concepts x 2 crops, 2 channels with examples")
    assert list(tmp_path.iterdir()) == []  # the synthetic cache and sites are gone


def test_judging_cost_renders_once_and_judges_the_same_pictures_with_each_crop_count(tiny_resnet, monkeypatch):
    from atlas.bench import judging

    renders, judged = [], []
    images = torch.rand(3, 3, 32, 32)

    def fake_run(loaded, preset, batch, device, classes):
        renders.append(list(classes))
        return images[[c - 1 for c in classes]], 0.1

    real = judging.judge_images

    def recording(stack, panel, targets, *, crops, seed):
        judged.append((crops, stack.clone()))
        return real(stack, panel, targets, crops=crops, seed=seed)

    monkeypatch.setattr(judging, "run_ours", fake_run)
    monkeypatch.setattr(judging, "judge_images", recording)
    cost = bench.judging_cost(tiny_resnet, [], get_preset("cpu"), [1, 2, 3], "cpu", counts=(4, 2), batch=2)
    assert renders == [[1, 2], [3]]  # rendered once, in batches
    assert [c for c, _ in judged] == [4, 2] and torch.equal(judged[0][1], judged[1][1])  # the very same pixels
    assert torch.equal(judged[0][1], (images.clamp(0, 1) * 255).round() / 255)  # as stored, in 8 bits
    assert [r.crops for r in cost.rows] == [4, 2]
    # the largest change of any mean rate, over every scale, model and rate: here one class's large top-1
    moved = {c: {scale: {m: list(v) for m, v in models.items()} for scale, models in per.items()}
             for c, per in cost.rows[0].per_class.items()}
    model = next(iter(moved[1]["large"]))
    top1 = moved[1]["large"][model][0]
    moved[1]["large"][model][0] = top1 + 0.3 if top1 <= 0.7 else top1 - 0.3
    shifted = dataclasses.replace(cost.rows[0], per_class=moved)
    assert shifted.largest_gap(cost.rows[0], [1, 2, 3]) == pytest.approx(0.1)
    assert shifted.largest_gap(cost.rows[0], [2, 3]) == 0
    rates = cost.rows[1].rates([1, 2, 3])
    assert set(rates) == {"small", "large", "whole"} and list(rates["large"]) == ["test_resnet"]
    table = command.judging_table(cost)
    assert table.splitlines()[0].startswith("| crops | judging CPU s/image | of the render | largest change |")
    assert len(table.splitlines()) == 4 and json.dumps(cost.to_json())


def test_the_speed_settings_stay_horamas_whatever_the_atlas_preset_becomes(monkeypatch):
    from atlas import presets

    monkeypatch.setitem(presets.PRESETS, "atlas", replace(presets.PRESETS["atlas"], whole_views=1, input_scale=0.72,
                                                          crop_anneal=True))
    same = bench.speed_preset()
    assert (same.canvas, same.crops, same.views, same.crop_min, same.crop_max, same.noise) == (512, 8, 8, 0.2, 0.25,
                                                                                              0.05)
    assert same.input_side(224) == 224 and same.crop_anneal is False
