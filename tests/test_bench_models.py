"""`atlas bench --only models`: a model added to an atlas, timed through `atlas render`'s own functions.

Three tiny random models stand in for Lite0/1/2 at a tiny `[cpu]` preset.  Class 26 is the class
test_resnet's random head calls these smooth pictures, so the matrix holds rates other than zero.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json

import pytest

from atlas import judgment, store
from atlas.bench import models as models_bench
from atlas.cache import Cache
from atlas.commands import bench as command
from atlas.record import target_rates
from tests.config_support import TINY_PRESET, write_config

MODELS = ("test_resnet", "test_efficientnet", "test_vit")
CLASSES = "1,26,980"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The command run once with --classes 2; its output, its JSON, the measurement and the cache it kept."""
    folder = tmp_path_factory.mktemp("models-bench")
    write_config(folder, "test_resnet", scoring={"crops": 2},
                 cpu={"classes": CLASSES, "judges": [], "preset": {**TINY_PRESET, "steps": 4}})
    cache = folder / "kept"
    measured = []
    real = models_bench.bench_models

    def kept(*args, **kwargs):
        measured.append(real(*args, models=MODELS, cache=cache, **kwargs))
        return measured[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setattr(models_bench, "bench_models", kept)
        patch.setattr("atlas.models.load_model", lambda name, **kw: None)  # the other parts' models
        args = argparse.Namespace(part="cpu", only=("models",), device="cpu", classes=2, heldout_classes=3,
                                  steps=None, images=None, out=folder / "out", no_tf32=False)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert command.run(args) == 0
    results = json.loads((folder / "out/results-cpu.json").read_text())
    return out.getvalue(), results, measured[0], cache


def test_each_added_model_renders_only_its_own_pictures(run):
    _, _, measured, cache = run
    assert measured.classes == (1, 26)  # --classes 2: the first two of the [cpu] subset
    assert [s.rendered for s in measured.steps] == [
        {"test_resnet": 2}, {"test_resnet": 0, "test_efficientnet": 2},
        {"test_resnet": 0, "test_efficientnet": 0, "test_vit": 2}]
    # each model judges the others' pictures once: n (n - 1) pictures' worth in all, each step only the new
    assert [s.judgments for s in measured.steps] == [0, 2 * 2, 2 * 2 + 2 * 2 * 1]
    records = list(Cache(cache).render_records())
    first = [r for r in records if r.model.name == "test_resnet"]
    later = [r for r in records if r.model.name != "test_resnet"]
    assert len(first) == 2 and len(later) == 4
    assert max(_written(cache, first)) < min(_written(cache, later))  # the first model's entries were not written again


def _written(cache, records) -> list[int]:
    return [p.stat().st_mtime_ns for r in records for p in Cache(cache).entry_dir(r.key).iterdir()]


def test_the_figures_are_measured_and_the_multiples_follow_from_them(run):
    _, results, measured, _ = run
    for step in measured.steps:
        assert step.render.wall > 0 and step.render.cpu > 0 and step.total.cpu > 0
    assert all(s.judging.wall > 0 and s.judging.cpu > 0 for s in measured.steps[1:])
    first = measured.steps[0].total.cpu
    rows = results["models"]["steps"]
    assert rows[0]["added_x_first"] == pytest.approx(1.0)
    assert rows[2]["atlas_x_first"] == pytest.approx(sum(s.total.cpu for s in measured.steps) / first)
    assert rows[1]["cpu_s_per_image"] == pytest.approx(measured.steps[1].render.cpu / 2)


def test_the_matrix_is_the_generators_own_scores_on_the_diagonal_and_the_judgments_off_it(run):
    _, results, measured, cache = run
    assert measured.matrix.judges == MODELS
    assert [(r.generator, r.pictures) for r in measured.matrix.rows] == [(m, 2) for m in MODELS]
    records = [r for r in Cache(cache).render_records() if r.status == "ok"]
    found = list(store.entries(cache, judgment.KIND.name))
    for row in measured.matrix.rows:
        own = [r for r in records if r.model.name == row.generator]
        for j, judge in enumerate(MODELS):
            if judge == row.generator:  # the record's own scores, made at render time
                expected = [target_rates(r.judging)["whole"][judge][0] for r in own]
            else:
                expected = [j_.scales["whole"].top1_rate for j_ in found
                            if j_.generator == row.generator and j_.judge == judge]
            assert len(expected) == 2
            assert row.cells[j][0] == pytest.approx(sum(expected) / 2), (row.generator, judge)
    assert any(cell[0] for row in measured.matrix.rows for cell in row.cells)  # not all zero
    assert [r["generator"] for r in results["models"]["matrix"]["rows"]] == list(MODELS)


def test_the_command_prints_both_tables(run):
    out, results, measured, _ = run
    assert "| model | pictures | render wall s | render CPU s | CPU s/image |" in out
    assert out.count("| test_") >= 6  # three steps and three matrix rows
    header = "| generator | pictures | test_resnet | test_efficientnet | test_vit |"
    assert header in out and "whole picture / large crops" in out
    assert results["command"] == "atlas bench --part cpu --only models"
