"""Cache entries: keys, atomic writes, validation of corrupt entries, a full disk, stale temporaries."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from atlas import atomic
from atlas.cache import ATTRIBUTION, IMAGE, RECORD, Cache, encode_npy, encode_png
from atlas.errors import AtlasError
from atlas.kind import content_key
from atlas.model_record import ClassInfo, LayerInfo, ModelInfo
from atlas.typed_json import FileInfo
from tests.record_support import render_record

KEY = content_key({"objective": "class:1", "seed": 0})


def files(seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {
        IMAGE: encode_png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)),
        ATTRIBUTION: encode_npy(rng.random((8, 8), dtype=np.float32)),
    }


def record(**changes):
    return render_record(**changes)


def _edit_record(folder, **changes) -> None:
    (folder / RECORD).write_text(json.dumps({**json.loads((folder / RECORD).read_text()), **changes}))


def test_key_is_order_independent_and_sensitive_to_every_value():
    a = content_key({"model": "m", "seed": 0, "preset": {"steps": 4, "canvas": 32}})
    assert a == content_key({"preset": {"canvas": 32, "steps": 4}, "seed": 0, "model": "m"})
    assert a != content_key({"model": "m", "seed": 1, "preset": {"steps": 4, "canvas": 32}})
    assert a != content_key({"model": "m", "seed": 0, "preset": {"steps": 5, "canvas": 32}})
    assert len(a) == 64 and int(a, 16) >= 0
    # the key of every cached file: sha256 of the JSON with sorted keys and no spaces, pinned, since any change
    # to that text would make every cache already rendered look empty
    text = '{"model":"m","preset":{"canvas":32,"steps":4},"seed":0}'
    assert a == hashlib.sha256(text.encode()).hexdigest() == \
        "27dc5c6807c480484fc754d60f49c3c2253e9ff6ac238f040837dad798dd8dd3"
    assert content_key({"name": "é"}) == hashlib.sha256('{"name":"é"}'.encode()).hexdigest()  # UTF-8, not \u00e9


def test_written_entry_is_valid_and_lists_its_files(tmp_path):
    cache = Cache(tmp_path)
    cache.ensure_writable()
    assert cache.check(KEY).status == "missing"
    written = cache.write_entry(KEY, files(), record())
    state = cache.check(KEY)
    assert state.status == "ok" and state.done and state.record == written
    folder = cache.entry_dir(KEY)
    assert folder == tmp_path / "entries" / KEY[:2] / KEY
    assert sorted(p.name for p in folder.iterdir()) == [ATTRIBUTION, IMAGE, RECORD]
    assert written.files[IMAGE] == FileInfo.of((folder / IMAGE).read_bytes())
    assert json.loads((folder / RECORD).read_text())["format"] == 1 and written.key == KEY
    assert np.load(folder / ATTRIBUTION).shape == (8, 8)
    assert list(cache.keys()) == [KEY] and [r.key for r in cache.render_records()] == [KEY]


def test_failed_entry_has_no_image_and_counts_as_done(tmp_path):
    cache = Cache(tmp_path)
    cache.write_entry(KEY, files(), record())
    cache.write_entry(KEY, {}, record(status="failed", failure="loss was NaN twice"))
    state = cache.check(KEY)
    assert state.status == "failed" and state.done and state.reason == "loss was NaN twice"
    assert sorted(p.name for p in cache.entry_dir(KEY).iterdir()) == [RECORD]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: (d / RECORD).write_text('{"format": 1, "key"'), "not valid JSON"),
        (lambda d: (d / RECORD).write_bytes(b"\xff\xfe"), "not valid JSON"),
        (lambda d: (d / RECORD).write_text("[]"), "format-1"),
        (lambda d: (d / IMAGE).unlink(), "image.png is missing"),
        (lambda d: (d / ATTRIBUTION).write_bytes((d / ATTRIBUTION).read_bytes()[:-7]), "bytes"),
        (lambda d: (d / IMAGE).write_bytes(bytes(len((d / IMAGE).read_bytes()))), "sha256"),
        (lambda d: _edit_record(d, key="x"), "another key"),
        (lambda d: _edit_record(d, status="?"), "status"),
        (lambda d: _edit_record(d, seed="0"), "record.seed is str, expected int"),
    ],
)
def test_corrupt_entries_are_detected_and_can_be_rewritten(tmp_path, damage, reason):
    cache = Cache(tmp_path)
    cache.write_entry(KEY, files(), record())
    damage(cache.entry_dir(KEY))
    state = cache.check(KEY)
    assert state.status == "corrupt" and not state.done and reason in state.reason
    assert list(cache.render_records(verify=True)) == []
    cache.write_entry(KEY, files(1), record())
    assert cache.check(KEY).status == "ok"


def test_an_entry_without_its_record_is_not_an_entry(tmp_path):
    cache = Cache(tmp_path)
    cache.write_entry(KEY, files(), record())
    (cache.entry_dir(KEY) / RECORD).unlink()
    assert cache.check(KEY).status == "missing"
    assert list(cache.render_records()) == []


def fail_on_nth_write(monkeypatch, n: int, code: int = errno.ENOSPC):
    real = atomic.write_temp
    calls = {"n": 0}

    def write(path, data):
        calls["n"] += 1
        if calls["n"] == n:
            tmp = real(path, data[: len(data) // 2])  # a half-written temporary, like a real full disk
            os.unlink(tmp)
            raise OSError(code, os.strerror(code))
        return real(path, data)

    monkeypatch.setattr(atomic, "write_temp", write)


@pytest.mark.parametrize("nth", [1, 2, 3])
def test_full_disk_leaves_no_partial_entry(tmp_path, monkeypatch, nth):
    cache = Cache(tmp_path)
    other = content_key({"other": 1})
    cache.write_entry(other, files(), record())
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    fail_on_nth_write(monkeypatch, nth)
    with pytest.raises(AtlasError, match="disk full") as info:
        cache.write_entry(KEY, files(), record())
    assert "\n" not in str(info.value)
    assert cache.check(KEY).status == "missing"
    assert not cache.entry_dir(KEY).exists()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_full_disk_while_replacing_keeps_the_old_entry(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    old = cache.write_entry(KEY, files(), record())
    fail_on_nth_write(monkeypatch, 2)
    with pytest.raises(AtlasError, match="disk full"):
        cache.write_entry(KEY, files(1), record())
    state = cache.check(KEY)
    assert state.status == "ok" and state.record == old
    assert sorted(p.name for p in cache.entry_dir(KEY).iterdir()) == [ATTRIBUTION, IMAGE, RECORD]


def test_other_write_errors_and_unwritable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AtlasError, match="not writable.*--cache"):
        Cache(blocker / "cache").ensure_writable()
    fail_on_nth_write(monkeypatch, 1, errno.EACCES)
    with pytest.raises(AtlasError, match="cannot write"):
        Cache(tmp_path / "c").write_entry(KEY, files(), record())
    with pytest.raises(AtlasError, match="disk full"):
        fail_on_nth_write(monkeypatch, 1)
        Cache(tmp_path / "d").ensure_writable()


def test_two_writers_of_one_key_leave_one_consistent_entry(tmp_path, monkeypatch):
    """A second writer finishing while the first is mid-entry must not leave the first writer's
    record over the second writer's files."""
    cache = Cache(tmp_path)
    real_sync, turns = atomic.fsync_dir, {"n": 0}

    def second_writer_runs_now(folder):
        turns["n"] += 1
        if turns["n"] == 1:  # writer A is part-way through: writer B writes the same key whole
            cache.write_entry(KEY, files(2), record(seed=2))
        real_sync(folder)

    monkeypatch.setattr(atomic, "fsync_dir", second_writer_runs_now)
    cache.write_entry(KEY, files(1), record(seed=1))
    state = cache.check(KEY)
    assert state.status == "ok", state.reason
    assert state.record.seed in (1, 2)
    assert (cache.entry_dir(KEY) / IMAGE).read_bytes() == files(state.record.seed)[IMAGE]
    assert sorted(p.name for p in cache.entry_dir(KEY).parent.iterdir()) == [KEY]  # nothing set aside is left


