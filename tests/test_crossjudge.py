"""`atlas render` of several models judges each model's pictures by the others (atlas.crossjudge)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from atlas import judgment, pipeline, store
from atlas.cache import Cache, encode_png
from atlas.classifier import load_configured_model
from atlas.config import CPU_CROPS, ModelEntry, load_config
from atlas.crossjudge import judge_across
from atlas.record import IMAGE
from atlas.scoring import Judge, judge_images
from tests.config_support import TINY_PRESET, write_config


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
    assert all(j.per_picture_boxes for j in found)


def test_a_cached_picture_read_back_alone_is_judged_on_the_boxes_its_batch_judged_it_on(tmp_path):
    """Render-time judging (in a batch, on the render's pixels) and a later judging of the stored PNG
    draw the same boxes: each picture's own, from its pixels."""
    preset = {**TINY_PRESET, "canvas": 64}
    config = load_config(write_config(tmp_path, "test_resnet", classes="1,2,3", batch_size=3, preset=preset))
    pipeline.run(pipeline.RenderRequest(config=config, selection=config.full, device="cpu"), report=lambda _: None)
    generator = load_configured_model(config, device="cpu")
    cache = Cache(config.cache)
    found = [r for r in cache.render_records() if r.status == "ok"]
    assert len(found) == 3
    for rec in found:
        assert all(scores.per_picture_boxes for scores in rec.judging.values())
        with Image.open(cache.entry_dir(rec.key) / IMAGE) as image:
            pixels = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255
        small = rec.judging["small"]
        alone = judge_images(pixels, [Judge(generator, "generator")], [rec.objective.class_index],
                             crops=small.crops, seed=small.crop_seed)[0]
        for scale, scores in rec.judging.items():
            mine, theirs = scores.models[0], alone[scale].models[0]
            assert theirs.target_prob == pytest.approx(mine.target_prob, abs=1e-4)
            assert [t.prob for t in theirs.top5] == pytest.approx([t.prob for t in mine.top5], abs=1e-4)


def test_a_picture_changed_since_its_record_is_not_judged(tmp_path):
    """A judgment scores the picture its record names: one whose file was rewritten since is left for the
    render to redo, not judged on the other pixels."""
    config = load_config(write_config(tmp_path, "test_resnet", classes="1", batch_size=1))
    config = dataclasses.replace(config, models=(ModelEntry("test_resnet"), ModelEntry("test_efficientnet")))
    configs = config.model_configs()
    for own in configs:
        pipeline.run(pipeline.RenderRequest(config=own, selection=own.full, device="cpu"), report=lambda _: None)
    cache = Cache(config.cache)
    (changed,) = [r for r in cache.render_records() if r.status == "ok" and r.model.name == "test_resnet"]
    path = cache.entry_dir(changed.key) / IMAGE
    with Image.open(path) as image:
        path.write_bytes(encode_png(255 - np.asarray(image.convert("RGB"))))
    assert judge_across(configs, "cpu", report=lambda _: None) == 1
    (found,) = store.entries(config.cache, judgment.KIND.name)
    assert found.judge == "test_resnet" and found.generator == "test_efficientnet"
