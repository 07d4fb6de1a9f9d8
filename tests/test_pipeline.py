"""The render pipeline in-process on test_resnet (random weights) at a tiny preset."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlas import atomic, pipeline
from atlas.cache import ATTRIBUTION, IMAGE, RECORD, Cache
from atlas.config import load_config, override
from atlas.errors import AtlasError
from atlas.jobs import Shard
from atlas.record import to_dict
from atlas.seeds import job_seed
from tests.config_support import write_config

TOP2 = {"layer4": "top:2"}
JUDGES = ["test_efficientnet"]


def make_request(tmp_path: Path, *, classes: str = "0-2", layers: dict[str, str] = TOP2, judges: list[str] = JUDGES,
                 **changes) -> pipeline.RenderRequest:
    path = write_config(tmp_path, "test_resnet", classes=classes, judges=judges, batch_size=3, layers=layers,
                        scoring={"crops": 3})
    config = dataclasses.replace(load_config(path), **changes.pop("config", {}))
    selection = override(config.full, **changes.pop("selection", {}))
    return pipeline.RenderRequest(config=config, selection=selection, device="cpu", batch_size=config.batch_size,
                                  **changes)


class FakeBar:
    def __init__(self, total: int, **_kwargs) -> None:
        self.total, self.done, self.closed, self.postfixes = total, 0, False, []

    def update(self, n: int) -> None:
        self.done += n

    def set_postfix_str(self, text: str) -> None:
        self.postfixes.append(text)

    def close(self) -> None:
        self.closed = True


def records(cache_dir: Path) -> dict[str, dict]:
    """The valid records, as written (JSON data)."""
    return {r.key: to_dict(r) for r in Cache(cache_dir).render_records(verify=True)}


def tree(cache_dir: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(cache_dir)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(cache_dir.rglob("*")) if p.is_file()}


def test_small_render_writes_complete_entries_and_a_second_run_renders_nothing(tmp_path):
    request = make_request(tmp_path)
    lines: list[str] = []
    bars: list[FakeBar] = []
    first = pipeline.run(request, report=lines.append, progress=lambda **kw: bars.append(FakeBar(**kw)) or bars[-1])
    assert (first.total, first.rendered, first.reused, first.failed) == (5, 5, 0, 0)
    assert len(bars) == 1 and bars[0].total == 5 and bars[0].done == 5 and bars[0].closed
    assert "batch of 3: step 2/2" in bars[0].postfixes and "batch of 2: step 2/2" in bars[0].postfixes
    assert "5 objectives: 5 to render, 0 in the cache" in lines[0]
    cache_dir = tmp_path / "cache"
    found = records(cache_dir)
    assert sorted(found) == sorted(first.keys)
    ids = sorted(r["objective"]["id"] for r in found.values())
    assert sorted(i for i in ids if i.startswith("class:")) == ["class:0", "class:1", "class:2"]
    assert len([i for i in ids if i.startswith("channel:layer4:")]) == 2
    for key, record in found.items():
        folder = Cache(cache_dir).entry_dir(key)
        assert sorted(p.name for p in folder.iterdir()) == [ATTRIBUTION, IMAGE, RECORD]
        image = Image.open(folder / IMAGE)
        assert image.mode == "RGB" and image.size == (32, 32)
        attribution = np.load(folder / ATTRIBUTION)
        assert attribution.dtype == np.float32 and attribution.shape == (32, 32) and attribution.max() > 0
        for field in ("format", "key", "status", "failure", "objective", "model", "preset", "param", "seed",
                      "seed_index", "spectrum_sha256", "engine_version", "objective_value", "timing", "scores",
                      "files"):
            assert field in record, field
        assert record["status"] == "ok" and record["failure"] is None
        assert record["model"]["name"] == "test_resnet" and record["model"]["input_size"] == 160
        assert record["preset"]["canvas"] == 32 and record["preset"]["steps"] == 2
        assert record["seed"] == job_seed(record["objective"]["id"], record["seed_index"])
        assert np.isfinite(record["objective_value"])
        assert record["timing"]["batch_size"] in (1, 2, 3) and record["timing"]["device"] == "cpu"
        models = record["scores"]["models"]
        assert list(record["judging"]) == ["small", "large", "whole"] and record["scores"] == record["judging"]["large"]
        assert record["judging"]["whole"]["crops"] == 1 and record["judging"]["small"]["crop_scale"] == [0.2, 0.45]
        assert set(record["image_stats"]) == {"corner_ratio", "border_energy_share", "high_frequency_share"}
        assert 0 < record["image_stats"]["corner_ratio"] < 3
        assert [m["name"] for m in models] == ["test_resnet", "test_efficientnet"]
        assert all(len(m["top5"]) == 5 for m in models)
        objective = record["objective"]
        if objective["kind"] == "class":
            assert objective["description"].startswith(f"test_resnet · class {objective['class_index']} · ")
            assert all(0 <= m["target_top1_rate"] <= m["target_top5_rate"] <= 1 for m in models)
        else:
            assert objective["layer"] == "layer4" and objective["class_index"] is None
            assert all(m["target_top1_rate"] is None and m["target_top5_rate"] is None for m in models)
    info = json.loads((cache_dir / "models" / "test_resnet.json").read_text())
    assert info["num_classes"] == 1000 and info["classes"][0]["wnid"] == "n01440764"
    assert len(info["nearest_classes"]) == 1000 and len(info["nearest_classes"]["0"]) == 8
    assert all(j != 0 for j, _ in info["nearest_classes"]["0"])
    assert {layer["name"] for layer in info["layers"]} >= {"layer2", "layer4"}
    assert len(info["channel_top_classes"]["layer4"]) == 96
    assert info["hardware"] and info["code_version"].startswith("atlas ")

    before = tree(cache_dir)
    second = pipeline.run(request, report=lines.append)
    assert (second.rendered, second.reused, second.failed) == (0, 5, 0)
    assert tree(cache_dir) == before


def test_top_channels_are_those_with_the_largest_classifier_weight_norm(tmp_path):
    request = make_request(tmp_path, classes="none")
    from atlas.models import classifier_weights, load_model

    norms = classifier_weights(load_model("test_resnet", random_weights=True)).norm(dim=0)
    expected = sorted(norms.argsort(descending=True)[:2].tolist())
    summary = pipeline.run(request, report=lambda _: None)
    channels = sorted(r["objective"]["channel"] for r in records(tmp_path / "cache").values())
    assert summary.total == 2 and channels == expected


def test_changed_settings_make_new_keys_and_shards_make_the_same_keys(tmp_path):
    base = pipeline.run(make_request(tmp_path, classes="0", layers={}), report=lambda _: None)
    more_steps = pipeline.run(make_request(tmp_path, classes="0", layers={}, selection={"steps": 3}),
                              report=lambda _: None)
    assert more_steps.rendered == 1 and set(more_steps.keys).isdisjoint(base.keys)
    shard = pipeline.run(make_request(tmp_path, classes="0-1", layers={}, shard=Shard(0, 2)), report=lambda _: None)
    assert shard.keys == base.keys and shard.reused == 1 and shard.rendered == 0
    layout = pipeline.run(make_request(tmp_path, classes="0", layers={}, config={"channels_last": True}),
                          report=lambda _: None)
    assert layout.keys == base.keys and layout.rendered == 0  # memory layout does not change the image
    bf16 = pipeline.run(make_request(tmp_path, classes="0", layers={}, config={"bf16": True}), report=lambda _: None)
    assert bf16.rendered == 1 and set(bf16.keys).isdisjoint(base.keys)
    assert records(tmp_path / "cache")[bf16.keys[0]]["precision"] == "bf16 autocast"
    assert records(tmp_path / "cache")[base.keys[0]]["precision"] == "fp32"


def test_corrupt_entries_are_reported_and_rendered_again(tmp_path):
    request = make_request(tmp_path, classes="0-3", layers={})
    pipeline.run(request, report=lambda _: None)
    cache = Cache(tmp_path / "cache")
    keys = sorted(records(tmp_path / "cache"))
    (cache.entry_dir(keys[0]) / RECORD).write_text('{"format": 1, "ke')  # truncated record
    (cache.entry_dir(keys[1]) / IMAGE).write_bytes(b"")  # truncated image
    (cache.entry_dir(keys[2]) / ATTRIBUTION).unlink()  # missing file
    untouched = tree(cache.entry_dir(keys[3]))
    lines: list[str] = []
    summary = pipeline.run(request, report=lines.append)
    assert (summary.corrupt, summary.rendered, summary.reused) == (3, 3, 1)
    assert sum("corrupt cache entry" in line for line in lines) == 3
    assert sorted(records(tmp_path / "cache")) == keys
    assert tree(cache.entry_dir(keys[3])) == untouched


def test_stale_temporaries_are_cleaned_up(tmp_path):
    request = make_request(tmp_path, classes="0", layers={})
    pipeline.run(request, report=lambda _: None)
    stale = next((tmp_path / "cache" / "entries").rglob(RECORD)).with_name(".image.png.otherhost.1.abcd.tmp")
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    lines: list[str] = []
    pipeline.run(request, report=lines.append)
    assert not stale.exists() and any("stale" in line for line in lines)


def _nan_for(monkeypatch, bad_ids: set[str], attempts: int) -> list[list[int]]:
    """Make the engine report a non-finite value for `bad_ids` on their first `attempts` renders."""
    real = pipeline.engine.render
    seen: dict[str, int] = {}
    calls: list[list[int]] = []

    def render(loaded, objectives, preset, seeds, **kwargs):
        result = real(loaded, objectives, preset, seeds, **kwargs)
        calls.append(list(seeds))
        for k, objective in enumerate(objectives):
            if objective.id in bad_ids:
                seen[objective.id] = seen.get(objective.id, 0) + 1
                if seen[objective.id] <= attempts:
                    result.values[k] = float("nan")
                    result.finite[k] = False
        return result

    monkeypatch.setattr(pipeline.engine, "render", render)
    return calls


def test_non_finite_loss_is_retried_once_with_a_derived_seed(tmp_path, monkeypatch):
    calls = _nan_for(monkeypatch, {"class:1"}, attempts=1)
    summary = pipeline.run(make_request(tmp_path, classes="0-2", layers={}), report=lambda _: None)
    assert (summary.rendered, summary.failed, summary.retried) == (3, 0, 1)
    record = next(r for r in records(tmp_path / "cache").values() if r["objective"]["id"] == "class:1")
    assert record["status"] == "ok" and record["seed"] == job_seed("class:1", 0, attempt=1)
    assert record["retry"]["first_seed"] == job_seed("class:1", 0)
    assert calls[-1] == [job_seed("class:1", 0, attempt=1)]


def test_twice_non_finite_is_recorded_as_failed_and_the_run_goes_on(tmp_path, monkeypatch):
    _nan_for(monkeypatch, {"class:1"}, attempts=2)
    request = make_request(tmp_path, classes="0-2", layers={})
    summary = pipeline.run(request, report=lambda _: None)
    assert (summary.rendered, summary.failed) == (2, 1)
    failed = [r for r in records(tmp_path / "cache").values() if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["objective"]["id"] == "class:1"
    assert "non-finite" in failed[0]["failure"] and failed[0]["objective_value"] is None
    folder = Cache(tmp_path / "cache").entry_dir(failed[0]["key"])
    assert sorted(p.name for p in folder.iterdir()) == [RECORD]
    again = pipeline.run(request, report=lambda _: None)  # a recorded failure is not rendered again...
    assert (again.rendered, again.failed_before) == (0, 1)
    monkeypatch.undo()
    retried = pipeline.run(pipeline.RenderRequest(**{**request.__dict__, "retry_failed": True}), report=lambda _: None)
    assert retried.rendered == 1  # ...unless asked
    assert all(r["status"] == "ok" for r in records(tmp_path / "cache").values())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"classes": "n99999999"}, "unknown class"),
        ({"classes": "0-1000"}, "class 1000 is out of range"),
        ({"layers": {"nolayer": "0"}}, "has no layer 'nolayer'"),
        ({"layers": {"layer4": "96"}}, "layer layer4 channel 96 is out of range"),
        ({"layers": {"layer2": "top:3"}}, "feeds the classifier"),
        ({"judges": ["not_a_model_x"]}, "unknown model"),
    ],
)
def test_bad_input_is_one_line_error_and_the_cache_is_untouched(tmp_path, changes, message):
    pipeline.run(make_request(tmp_path, classes="0", layers={}), report=lambda _: None)
    before = tree(tmp_path / "cache")
    with pytest.raises(AtlasError, match=message) as info:
        pipeline.run(make_request(tmp_path, **changes), report=lambda _: None)
    assert "\n" not in str(info.value)
    assert tree(tmp_path / "cache") == before


def test_unknown_model_and_unwritable_cache(tmp_path):
    request = make_request(tmp_path)
    bad_model = pipeline.RenderRequest(**{**request.__dict__, "config": request.config.__class__(
        **{**request.config.__dict__, "model": "resnet_nope"})})
    with pytest.raises(AtlasError, match="unknown model"):
        pipeline.run(bad_model, report=lambda _: None)
    blocker = tmp_path / "file"
    blocker.write_text("")
    unwritable = pipeline.RenderRequest(**{**request.__dict__, "config": request.config.__class__(
        **{**request.config.__dict__, "cache": blocker / "cache"})})
    with pytest.raises(AtlasError, match="not writable"):
        pipeline.run(unwritable, report=lambda _: None)


def test_full_disk_mid_run_keeps_finished_entries_and_leaves_no_partial_one(tmp_path, monkeypatch):
    request = make_request(tmp_path, classes="0-1", layers={})
    pipeline.run(request, report=lambda _: None)
    before = tree(tmp_path / "cache")
    real = atomic.write_temp
    writes = {"n": 0}

    def write(path, data):
        writes["n"] += 1
        if writes["n"] == 5:  # the second new entry's attribution (image, attribution, record each)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr(atomic, "write_temp", write)
    bigger = make_request(tmp_path, classes="0-4", layers={})
    with pytest.raises(AtlasError, match="disk full") as info:
        pipeline.run(bigger, report=lambda _: None)
    assert "\n" not in str(info.value)
    after = tree(tmp_path / "cache")
    assert {k: v for k, v in after.items() if k in before} == before
    found = records(tmp_path / "cache")
    assert len(found) == 3  # the two old entries and the one finished before the disk filled up
    for folder in (tmp_path / "cache" / "entries").glob("*/*"):
        assert (folder / RECORD).exists(), f"partial entry {folder}"
    assert not [p for p in (tmp_path / "cache").rglob("*.tmp")]


def test_force_renders_again_under_the_same_keys(tmp_path):
    request = make_request(tmp_path, classes="0-1", layers={})
    first = pipeline.run(request, report=lambda _: None)
    before = {k: r["timing"]["finished"] + str((Cache(tmp_path / "cache").entry_dir(k) / RECORD).stat().st_mtime_ns)
              for k, r in records(tmp_path / "cache").items()}
    forced = pipeline.run(dataclasses.replace(request, force=True), report=lambda _: None)
    assert (forced.rendered, forced.reused) == (2, 0) and forced.keys == first.keys
    after = {k: r["timing"]["finished"] + str((Cache(tmp_path / "cache").entry_dir(k) / RECORD).stat().st_mtime_ns)
             for k, r in records(tmp_path / "cache").items()}
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)


def test_a_user_spectrum_is_used_and_changes_the_key(tmp_path):
    from atlas.spectrum import load_spectrum, spectrum_sha256

    base = pipeline.run(make_request(tmp_path, classes="0", layers={}), report=lambda _: None)
    flat = np.ones_like(load_spectrum())  # a white-noise spectrum: a different image under a different key
    np.save(tmp_path / "flat.npy", flat)
    mine = pipeline.run(make_request(tmp_path, classes="0", layers={}, config={"spectrum": tmp_path / "flat.npy"}),
                        report=lambda _: None)
    assert mine.rendered == 1 and set(mine.keys).isdisjoint(base.keys)
    record = records(tmp_path / "cache")[mine.keys[0]]
    assert record["spectrum_sha256"] == spectrum_sha256(tmp_path / "flat.npy") != spectrum_sha256()
    image = lambda key: np.asarray(Image.open(tmp_path / "cache" / "entries" / key[:2] / key / IMAGE))  # noqa: E731
    assert not np.array_equal(image(mine.keys[0]), image(base.keys[0]))
    (tmp_path / "bad.npy").write_bytes(b"junk")
    with pytest.raises(AtlasError, match="spectrum"):
        pipeline.run(make_request(tmp_path, classes="0", layers={}, config={"spectrum": tmp_path / "bad.npy"}),
                     report=lambda _: None)


def test_spectrum_key_in_the_config_file_is_relative_to_it(tmp_path):
    path = tmp_path / "atlas.toml"
    path.write_text('spectrum = "mine.npy"\n')
    assert load_config(path).spectrum == tmp_path / "mine.npy"


def test_the_batch_size_probe_renders_with_the_batches_settings(tmp_path, monkeypatch):
    """Precision and memory layout change what a batch costs: the probe must use the very settings
    the batches use (bf16 and channels_last included), only with fewer steps."""
    from atlas import render as engine

    calls = []
    real_render = engine.render

    def recording(loaded, objectives, settings, seeds, **kwargs):
        calls.append((len(objectives), settings, kwargs["device"]))
        return real_render(loaded, objectives, settings, seeds, **kwargs)

    probed_views = []

    def probe_twice(device, run, views):
        probed_views.append(views)
        run(1)
        run(2)
        return 2

    monkeypatch.setattr(engine, "render", recording)
    monkeypatch.setattr(pipeline, "auto_batch_size", probe_twice)
    request = make_request(tmp_path, classes="0-1", layers={}, judges=[],
                           config={"bf16": True, "channels_last": True, "batch_size": None})
    request = dataclasses.replace(request, batch_size=None)
    summary = pipeline.run(request, report=lambda _line: None)
    assert summary.rendered == 2
    (one, probe1, _), (two, probe2, _), (batch, settings, device) = calls
    assert (one, two, batch, device) == (1, 2, 2, "cpu")
    assert settings.bf16 and settings.channels_last and settings.preset.steps == 2
    assert probed_views == [settings.preset.views]  # the CPU batch is chosen for the run's own views a step
    assert probe1 == probe2 == settings.with_steps(2)
    assert probe1.bf16 and probe1.channels_last and probe1.spectrum is settings.spectrum
    for record in records(tmp_path / "cache").values():
        assert record["precision"] == "bf16 autocast"


def _timed_render(monkeypatch, starts: list[float], before=None) -> None:
    """Record when each batch's render starts; `before(call)` runs first (a test may hold a batch back)."""
    real = pipeline.engine.render

    def render(*args, **kwargs):
        if before is not None:
            before(len(starts))
        starts.append(time.monotonic())
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline.engine, "render", render)


