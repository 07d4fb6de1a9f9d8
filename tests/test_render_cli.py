"""`atlas render` as users run it: errors, a kill -9 and resume, two shard processes, `make atlas` on a CPU."""

from __future__ import annotations

import errno
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from atlas import atomic
from atlas.cache import Cache
from atlas.cli import main
from atlas.jobs import Shard, build_jobs, select_shard
from atlas.models import classifier_weights, load_model
from atlas.record import to_dict
from tests.config_support import TINY_PRESET, write_config

ROOT = Path(__file__).resolve().parents[1]

CPU = {"classes": "3,5", "judges": ["test_efficientnet"], "preset": TINY_PRESET, "layers": {"layer4": "top:1"}}


def cli_config(tmp_path: Path, classes: str = "0-3", layers: dict[str, str] | None = None) -> Path:
    return write_config(tmp_path, "test_resnet", classes=classes, site="site", batch_size=2, layers=layers or {},
                        scoring={"crops": 2}, cpu=CPU)


def valid(cache_dir: Path) -> dict[str, dict]:
    return {r.key: to_dict(r) for r in Cache(cache_dir).render_records(verify=True)}


def states(cache_dir: Path) -> dict[str, str]:
    cache = Cache(cache_dir)
    return {key: cache.check(key).status for key in cache.keys()}


