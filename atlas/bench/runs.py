"""One timed render of each implementation: ours, horama 0.3.0 and torch-lucent 0.1.8, and the timing helpers.

Timings are wall-clock seconds of whole optimisation calls divided by their steps, so set-up costs
count the same for every implementation.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import torch

from atlas.models import LoadedModel
from atlas.objectives import CLASS_OBJECTIVES, Objective
from atlas.presets import Preset, get_preset
from atlas.render import render
from atlas.settings import RenderSettings
from atlas.spectrum import default_spectrum_path

SPEED_CLASS = 967  # espresso


def machine_preset(gpu: bool) -> Preset:
    """The preset each machine renders with: `atlas` on a GPU, `cpu` on a CPU."""
    return get_preset("atlas" if gpu else "cpu")


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def value_range(loaded: LoadedModel) -> tuple[float, float]:
    """The model-input range of a [0, 1] image, for the reference codes that feed a fixed range."""
    low = sum((0 - m) / s for m, s in zip(loaded.mean, loaded.std, strict=True)) / 3
    high = sum((1 - m) / s for m, s in zip(loaded.mean, loaded.std, strict=True)) / 3
    return (low, high)


@contextlib.contextmanager
def horama_workdir() -> Iterator[None]:
    """horama downloads its spectrum into the working directory unless the file is there: put it there."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(default_spectrum_path(), os.path.join(folder, "spectrum_decorrelated.npy"))
        os.chdir(folder)
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bars
                yield
        finally:
            os.chdir(previous)


def _logit_objective(loaded: LoadedModel, index: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda crops: loaded.module(crops)[:, index].mean()


def run_horama(loaded: LoadedModel, preset: Preset, steps: int, device: str, kind: str = "maco",
               index: int = SPEED_CLASS) -> tuple[torch.Tensor, float]:
    """One horama 0.3.0 run at the preset's settings; (image in [0, 1], seconds)."""
    import horama

    low, high = value_range(loaded)
    fn = horama.maco if kind == "maco" else horama.fourier
    out: dict[str, torch.Tensor] = {}
    with horama_workdir():
        seconds = timed(lambda: out.setdefault("image", fn(
            _logit_objective(loaded, index), total_steps=steps, learning_rate=preset.lr, image_size=preset.canvas,
            model_input_size=loaded.input_size, noise=preset.noise, values_range=(low, high),
            crops_per_iteration=preset.crops, box_size=(preset.crop_min, preset.crop_max), device=device)[0]), device)
    image = ((out["image"].detach().float().cpu() - low) / (high - low)).clamp(0, 1)
    return image, seconds


def run_lucent(loaded: LoadedModel, preset: Preset, steps: int, device: str, index: int = SPEED_CLASS) -> float:
    """torch-lucent 0.1.8's Fourier render (its own jitter/scale/rotate transforms, one view per step)."""
    from lucent.optvis import param
    from lucent.optvis import render as lucent_render

    def objective(hook):
        return -hook("labels")[:, index].mean()

    class Logits(torch.nn.Module):  # lucent hooks modules by name; give the logits one
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner
            self.labels = torch.nn.Identity()

        def forward(self, x):
            return self.labels(self.inner(x))

    wrapped = Logits(loaded.module).to(device).eval()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return timed(lambda: lucent_render.render_vis(
            wrapped, objective, lambda: param.image(preset.canvas), thresholds=(steps,), preprocess=False,
            progress=False, show_image=False, fixed_image_size=loaded.input_size), device)


def class_objective(name: str, index: int) -> Objective:
    return CLASS_OBJECTIVES[name](index)


def run_ours(loaded: LoadedModel, preset: Preset, batch: int, device: str, *, param: str = "maco",
             classes: Sequence[int] | None = None, seed: int = 0, autocast_bf16: bool = False,
             channels_last: bool = False, objective: str = "logit") -> tuple[torch.Tensor, float]:
    classes = list(classes) if classes is not None else [SPEED_CLASS] * batch
    objectives = [class_objective(objective, c) for c in classes]
    out = {}
    seeds = [seed + i for i in range(len(classes))]
    settings = RenderSettings.make(preset, param=param, bf16=autocast_bf16, channels_last=channels_last)
    seconds = timed(lambda: out.setdefault("r", render(loaded, objectives, settings, seeds, device=device)), device)
    return out["r"].images, seconds


def seconds_per_image(loaded: LoadedModel, preset: Preset, device: str, *, batch: int = 1, steps: int = 4,
                      **options) -> tuple[float, float]:
    """A preset's render time per image on `device`, from `steps` timed steps after a 1-step warm-up:
    (wall seconds, CPU seconds of this process). On a shared machine the wall time swings with the
    load; the CPU time of a 1-thread run (OMP_NUM_THREADS=1) counts only the work done."""
    run_ours(loaded, replace(preset, steps=1), batch, device, **options)
    cpu = time.process_time()
    _, seconds = run_ours(loaded, replace(preset, steps=steps), batch, device, **options)
    cpu = time.process_time() - cpu
    scale = preset.steps / steps / batch
    return seconds * scale, cpu * scale
