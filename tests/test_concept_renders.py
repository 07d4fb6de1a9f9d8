"""`atlas render` renders the concepts of the cache's concept banks: direction jobs keyed by their
vector, through the same job list, sharding, cache, records and scoring as class logits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from atlas import pipeline
from atlas.cache import Cache
from atlas.concepts import store
from atlas.concepts.run import ConceptRequest, run_concepts
from atlas.config import load_config, override
from atlas.jobs import Shard
from atlas.models import load_model
from atlas.plan import make_plan
from atlas.record import InvalidRecord, ObjectiveInfo
from tests.concept_folders import make_folder, one_thread  # noqa: F401 - a fixture
from tests.config_support import write_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def banked(tmp_path_factory) -> Path:
    """A folder with an atlas.toml and a cache holding the concept banks (2 concepts) of classes 0 and 1."""
    root = tmp_path_factory.mktemp("banked")
    loaded = load_model("test_efficientnet", random_weights=True)
    make_folder(root / "images", {"n01440764": 2, "n01443537": 2}, loaded.input_size)
    run_concepts(loaded, ConceptRequest(images=root / "images", cache=root / "cache", concepts=2, per_class=4,
                                        patch=64, crops=2, batch_size=16), report=lambda line: None)
    return root


def load_config_in(folder: Path, classes: str):
    return load_config(write_config(folder, "test_efficientnet", classes=classes, batch_size=4, scoring={"crops": 2}))


def request_in(folder: Path, classes: str = "0-1", **changes) -> pipeline.RenderRequest:
    config = load_config_in(folder, classes)
    return pipeline.RenderRequest(config=config, selection=override(config.full), device="cpu",
                                  batch_size=config.batch_size, **changes)


def concept_records(cache: Path) -> list:
    return [r for r in Cache(cache).render_records(verify=True) if r.objective.kind == "concept"]


def test_render_renders_every_concept_of_the_banks_once(banked):
    first = pipeline.run(request_in(banked), report=lambda line: None)
    assert (first.total, first.rendered) == (2 + 4, 6)  # two class logits, two concepts each
    banks = store.current_banks(banked / "cache", "test_efficientnet", first_weights(banked))
    expected = {(b.class_index, b.layer, store.visualization_id(b, c)) for b in banks.values() for c in b.concepts}
    records = concept_records(banked / "cache")
    assert {(r.objective.class_index, r.objective.layer, r.objective.id) for r in records} == expected
    assert all(r.status == "ok" and r.seed_index == 0 and "concept" in r.objective.description for r in records)
    # scored like a class logit: how often the picture reads as its bank's class
    assert all(r.scores.models[0].target_top5_rate is not None for r in records)
    # and measured against its bank: the own concept's share and rank among the bank's 2 concepts
    assert all(r.expression.concepts == 2 and r.expression.rank in (1, 2) and 0 <= r.expression.share <= 1
               for r in records)
    assert all(r.expression is None for r in Cache(banked / "cache").render_records() if r.objective.kind == "class")
    again = pipeline.run(request_in(banked), report=lambda line: None)
    assert (again.rendered, again.reused) == (0, 6)


def first_weights(banked: Path) -> str:
    return next(store.banks(banked / "cache")).weights_sha256


def test_concepts_follow_the_class_selection_and_shards_cover_them_once(banked):
    config = load_config_in(banked, "0-1")
    loaded = load_model("test_efficientnet", random_weights=True)
    cache = Cache(banked / "cache")
    whole = make_plan(config, override(config.full), Shard(), loaded, cache)
    concept_jobs = [p.job for p in whole.jobs if p.job.concept_of is not None]
    assert len(concept_jobs) == 4 and {j.concept_of for j in concept_jobs} == {0, 1}
    shards = [make_plan(config, override(config.full), Shard(i, 2), loaded, cache) for i in range(2)]
    keys = [p.key for plan in shards for p in plan.jobs]
    assert sorted(keys) == sorted(p.key for p in whole.jobs) and len(set(keys)) == len(keys)
    one = load_config_in(banked, "1")
    only_one = make_plan(one, override(one.full), Shard(), loaded, cache)
    assert {p.job.concept_of for p in only_one.jobs if p.job.concept_of is not None} == {1}


def test_a_concept_objective_must_name_its_class_and_layer():
    with pytest.raises(InvalidRecord, match="concept objective without class_index and layer"):
        ObjectiveInfo("direction:bn2:dot:0123456789ab", "concept", "x", None, "bn2", None)
    info = ObjectiveInfo("direction:bn2:dot:0123456789ab", "concept", "x", 3, "bn2", None)
    assert dataclasses.asdict(info)["class_index"] == 3


def test_the_visualization_id_is_the_objectives_own_id(banked):
    from atlas.concepts.craft import concept_objective

    bank = next(store.banks(banked / "cache"))
    for concept in bank.concepts:
        objective = concept_objective(bank.layer, concept.values, cosine=store.VISUALIZATION_COSINE)
        assert store.visualization_id(bank, concept) == objective.id