def atlas(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    environment.update(env or {}, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-m", "atlas", "render", *args, "--no-progress"], cwd=ROOT,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "resnet_nope"], "unknown model 'resnet_nope'"),
        (["--classes", "1,2000"], "class 2000 is out of range"),
        (["--classes", "n00000000"], "unknown class 'n00000000'"),
        (["--layers", "nolayer=0"], "has no layer 'nolayer'"),
        (["--layers", "layer2=48"], "layer layer2 channel 48 is out of range"),
        (["--layers", "layer2"], "LAYER=SPEC"),
        (["--shard", "2/2"], "bad shard 2/2"),
        (["--device", "cuda:0"], "no CUDA GPU"),
        (["--config", "/nonexistent/atlas.toml"], "cannot read config"),
        (["--device", "mps"], "no usable Apple GPU (MPS): use --device cpu"),
    ],
)
def test_bad_input_prints_one_line_and_exits_non_zero(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = cli_config(tmp_path)
    assert main(["render", "--config", str(config), "--full", "--no-progress", "--classes", "0", *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("atlas render: error: ") and message in err[0], err
    assert not (tmp_path / "cache").exists()  # a rejected render leaves nothing behind, not even folders


def test_a_layer_the_model_lacks_names_the_table_it_came_from(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = write_config(tmp_path, "test_resnet", cpu={**CPU, "layers": {"blocks.3": "0-3"}})
    assert main(["render", "--config", str(config), "--no-progress"]) == 1  # no GPU: the [cpu] subset
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no layer 'blocks.3'" in err[0] and "under [cpu.layers] in the config" in err[0], err
    assert main(["render", "--config", str(config), "--full", "--layers", "blocks.3=0", "--no-progress"]) == 1
    assert "under [layers] in the config or with --layers" in capsys.readouterr().err


def test_unwritable_cache_and_full_disk_are_one_line_errors(tmp_path, capsys, monkeypatch):
    config = cli_config(tmp_path, classes="0-1")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    assert main(["render", "--config", str(config), "--full", "--no-progress", "--cache", str(blocker / "c")]) == 1
    assert "not writable" in capsys.readouterr().err

    assert main(["render", "--config", str(config), "--full", "--no-progress", "--classes", "0"]) == 0
    before = {p: p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    real = atomic.write_temp

    def full_disk(path, data):
        if path.name == "attribution.npy":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr(atomic, "write_temp", full_disk)
    capsys.readouterr()
    assert main(["render", "--config", str(config), "--full", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "disk full" in err[0]
    assert {p: p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_kill_9_at_a_random_moment_then_resume(tmp_path):
    seed = random.randrange(10**6)
    chooser = random.Random(seed)
    wait_for, delay = chooser.randint(1, 10), chooser.uniform(0.0, 0.3)  # a moment well before the end
    config = cli_config(tmp_path, classes="0-35", layers={"layer4": "0-3"})
    total = 40
    cache_dir = tmp_path / "cache"
    process = atlas("--config", str(config), "--full")
    deadline = time.monotonic() + 180
    while len(valid(cache_dir)) < wait_for and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(delay)
    assert process.poll() is None, f"the render finished before the kill (seed {seed}); make it longer"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    after_kill = states(cache_dir)
    assert "corrupt" not in after_kill.values(), (seed, after_kill)
    finished = {key: (Cache(cache_dir).entry_dir(key) / "record.json").stat().st_mtime_ns
                for key, status in after_kill.items() if status == "ok"}
    assert 0 < len(finished) < total, seed

    resumed = atlas("--config", str(config), "--full")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    expected = f"{total - len(finished)} rendered, {len(finished)} reused from cache, 0 failed of {total}"
    assert expected in out, (seed, out)
    final = valid(cache_dir)
    assert len(final) == total and set(finished) <= set(final)
    for key, mtime in finished.items():  # nothing finished was rendered again
        assert (Cache(cache_dir).entry_dir(key) / "record.json").stat().st_mtime_ns == mtime
    assert not list(cache_dir.rglob("*.tmp")), "stale temporaries left behind"
    assert set(states(cache_dir).values()) == {"ok"}


@pytest.mark.slow
def test_two_shard_processes_cover_the_jobs_exactly_once(tmp_path, capsys):
    config = cli_config(tmp_path, classes="0-6", layers={"layer2": "0-2"})
    cache_dir = tmp_path / "cache"
    first = atlas("--config", str(config), "--full", "--shard", "0/2")
    second = atlas("--config", str(config), "--full", env={"RANK": "1", "WORLD_SIZE": "2"})
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    rendered = [int(re.search(r"done: (\d+) rendered", out)[1]) for out in outputs]
    assert rendered == [5, 5], outputs

    records = valid(cache_dir)
    assert len(records) == 10
    jobs = build_jobs(range(7), {"layer2": [0, 1, 2]}, seeds=1)
    for index in (0, 1):
        expected = {(j.objective.id, j.seed) for j in select_shard(jobs, Shard(index, 2))}
        got = {(r["objective"]["id"], r["seed"]) for r in records.values() if r["timing"]["shard"] == f"{index}/2"}
        assert got == expected
    # one process over the whole list now finds everything, and renders nothing again
    assert main(["render", "--config", str(config), "--full", "--no-progress", "--device", "cpu"]) == 0
    assert "0 rendered, 10 reused from cache, 0 failed of 10" in capsys.readouterr().out
    assert valid(cache_dir) == records


def test_make_atlas_on_a_cpu_renders_the_subset_says_so_and_builds_the_site(tmp_path, capsys, monkeypatch):
    """The `make atlas` path (render with no flags, then build) on a machine without a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = cli_config(tmp_path, classes="all", layers={"layer2": "all"})
    assert main(["render", "--config", str(config), "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("atlas render: no GPU found: rendering the CPU subset")
    assert "classes 3,5" in lines[0] and "layer4 top:1" in lines[0] and "atlas render --full" in lines[0]
    assert "done: 3 rendered, 0 reused from cache, 0 failed of 3" in lines[-2]
    assert "for the full atlas run: atlas render --full" in lines[-1]
    records = valid(tmp_path / "cache")
    top = int(classifier_weights(load_model("test_resnet", random_weights=True)).norm(dim=0).argmax())
    assert sorted(r["objective"]["id"] for r in records.values()) == [f"channel:layer4:{top}", "class:3", "class:5"]
    assert all([m["name"] for m in r["scores"]["models"]] == ["test_resnet", "test_efficientnet"]
               for r in records.values())

    site = tmp_path / "site"
    assert main(["build", "--cache", str(tmp_path / "cache"), "--out", str(site)]) == 0
    for number in ("0003", "0005"):
        page = (site / "test_resnet" / "classes" / f"{number}.html").read_text()
        assert "Not rendered yet" not in page and "MACO visualization of" in page
