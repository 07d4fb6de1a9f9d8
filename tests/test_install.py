"""The package installs anywhere: a wheel built from the sources, installed into a fresh virtual
environment outside the checkout, builds a site and reads a model (no repository around it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.site_support import MODEL, SAMPLE_CACHE

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "atlas", "templates", "static")


def _run(args: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a PYTHONPATH would find the checkout
    run = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; returns its bin folder.  Dependencies come from this
    interpreter's site-packages through a .pth line (no download, no reinstalling torch); the
    editable install there is not seen, since a .pth line adds a folder without its .pth files."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a copy, so the build leaves no build/ or egg-info in the checkout
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", tmp / "dist", "."], cwd=src)
    (wheel,) = (tmp / "dist").glob("atlas-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    python = venv / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).stdout.strip()
    Path(purelib, "shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], cwd=tmp)
    shutil.rmtree(src)  # nothing of the sources is left to lean on
    return venv / "bin"


def test_installed_wheel_builds_the_sample_site_outside_the_checkout(installed, tmp_path):
    where = _run([installed / "python", "-c", "import atlas.site.write as w; print(w.__file__)"], cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(installed.parent)  # the wheel, not the checkout
    _run([installed / "atlas", "build", "--cache", SAMPLE_CACHE, "--out", tmp_path / "site"], cwd=tmp_path)
    html = (tmp_path / "site" / "efficientnet_lite0" / "classes" / "0967.html").read_text(encoding="utf-8")
    assert "espresso" in html and (tmp_path / "site" / "static" / "atlas.css").is_file()
    assert (tmp_path / "site" / "static" / "atlas.css").read_bytes() == (ROOT / "static" / "atlas.css").read_bytes()


@pytest.mark.slow
def test_installed_wheel_lists_the_layers_of_the_bundled_model(installed, tmp_path):
    out = _run([installed / "atlas", "layers", MODEL], cwd=tmp_path).stdout
    assert "blocks.5" in out and "conv_head" in out and "feeds the classifier" in out
