"""A render as a cache entry: the stored pixels and attribution, the files, the record's values."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from atlas.cache import ATTRIBUTION, IMAGE
from atlas.entry import attribution_map, entry_files, render_record, to_uint8
from atlas.jobs import Job
from atlas.models import imagenet_classes
from atlas.objectives import class_logit, direction
from atlas.plan import Plan, PlannedJob
from atlas.presets import get_preset
from atlas.record import Retry, Scores, Timing
from atlas.settings import ENGINE_VERSION, RenderSettings

LOADED = SimpleNamespace(name="test_model", weights_sha256="0" * 64, weights_source="random", input_size=32,
                         mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], num_classes=1000, classes=imagenet_classes())
SETTINGS = RenderSettings(get_preset("cpu", canvas=16), np.ones((3, 4, 3), np.float32), "1" * 64)
PLAN = Plan(LOADED, SETTINGS, [], 0)
TIMING = Timing(seconds=1.0, batch_size=2, device="cpu", finished="2026-01-01T00:00:00Z")


def test_stored_pixels_are_clipped_and_rounded_to_8_bits():
    image = torch.tensor([-0.5, 0.0, 0.5, 0.999, 1.5]).view(1, 1, 5).expand(3, 2, 5)
    pixels = to_uint8(image)
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 5, 3)
    assert pixels[0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_files_hold_the_image_as_stored_and_the_channel_mean_of_the_attribution():
    pixels = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    attribution = torch.arange(3 * 4 * 4, dtype=torch.float64).view(3, 4, 4)
    files = entry_files(pixels, attribution)
    assert sorted(files) == sorted([IMAGE, ATTRIBUTION])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(files[IMAGE]))), pixels)
    stored = np.load(io.BytesIO(files[ATTRIBUTION]))
    assert stored.dtype == np.float32 and np.array_equal(stored, attribution_map(attribution))
    assert np.allclose(stored, attribution.mean(dim=0).numpy())


def test_record_of_an_image_and_of_a_failure():
    item = PlannedJob(Job(class_logit(3), 0, 11), "a" * 64, None)
    judging = {"small": Scores(1, 0, ()), "large": Scores(2, 0, ()), "whole": Scores(1, 0, ())}
    ok = render_record(PLAN, item, seed=11, value=2.5, timing=TIMING, judging=judging, pixels=None)
    assert (ok.status, ok.failure, ok.objective_value, ok.seed, ok.retry) == ("ok", None, 2.5, 11, None)
    assert ok.scores == judging["large"] and ok.precision == "fp32" and ok.preset == SETTINGS.preset.to_dict()
    assert (ok.param, ok.spectrum_sha256, ok.engine_version) == ("maco", "1" * 64, ENGINE_VERSION)
    assert ok.model.mean == (0.5, 0.5, 0.5) and ok.objective.class_index == 3
    assert ok.objective.description.endswith(f" · {imagenet_classes()[3].name}")
    retry = Retry(11, "non-finite objective value (nan)")
    failed = render_record(PLAN, item, seed=12, value=float("nan"), timing=TIMING, judging=None,
                           pixels=None, retry=retry, failure="non-finite twice")
    assert (failed.status, failed.failure, failed.objective_value, failed.scores) == ("failed", "non-finite twice",
                                                                                      None, None)
    assert failed.retry == retry and failed.seed == 12


def test_a_concept_is_recorded_under_its_class_and_layer():
    concept = direction("layer4", torch.ones(8), cosine=True)
    item = PlannedJob(Job(concept, 0, 5, concept_of=7), "b" * 64, None)
    record = render_record(PLAN, item, seed=5, value=1.0, timing=TIMING, judging=None, pixels=None)
    info = record.objective
    assert (info.id, info.kind, info.class_index, info.layer, info.channel) == (concept.id, "concept", 7, "layer4",
                                                                                None)
    assert info.description.endswith(f" · {imagenet_classes()[7].name} · concept")
