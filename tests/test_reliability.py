"""Nothing lost, nothing destroyed: signals, one-line errors of the smaller commands,
and `atlas render` and `atlas build` killed at random moments, then run again."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlas.atomic import is_temporary
from atlas.cache import Cache
from atlas.cli import main
from atlas.errors import AtlasError
from atlas.evaluate import real_image_paths
from atlas.site.build import MARKER
from atlas.site.check import inspect_site
from atlas.site.publish import publish
from tests.site_support import SAMPLE_CACHE, sample_site
from tests.test_render_cli import cli_config

ROOT = Path(__file__).resolve().parents[1]

JOBS = 6
USER_FILES = {"CNAME": "atlas.example.org\n", "robots.txt": "User-agent: *\nAllow: /\n",
              "notes/mine.md": "my notes", "classes/my-page.html": "<p>mine</p>"}


def atlas(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-m", "atlas", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def kill_at(process: subprocess.Popen, delay: float) -> None:
    time.sleep(delay)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)


def entry_states(cache_dir: Path) -> dict[str, str]:
    cache = Cache(cache_dir)
    return {key: cache.check(key).status for key in cache.keys()}


def site_files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def assert_user_files_kept(out: Path) -> None:
    for rel, text in USER_FILES.items():
        assert (out / rel).read_text(encoding="utf-8") == text, rel


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 22, 33])
def test_render_and_build_killed_at_random_moments_lose_nothing(tmp_path, seed):
    rng = random.Random(seed)
    config = cli_config(tmp_path, classes="0-3", layers={"layer4": "0-1"})
    cache_dir, out = tmp_path / "cache", tmp_path / "site"

    # 1. A render killed anywhere from start-up to the middle of its batches.
    kill_at(atlas("render", "--config", str(config), "--full", "--no-progress"), rng.uniform(1.0, 25.0))
    assert "corrupt" not in entry_states(cache_dir).values(), seed

    # 2. A first build of whatever is there, killed at a random moment, then run again.
    if (cache_dir / "models").is_dir():
        kill_at(atlas("build", "--config", str(config)), rng.uniform(0.0, 4.0))
        if out.exists():  # the marker comes first: a folder atlas started is one it accepts again
            assert (out / MARKER).is_file() or all(is_temporary(p.name) for p in out.iterdir()), seed
        rc, _, err = finish(atlas("build", "--config", str(config)))
        assert rc == 0, (seed, err)

    # 3. The render resumes and completes: every entry valid.
    rc, stdout, err = finish(atlas("render", "--config", str(config), "--full", "--no-progress"))
    assert rc == 0, (seed, stdout, err)
    states = entry_states(cache_dir)
    assert list(states.values()) == ["ok"] * JOBS, (seed, states)
    assert not [p for p in cache_dir.rglob("*") if p.name.endswith(".tmp")]
    if not (out / MARKER).is_file():  # the first render was killed before it left anything to build
        rc, _, err = finish(atlas("build", "--config", str(config)))
        assert rc == 0, (seed, err)
    for rel, text in USER_FILES.items():  # a user's files in the built site
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")

    # 4. A build killed at a random moment: publishing now pushes nothing; the rerun completes.
    kill_at(atlas("build", "--config", str(config)), rng.uniform(0.0, 4.0))
    assert_user_files_kept(out)
    marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    if not marker["complete"]:
        remote = tmp_path / "pages.git"
        subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)
        with pytest.raises(AtlasError, match="did not finish"):
            publish(out, str(remote), project=tmp_path)
    rc, stdout, err = finish(atlas("build", "--config", str(config)))
    assert rc == 0 and "links checked" in stdout, (seed, stdout, err)

    # The site is complete and clean, and nothing of the user's was lost.
    assert_user_files_kept(out)
    assert json.loads((out / MARKER).read_text(encoding="utf-8"))["complete"] is True
    assert inspect_site(out).problems == []
    media = {f.split("/")[1] for f in site_files(out) if f.startswith("media/")}
    assert len(media) == JOBS, seed
    for index in range(4):
        assert "Not rendered yet" not in (out / "test_resnet" / f"classes/{index:04d}.html").read_text(encoding="utf-8")
    assert not [f for f in site_files(out) if is_temporary(f.rsplit("/", 1)[-1])]
    listed = set(json.loads((out / MARKER).read_text(encoding="utf-8"))["files"])
    assert site_files(out) - listed == set(USER_FILES) | {MARKER}

    # 5. A folder of the site replaced by a link: the build names it and writes nothing through it.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "atlas.css").write_text("someone else's", encoding="utf-8")
    shutil.rmtree(out / "static")
    (out / "static").symlink_to(elsewhere, target_is_directory=True)
    rc, _, err = finish(atlas("build", "--config", str(config)))
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "static is a symlink" in err, (seed, err)
    assert [p.name for p in elsewhere.iterdir()] == ["atlas.css"], seed
    assert (elsewhere / "atlas.css").read_text(encoding="utf-8") == "someone else's"
    assert (out / "static").is_symlink()
    (out / "static").unlink()
    rc, _, err = finish(atlas("build", "--config", str(config)))
    assert rc == 0 and inspect_site(out).problems == [], (seed, err)
    assert_user_files_kept(out)


def test_sigterm_is_how_serve_stops_in_one_line(tmp_path_factory):
    site = sample_site(tmp_path_factory)
    process = atlas("serve", "--out", str(site), "--port", "0")
    assert "serving" in process.stdout.readline()
    process.send_signal(signal.SIGTERM)
    rc, out, err = finish(process, 60)
    assert rc == 0 and err == "", err  # nothing was interrupted: there is no command to run again
    assert out.strip().splitlines() == ["atlas serve: stopped serving"]


def test_eval_with_an_empty_class_folder_is_one_line_before_any_model_loads(tmp_path, capsys):
    images = tmp_path / "photos"
    (images / "n01443537").mkdir(parents=True)  # class 1, rendered in the sample cache; no photos in it
    (images / "n01443537" / "readme.txt").write_text("photos go here", encoding="utf-8")
    assert main(["eval", "--images", str(images), "--cache", str(SAMPLE_CACHE)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no photos in" in err[0] and "n01443537" in err[0], err
    with pytest.raises(AtlasError, match="no photos"):
        real_image_paths(images / "n01443537")


def test_spectrum_to_an_existing_folder_is_one_line_and_leaves_no_partial_file(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    target = tmp_path / "spectrum.npy"
    target.mkdir()
    assert main(["spectrum", str(photos), "-o", str(target), "--size", "16", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a folder" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "spectrum.npy"]
    assert not list(target.iterdir())

    good = tmp_path / "out" / "s.npy"
    assert main(["spectrum", str(photos), "-o", str(good), "--size", "16", "--quiet"]) == 0
    assert np.load(good).shape == (3, 16, 9) and sorted(p.name for p in good.parent.iterdir()) == ["s.npy"]
