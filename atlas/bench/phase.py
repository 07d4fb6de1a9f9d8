"""The reference phase on a card: whether its noisy pictures come from TF32, from batching, or from the method.

On an H100, pictures made with the reference phase (MACO's, without our random phase offsets) came
out noisy (high-frequency share 0.39-0.65, against about 0.002 on a CPU) while those with the offsets
did not. The rows here tell the suspects apart on the same classes and the same card: our engine at
the first `cpu` preset's settings (v1: the reference phase) one picture a call and K a call, horama
0.3.0 itself at those settings, v1 with its phase-to-picture path (standardising, inverse FFT,
colours, sigmoid) computed on the host while crops and model stay on the card, and v1 with the
offsets as the control; each with TF32 convolutions and matmuls on (cuDNN's default on recent cards)
and off.

Cleared on a CPU (docs/benchmarks.md): convolutions rounded to TF32 or coarser, noise added to the
picture's gradient, and an inverse FFT that reads only half of the self-conjugate columns all leave
v1's pictures clean there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

import atlas.param
from atlas.bench.runs import run_horama, run_ours
from atlas.bench.search import CPU_BEFORE
from atlas.entry import to_uint8
from atlas.imagestats import image_stats
from atlas.models import LoadedModel
from atlas.presets import Preset, get_preset

NOISY = 0.05  # a picture whose high-frequency share is above this is noise (clean ones measure 0.001-0.003)


@dataclass(frozen=True)
class PhaseRow:
    """One way of rendering the same classes, and what its pictures measure."""

    config: str
    tf32: bool | None  # None: a device without TF32
    seconds: float
    high_frequency: tuple[float, ...]  # each picture's share (atlas.imagestats)
    corner_ratio: tuple[float, ...]

    @property
    def noisy(self) -> int:
        return sum(share > NOISY for share in self.high_frequency)

    def cells(self) -> list[object]:
        tf32 = "n/a" if self.tf32 is None else ("on" if self.tf32 else "off")
        return [self.config, tf32, f"{self.noisy} of {len(self.high_frequency)}",
                f"{1000 * float(np.mean(self.high_frequency)):.1f}‰", f"{1000 * max(self.high_frequency):.1f}‰",
                f"{float(np.mean(self.corner_ratio)):.2f}", f"{self.seconds:.1f}"]


HEADER = ["config", "TF32", f"noisy (HF share > {1000 * NOISY:.0f}‰)", "HF share, mean", "HF share, max",
          "corner ratio", "seconds"]


@contextlib.contextmanager
def tf32(allowed: bool | None) -> Iterator[None]:
    """TF32 convolutions and matmuls on or off inside the block (None: as they are)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if allowed is not None:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@contextlib.contextmanager
def picture_on_host() -> Iterator[None]:
    """MACO's phase-to-picture path on the CPU inside the block, the crops and the model where they were.

    A diagnostic seam: the engine has no such option, so the bench swaps atlas.param's function and
    puts it back; autograd carries the gradient across the two devices."""
    make = atlas.param.maco_image

    def on_host(phase: torch.Tensor, magnitude: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        return make(phase.cpu(), magnitude.cpu(), None if offset is None else offset.cpu()).to(phase.device)

    atlas.param.maco_image = on_host
    try:
        yield
    finally:
        atlas.param.maco_image = make


def reference_preset(steps: int | None = None, **fields: object) -> Preset:
    """The first `cpu` preset (the reference phase), with `steps` and other `fields` changed."""
    return get_preset("cpu", **{**CPU_BEFORE, **({"steps": steps} if steps is not None else {}), **fields})


def _stats(images: Sequence[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each picture's high-frequency share and corner ratio, measured on it as stored (8 bits)."""
    stats = [image_stats(to_uint8(image)) for image in images]
    return tuple(s["high_frequency_share"] for s in stats), tuple(s["corner_ratio"] for s in stats)


def phase_rows(loaded: LoadedModel, classes: Sequence[int], device: str, *, steps: int | None = None,
               references: bool = True) -> list[PhaseRow]:
    """Every row above on `classes`; on a CUDA device each row twice, TF32 on and off."""
    v1 = reference_preset(steps)
    offsets = replace(v1, phase_offset=True)
    k = len(classes)

    def ours(preset: Preset, batch: int, host_picture: bool = False) -> Callable[[], tuple[list[torch.Tensor], float]]:
        def run() -> tuple[list[torch.Tensor], float]:
            images, total = [], 0.0
            with picture_on_host() if host_picture else contextlib.nullcontext():
                for start in range(0, k, batch):
                    made, seconds = run_ours(loaded, preset, batch, device, classes=classes[start:start + batch],
                                             seed=start)
                    images += list(made)
                    total += seconds
            return images, total
        return run

    def horama() -> tuple[list[torch.Tensor], float]:
        made = [run_horama(loaded, v1, v1.steps, device, index=c) for c in classes]
        return [image for image, _ in made], sum(seconds for _, seconds in made)

    configs: list[tuple[str, Callable[[], tuple[list[torch.Tensor], float]]]] = [
        ("ours · v1 (reference phase) · 1 a call", ours(v1, 1)),
        (f"ours · v1 · {k} a call", ours(v1, k)),
        (f"ours · v1 · {k} a call · picture made on the CPU", ours(v1, k, host_picture=True)),
    ]
    if references:
        configs.append(("horama 0.3.0 · v1's settings", horama))
    configs.append((f"ours · v1 + phase offsets · {k} a call", ours(offsets, k)))
    modes: tuple[bool | None, ...] = (True, False) if str(device).startswith("cuda") else (None,)
    run_ours(loaded, replace(v1, steps=1), 1, device, classes=classes[:1])  # warm-up: allocator, kernels
    rows = []
    for mode in modes:
        for label, run in configs:
            with tf32(mode):
                images, seconds = run()
            high, corner = _stats(images)
            rows.append(PhaseRow(label, mode, seconds, high, corner))
    return rows