def test_the_next_batch_renders_while_the_previous_one_is_written_and_at_most_one_waits(tmp_path, monkeypatch):
    starts: list[float] = []
    written: list[tuple[str, float]] = []
    _timed_render(monkeypatch, starts)
    real_write = Cache.write_entry

    def slow_write(self, key, files, record):
        time.sleep(0.3)  # a slow disk
        done = real_write(self, key, files, record)
        written.append((record.objective.id, time.monotonic()))
        return done

    monkeypatch.setattr(Cache, "write_entry", slow_write)
    monkeypatch.setattr(pipeline, "overlaps_host", lambda device: True)  # as on a GPU
    request = dataclasses.replace(make_request(tmp_path, classes="0-7", layers={}), batch_size=2)
    bars: list[FakeBar] = []
    summary = pipeline.run(request, report=lambda _: None, progress=lambda **kw: bars.append(FakeBar(**kw)) or bars[-1])
    assert (summary.rendered, summary.failed) == (8, 0) and bars[0].done == 8 and bars[0].closed
    assert len(starts) == 4 and [i for i, _ in written] == [f"class:{c}" for c in range(8)]
    first_written = written[1][1]  # the first batch's second entry
    assert starts[1] < first_written  # the second batch rendered while the first was being written
    assert starts[3] > first_written  # the fourth waited for the first to be written: one batch queued at most
    assert len(records(tmp_path / "cache")) == 8


