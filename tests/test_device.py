"""The one device resolver: auto, torchrun's LOCAL_RANK, and errors that name the fix."""

from __future__ import annotations

import pytest
import torch

from atlas.device import hardware, resolve_device
from atlas.errors import AtlasError


def test_device_resolution_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", {"LOCAL_RANK": "1"}) == "cpu"  # torchrun without GPUs stays on the CPU
    assert resolve_device(torch.device("cpu"), {}) == "cpu"
    with pytest.raises(AtlasError, match="--device cpu"):
        resolve_device("cuda", {})
    for bad in ("tpu", "gpu0", "cuda:x"):
        with pytest.raises(AtlasError, match="unknown device"):
            resolve_device(bad, {})


def test_device_resolution_with_two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", {"LOCAL_RANK": "1"}) == "cuda:1"  # torchrun's LOCAL_RANK picks the GPU
    assert resolve_device("cuda", {"LOCAL_RANK": "0"}) == "cuda:0"
    assert resolve_device("cpu", {"LOCAL_RANK": "1"}) == "cpu"
    assert resolve_device("auto", {}) == "cuda" and resolve_device("cuda:0", {}) == "cuda:0"
    with pytest.raises(AtlasError, match="has 2 GPU"):
        resolve_device("cuda:2", {})


def test_hardware_names_the_cpu():
    assert "CPU" in hardware("cpu") and torch.__version__ in hardware("cpu")
