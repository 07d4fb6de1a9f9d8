"""`atlas render` of several models judges each model's pictures by the others (atlas.crossjudge)."""

from __future__ import annotations

import dataclasses

from atlas import judgment, pipeline, store
from atlas.config import CPU_CROPS, ModelEntry, load_config
from atlas.crossjudge import judge_across
from tests.config_support import write_config


def test_without_scoring_crops_the_judgments_use_the_devices_crops(tmp_path):
    config = load_config(write_config(tmp_path, "test_resnet", classes="1", batch_size=1))
    assert config.scoring.crops is None  # as in the shipped atlas.toml
    config = dataclasses.replace(config, models=(ModelEntry("test_resnet"), ModelEntry("test_efficientnet")))
    configs = config.model_configs()
    for own in configs:
        pipeline.run(pipeline.RenderRequest(config=own, selection=own.full, device="cpu"), report=lambda _: None)
    assert judge_across(configs, "cpu", report=lambda _: None) == 2
    found = list(store.entries(config.cache, judgment.KIND.name))
    assert sorted(j.judge for j in found) == ["test_efficientnet", "test_resnet"]
    assert {j.crops for j in found} == {CPU_CROPS}
