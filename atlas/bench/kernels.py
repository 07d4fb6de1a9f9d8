"""Where a step's time goes, at the kernel level: ours against horama's one picture a call, and the
share of the card's peak arithmetic that a step reaches.

Under the torch profiler a run of a few steps is counted per step: the kernels launched, the
host-device synchronisations (a `.item()`, a copy to the host, an explicit synchronise), the host's
time against the time the device was busy, and the operators that take the host's time. A step
whose device is idle much of the time is bound by the host (launches, syncs, Python); one whose
device is busy is bound by its kernels, and the arithmetic it does (counted by
`torch.utils.flop_counter`) over its time, against the card's peak, says how well they use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from atlas.bench.runs import run_horama, run_ours, timed
from atlas.models import LoadedModel
from atlas.presets import Preset

LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")
SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "aten::_local_scalar_dense")
COPIES = ("cudaMemcpy", "cudaMemcpyAsync")
TOP = 8  # operators and kernels listed per profile

# Dense peak arithmetic of the cards this project is measured on, in TFLOP/s (NVIDIA's datasheets):
# fp32 on the CUDA cores, TF32 and bf16 on the tensor cores. The first name found in the device's wins.
PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0}),
    ("H100", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),
    ("H200", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}),
)


def card_peak(device_name: str) -> dict[str, float] | None:
    """The peak TFLOP/s of a card by its name (`torch.cuda.get_device_name`), None when unknown."""
    return next((peaks for name, peaks in PEAKS if name in device_name), None)


@dataclass(frozen=True)
class StepProfile:
    """Per step of one profiled run: counts and milliseconds."""

    implementation: str
    batch: int
    steps: int
    wall_ms: float  # the run's wall time per step
    device_busy_ms: float  # the device's kernels per step (0 on a CPU)
    launches: float  # kernels launched per step
    syncs: float  # host-device synchronisations per step (item(), synchronise calls)
    copies: float  # memory copies per step
    operators: float  # aten operators called per step
    host_top: tuple[tuple[str, float], ...]  # the operators with the most host time, ms per step
    device_top: tuple[tuple[str, float], ...]  # the kernels with the most device time, ms per step

    @property
    def device_busy_share(self) -> float:
        return self.device_busy_ms / self.wall_ms if self.wall_ms else 0.0


def profile_run(implementation: str, batch: int, steps: int, run: Callable[[], object], device: str) -> StepProfile:
    """`run` (one call of `steps` steps) under the profiler, counted per step."""
    cuda = str(device).startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        seconds = timed(run, device)
    events = prof.key_averages()

    def count(names: tuple[str, ...]) -> float:
        return sum(e.count for e in events if e.key in names) / steps

    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA] if cuda else []
    host = sorted((e for e in events if e.key.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)
    device_ms = sum(e.self_device_time_total for e in kernels) / 1000 / steps
    return StepProfile(
        implementation, batch, steps, 1000 * seconds / steps, device_ms,
        count(LAUNCHES), count(SYNCS), count(COPIES),
        sum(e.count for e in events if e.key.startswith("aten::")) / steps,
        tuple((e.key, round(e.self_cpu_time_total / 1000 / steps, 3)) for e in host[:TOP]),
        tuple((e.key[:80], round(e.self_device_time_total / 1000 / steps, 3))
              for e in sorted(kernels, key=lambda e: -e.self_device_time_total)[:TOP]))


def one_picture_profiles(loaded: LoadedModel, preset: Preset, steps: int, device: str,
                         references: bool = True) -> list[StepProfile]:
    """Ours and horama's maco at one picture a call, the same settings, each after a warm-up call."""
    timed_preset = replace(preset, steps=steps)
    run_ours(loaded, replace(preset, steps=1), 1, device)
    rows = [profile_run("atlas (ours)", 1, steps, lambda: run_ours(loaded, timed_preset, 1, device), device)]
    if references:
        run_horama(loaded, preset, 1, device)
        rows.append(profile_run("horama 0.3.0 maco", 1, steps, lambda: run_horama(loaded, preset, steps, device),
                                device))
    return rows


@dataclass(frozen=True)
class Arithmetic:
    """What one step of ours computes at a batch, and how fast, against the card's peak."""

    batch: int
    gflop_per_step: float  # forward and backward of every view, counted by torch.utils.flop_counter
    ms_per_step: float
    tflops: float  # achieved
    peak: dict[str, float] | None  # the card's, TFLOP/s (None: not a known card)

    def shares(self) -> dict[str, float]:
        return {kind: self.tflops / value for kind, value in (self.peak or {}).items()}


def step_flops(loaded: LoadedModel, preset: Preset, batch: int, device: str) -> float:
    """Floating-point operations of one optimisation step of `batch` pictures (one step's call, whose
    set-up does no model arithmetic)."""
    with FlopCounterMode(display=False) as counter:
        run_ours(loaded, replace(preset, steps=1), batch, device)
    return float(counter.get_total_flops())


def arithmetic(loaded: LoadedModel, preset: Preset, batch: int, steps: int, device: str) -> Arithmetic:
    flops = step_flops(loaded, preset, batch, device)  # a one-step render at this batch: also the warm-up
    _, seconds = run_ours(loaded, replace(preset, steps=steps), batch, device)
    per_step = seconds / steps
    peak = card_peak(torch.cuda.get_device_name(torch.device(device))) if str(device).startswith("cuda") else None
    return Arithmetic(batch, flops / 1e9, 1000 * per_step, flops / per_step / 1e12, peak)


def kernels_json(profiles: list[StepProfile], measured: list[Arithmetic]) -> dict[str, Any]:
    return {"profiles": [asdict(p) | {"device_busy_share": p.device_busy_share} for p in profiles],
            "arithmetic": [asdict(a) | {"shares": a.shares()} for a in measured]}
