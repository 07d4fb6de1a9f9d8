"""One settings value: the cache key material, the record's settings and the engine's arguments."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from atlas.config import Config, PresetChoice, override
from atlas.errors import AtlasError
from atlas.kind import content_key
from atlas.presets import get_preset
from atlas.settings import ENGINE_VERSION, RenderSettings
from atlas.spectrum import DEFAULT_SPECTRUM_SHA256


def test_settings_come_from_the_config_and_the_selection_once():
    config = dataclasses.replace(Config(), param="fourier", bf16=True, channels_last=True)
    selection = override(config.cpu, steps=3, canvas=64)
    settings = RenderSettings.from_config(config, selection)
    assert settings.preset == get_preset("cpu-best", steps=3, canvas=64)
    assert (settings.param, settings.bf16, settings.channels_last) == ("fourier", True, True)
    assert settings.spectrum_sha256 == DEFAULT_SPECTRUM_SHA256 and settings.spectrum.shape[0] == 3
    assert settings.precision == "bf16 autocast" and RenderSettings.make("cpu").precision == "fp32"


def test_the_key_material_is_the_documented_one_and_bf16_alone_adds_to_it():
    plain = RenderSettings.make("cpu")
    material = plain.key_material("m", "0" * 64, "class:1", 7)
    assert material == {"engine_version": ENGINE_VERSION, "model": "m", "weights_sha256": "0" * 64,
                        "objective": "class:1", "preset": plain.preset.to_dict(), "canvas": plain.preset.canvas,
                        "seed": 7, "spectrum_sha256": DEFAULT_SPECTRUM_SHA256, "param": "maco"}
    layout = dataclasses.replace(plain, channels_last=True)  # the same images: the same key
    assert layout.key_material("m", "0" * 64, "class:1", 7) == material
    bf16 = dataclasses.replace(plain, bf16=True)
    assert bf16.key_material("m", "0" * 64, "class:1", 7) == material | {"autocast_bf16": True}
    flat = RenderSettings.make("cpu", spectrum=np.ones((3, 8, 5), np.float32))
    assert content_key(flat.key_material("m", "0" * 64, "class:1", 7)) != content_key(material)


def test_record_fields_say_what_the_key_says():
    settings = RenderSettings.make("cpu", steps=5, bf16=True)
    assert settings.record_fields() == {"preset": get_preset("cpu", steps=5).to_dict(), "param": "maco",
                                        "precision": "bf16 autocast", "spectrum_sha256": DEFAULT_SPECTRUM_SHA256,
                                        "engine_version": ENGINE_VERSION}


def test_with_steps_changes_the_steps_and_nothing_else():
    settings = RenderSettings.make("atlas", bf16=True, channels_last=True)
    probe = settings.with_steps(2)
    assert probe.preset.steps == 2 and dataclasses.replace(probe, preset=settings.preset) == settings


def test_bad_settings_are_one_line_errors():
    with pytest.raises(AtlasError, match="unknown preset 'fast'"):
        RenderSettings.from_config(Config(), override(Config().cpu, preset="fast"))
    with pytest.raises(AtlasError, match="spectrum has shape"):
        RenderSettings.make("cpu", spectrum=np.ones((2, 8, 5), np.float32))
    bad = dataclasses.replace(Config().cpu, preset=PresetChoice("cpu", 1, (("crop_min", 2.0),)))
    with pytest.raises(AtlasError, match="crop_min"):
        RenderSettings.from_config(Config(), bad)
