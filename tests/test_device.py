"""The one device resolver: auto, torchrun's LOCAL_RANK, and errors that name the fix; the batch that fits."""

from __future__ import annotations

import pytest
import torch

from atlas.device import CPU_BATCH, MAX_AUTO_BATCH, auto_batch_size, hardware, resolve_device
from atlas.errors import AtlasError
from atlas.presets import get_preset


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


def test_auto_batch_size_on_the_cpu_is_fixed_by_the_views_a_step():
    def run(count: int) -> None:
        raise AssertionError("the CPU batch is not probed")

    assert CPU_BATCH > 1
    assert auto_batch_size("cpu", run, get_preset("cpu").views) == CPU_BATCH
    assert auto_batch_size("cpu", run, get_preset("cpu-best").views) == CPU_BATCH
    assert auto_batch_size("cpu", run, get_preset("atlas").views) == 1


def test_auto_batch_size_fills_80_percent_of_free_cuda_memory_with_what_a_sample_costs(monkeypatch):
    memory = {"allocated": 1000, "peak": 1000}

    def run(count: int) -> None:  # 300 bytes fixed + 200 a sample, above what was allocated before
        memory["peak"] = memory["allocated"] + 300 + 200 * count

    for name in ("synchronize", "empty_cache", "reset_peak_memory_stats"):
        monkeypatch.setattr(torch.cuda, name, lambda *args: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: memory["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: memory["peak"])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10_000, 80_000))
    assert auto_batch_size("cuda:0", run, 16) == (0.8 * 10_000 - 300) // 200
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10**12, 10**12))
    assert auto_batch_size("cuda:0", run, 16) == MAX_AUTO_BATCH
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (0, 80_000))
    assert auto_batch_size("cuda:0", run, 16) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_batch_size_of_a_real_render_on_cuda():
    from atlas.models import load_model
    from atlas.objectives import class_logit
    from atlas.render import render

    loaded = load_model("test_resnet", random_weights=True, device="cuda")
    preset = get_preset("cpu", canvas=64, steps=2)
    size = auto_batch_size("cuda", lambda count: render(loaded, [class_logit(0)] * count, preset, list(range(count)),
                                                        device="cuda"), preset.views)
    assert 1 <= size <= MAX_AUTO_BATCH