def test_on_the_cpu_each_batch_is_written_before_the_next_renders(tmp_path, monkeypatch):
    """The render's threads use every core: a writer thread beside them only slows it down."""
    assert not pipeline.overlaps_host("cpu") and pipeline.overlaps_host("cuda:0")
    starts: list[float] = []
    written: list[float] = []
    _timed_render(monkeypatch, starts)
    real_write = Cache.write_entry

    def write(self, key, files, record):
        written.append(time.monotonic())
        return real_write(self, key, files, record)

    monkeypatch.setattr(Cache, "write_entry", write)
    request = dataclasses.replace(make_request(tmp_path, classes="0-3", layers={}), batch_size=2)
    assert pipeline.run(request, report=lambda _: None).rendered == 4
    assert len(starts) == 2 and written[1] < starts[1]  # the first batch was written before the second began


def test_a_writer_error_stops_the_run_during_the_next_batch_with_its_one_line(tmp_path, monkeypatch):
    failed = threading.Event()
    starts: list[float] = []
    _timed_render(monkeypatch, starts, before=lambda call: call and failed.wait(30))

    def full_disk(self, key, files, record):
        failed.set()
        raise AtlasError("disk full writing the cache: free some space and run again")

    monkeypatch.setattr(Cache, "write_entry", full_disk)
    monkeypatch.setattr(pipeline, "overlaps_host", lambda device: True)  # as on a GPU
    request = dataclasses.replace(make_request(tmp_path, classes="0-7", layers={}), batch_size=2)
    with pytest.raises(AtlasError, match="^disk full writing the cache") as info:
        pipeline.run(request, report=lambda _: None)
    assert "\n" not in str(info.value)
    assert len(starts) == 2  # the second batch's render stopped at its first step; no third began
    assert records(tmp_path / "cache") == {}