def test_concurrent_writer_processes_never_mix_entries(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from atlas.cache import Cache, encode_npy, encode_png\n"
        "from tests.record_support import render_record\n"
        "me = int(sys.argv[1]); cache = Cache(sys.argv[2])\n"
        "for i in range(25):\n"
        "    rng = np.random.default_rng(me * 1000 + i)\n"
        "    files = {'image.png': encode_png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)),\n"
        "             'attribution.npy': encode_npy(rng.random((16, 16), dtype=np.float32))}\n"
        "    cache.write_entry(sys.argv[3], files, render_record(seed=me * 1000 + i))\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", script, str(n), str(tmp_path), KEY]) for n in range(3)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    assert Cache(tmp_path).check(KEY).status == "ok"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_a_rejected_run_leaves_no_cache_folders(tmp_path):
    Cache(tmp_path / "new" / "cache").ensure_writable()
    assert not (tmp_path / "new").exists()
    Cache(tmp_path).ensure_writable()
    assert not list(tmp_path.iterdir())


def test_model_file_roundtrip(tmp_path):
    cache = Cache(tmp_path)
    classes = (ClassInfo(0, "", "a", ()), ClassInfo(1, "", "b", ()))
    info = ModelInfo("hf-hub:timm/x", "0" * 64, "checkpoint x.pth", 2, classes, {0: ((1, 0.5),), 1: ((0, 0.5),)},
                     (LayerInfo("head", 4, 32),), {}, "cpu", "atlas test", "1" * 64)
    path = cache.write_model(info)
    assert path.name == "hf-hub_timm_x.json"
    assert cache.read_model("hf-hub:timm/x") == info
    assert cache.read_model("missing") is None
    path.write_text('{"format": 1, "name": "hf-hub:timm/x"}', encoding="utf-8")
    assert cache.read_model("hf-hub:timm/x") is None  # unreadable metadata: the pipeline writes it again


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    cache = Cache(tmp_path)
    folder = cache.entry_dir(KEY)
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = atomic._host()
    stale = folder / f".{IMAGE}.{host}.{int(dead.stdout)}.ab12cd34.tmp"
    live = folder / f".{RECORD}.{host}.{os.getpid()}.ab12cd34.tmp"
    remote = folder / f".{RECORD}.otherhost.1.ab12cd34.tmp"
    old_remote = folder / f".{IMAGE}.otherhost.1.ab12cd35.tmp"
    unrelated = folder / "notes.txt"
    for p in (stale, live, remote, old_remote, unrelated):
        p.write_bytes(b"x")
    os.utime(old_remote, (0, 0))
    staging = folder.parent / f".{KEY}.{host}.{int(dead.stdout)}.ab12cd36.tmp"  # a killed writer's whole entry
    staging.mkdir()
    (staging / IMAGE).write_bytes(b"x")
    assert cache.clean_stale() == 3
    assert not stale.exists() and not old_remote.exists() and not staging.exists()
    assert live.exists() and remote.exists() and unrelated.exists()
