"""The class objective as a setting: `class_objective` in atlas.toml picks what a class picture
maximises, the cache keys it apart, and a class page shows one objective's pictures and names it."""

from __future__ import annotations

import time

import pytest

from atlas import config as config_module
from atlas.cache import Cache
from atlas.cli import main
from atlas.errors import AtlasError
from atlas.objectives import CLASS_OBJECTIVES, class_blend, class_logit, class_logprob, parse_objective
from tests.config_support import write_config


def test_the_config_names_are_the_objectives_names():
    assert config_module.CLASS_OBJECTIVE_NAMES == tuple(CLASS_OBJECTIVES)
    assert class_blend(7).id == "class:7+logprob:7" == CLASS_OBJECTIVES["blend"](7).id


def test_a_class_objective_targets_its_class_and_nothing_else_does():
    assert [CLASS_OBJECTIVES[name](7).class_index for name in CLASS_OBJECTIVES] == [7, 7, 7, 7]
    assert (class_logit(7) - class_logprob(7)).class_index is None  # pushes its own class down
    assert (class_logit(7) + class_logit(8)).class_index is None  # two classes
    assert parse_objective("class:3+channel:layer4:1").class_index is None


def test_a_bad_class_objective_is_one_line_naming_the_choices(tmp_path):
    path = write_config(tmp_path, "test_resnet", class_objective="logprobs")
    with pytest.raises(AtlasError, match="class_objective.*logit, margin, logprob, blend"):
        config_module.load_config(path)


def _next_second() -> None:
    time.sleep(1 - time.time() % 1 + 0.01)


def test_class_pictures_follow_the_setting_and_a_page_shows_the_newest_objective(tmp_path, capsys):
    site = tmp_path / "site"
    ids = {}
    for name in ("logit", "blend"):
        path = write_config(tmp_path, "test_resnet", classes="2", layers={}, judges=[], class_objective=name)
        _next_second()  # finish times are kept to the second: the blend must be the newer one
        assert main(["render", "--config", str(path), "--full", "--no-progress"]) == 0
        ids[name] = {r.objective.id for r in Cache(tmp_path / "cache").render_records()}
    assert ids == {"logit": {"class:2"}, "blend": {"class:2", "class:2+logprob:2"}}  # keyed apart, both kept
    assert main(["render", "--config", str(path), "--full", "--no-progress"]) == 0
    assert "0 rendered, 1 reused from cache" in capsys.readouterr().out  # the blend's own entry is reused

    assert main(["build", "--config", str(path), "--out", str(site)]) == 0
    page = (site / "test_resnet" / "classes" / "0002.html").read_text()
    assert "objective: class 2&#39;s logit + log-probability</p>" in page  # the page names what its picture maximises
    blend_seed = next(r.seed for r in Cache(tmp_path / "cache").render_records() if r.objective.id != "class:2")
    logit_seed = next(r.seed for r in Cache(tmp_path / "cache").render_records() if r.objective.id == "class:2")
    assert f"seed{blend_seed}" in page and f"seed{logit_seed}" not in page  # one objective's pictures


def test_a_class_picture_s_objective_reads_as_words_and_anything_else_keeps_its_own_description():
    from atlas.record import class_objective_words

    assert class_objective_words(class_blend(7).id, 7) == ["logit", "log-probability"]
    assert class_objective_words(CLASS_OBJECTIVES["margin"](7).id, 7) == ["logit minus the mean of the others"]
    for other in ((class_logit(7) * 0.5).id, (class_logit(7) + class_logit(8)).id, class_logit(8).id):
        assert class_objective_words(other, 7) is None
