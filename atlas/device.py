"""Devices: the one resolver from a setting ("auto", "cpu", "cuda", "cuda:N", "mps") to a
device that exists here, how to name the hardware in the model metadata, and how large a batch
fits on it."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Mapping

import torch

from atlas.errors import AtlasError

CHOICES = "auto, cpu, cuda, cuda:N or mps"
CPU_BATCH = 2  # `atlas bench` scaling on 2 cores, cpu preset: 276 images/h at batch 2, 233 at 1, 227 at 4, 159 at 8
# Past this many views a step, one picture at a time is faster on a CPU: at the `atlas` preset (16 views)
# two AMD EPYC threads took 0.58-0.69 s a step an image at batch 1 against 0.81-0.85 at batch 2, while at
# 8 views (`cpu-best`) the two batches cost the same
CPU_BATCH_MAX_VIEWS = 8
MAX_AUTO_BATCH = 64


def resolve_device(device: str | torch.device, environ: Mapping[str, str] | None = None) -> str:
    """"auto" -> a GPU when one is present, else the CPU; under torchrun "auto" and "cuda" mean
    cuda:LOCAL_RANK, so each process of a node takes its own GPU.  Raises for a device that
    does not exist on this machine, naming the ones that do."""
    env = os.environ if environ is None else environ
    device = str(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in env:
        device = f"cuda:{int(env['LOCAL_RANK'])}"
    try:
        kind, index = torch.device(device).type, torch.device(device).index
    except (RuntimeError, TypeError):
        raise AtlasError(f"unknown device {device!r}: use {CHOICES}") from None
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise AtlasError(f"device {device!r} asked for, but no CUDA GPU is available: use --device cpu")
        if index is not None and index >= torch.cuda.device_count():
            raise AtlasError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    elif kind == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise AtlasError("device 'mps' asked for, but this machine has no usable Apple GPU (MPS): "
                             "use --device cpu, or auto")
    elif kind != "cpu":
        raise AtlasError(f"unknown device {device!r}: use {CHOICES}")
    return device


def hardware(device: str) -> str:
    """The device, its software stack and its parallelism, in words."""
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        return f"{name} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    threads = torch.get_num_threads()
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, {threads} threads, torch {torch.__version__}"


def native_bf16(device: str | torch.device = "cpu", cpuinfo: str | None = None) -> bool:
    """Whether bf16 autocast can pay off on `device`: a CUDA card with bf16, or a CPU with bf16
    instructions (avx512_bf16 or amx_bf16). Without them the CPU emulates bf16, 7x slower than fp32
    on an AVX2-only AMD EPYC (docs/benchmarks.md). `cpuinfo` stands in for /proc/cpuinfo in tests."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return False  # not Linux: no cheap way to know, so no bf16
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_batch(views: int) -> int:
    """How many pictures a CPU renders together when each reads `views` crops and whole views a step."""
    return CPU_BATCH if views <= CPU_BATCH_MAX_VIEWS else 1


def auto_batch_size(device: str, run: Callable[[int], object], views: int) -> int:
    """CPU: a small fixed batch for pictures of `views` views a step.  CUDA: measure the peak memory
    of `run(1)` and `run(2)` (a batch of one and of two samples), and fill 80% of the free memory
    with what one more sample costs."""
    if not device.startswith("cuda"):
        return cpu_batch(views)
    peaks = []
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    for count in (1, 2):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        run(count)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    per_sample = max(peaks[1] - peaks[0], 1)
    fixed = max(peaks[0] - per_sample, 0)
    free, _total = torch.cuda.mem_get_info(device)
    return int(max(1, min(MAX_AUTO_BATCH, (0.8 * free - fixed) // per_sample)))
