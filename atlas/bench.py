"""Benchmarks: our engine against the reference implementations, scaling, and quality.

Every function measures and returns plain rows; `atlas.commands.bench` prints them as the
tables of docs/benchmarks.md. Timings are wall-clock seconds of whole optimisation calls
divided by their steps, so set-up costs count the same for every implementation.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import torch

from atlas.imagestats import image_stats
from atlas.judging import SCALES, judge_images
from atlas.models import LoadedModel
from atlas.objectives import class_logit
from atlas.presets import Preset
from atlas.record import target_rates
from atlas.render import render
from atlas.scoring import Judge
from atlas.spectrum import default_spectrum_path

# 50 classes spread evenly over the 1000 (10, 30, ..., 990): the fixed transferability list.
QUALITY_CLASSES = tuple(range(10, 1000, 20))
SPEED_CLASS = 967  # espresso

# The `cpu` preset before issue 12 (engine version 1): the reference's phase, 224 px crops of 0.4-0.8.
CPU_BEFORE = {"canvas": 256, "steps": 64, "crops": 4, "crop_min": 0.4, "crop_max": 0.8, "noise": 0.05, "lr": 1.0,
              "phase_offset": False, "input_scale": 1.0, "lr_end": 1.0, "crop_anneal": False}

# The settings search for the `cpu` preset (docs/benchmarks.md): rounds of (label, overrides of CPU_BEFORE).
# Cost on a CPU is about steps x crops x input_scale^2; the old preset is 64 x 4 x 1 = 256.
_MULTI = {"phase_offset": True, "crop_min": 0.25, "crop_max": 1.0, "input_scale": 0.72}
# Round 2 starts from round 1's pick, the `cpu` preset (48 x 4 x 0.72^2 = 99): the same cost spent
# otherwise, then more cost, to find what the small-scale targets would need.
_N = {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_max": 0.6, "canvas": 384}
SEARCH_ROUNDS: dict[int, tuple[tuple[str, dict], ...]] = {
    1: (
        ("before: v1 cpu", {}),
        ("v1 cpu + phase offset", {"phase_offset": True}),
        ("offset, 160 px", {"phase_offset": True, "input_scale": 0.72}),
        ("M: offset, 0.25-1.0, 160 px, 48 steps", {**_MULTI, "steps": 48}),
        ("M, 64 steps", {**_MULTI, "steps": 64}),
        ("M, 32 steps", {**_MULTI, "steps": 32}),
        ("M, anneal 1.0->0.25", {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_anneal": (1.0, 0.25)}),
        ("M, lr cosine to 0.1", {**_MULTI, "steps": 48, "lr_end": 0.1}),
        ("M, 6 crops, 32 steps", {**_MULTI, "steps": 32, "crops": 6}),
        ("M, 128 px, 64 steps", {**_MULTI, "steps": 64, "input_scale": 0.58}),
        ("M, 0.20-0.60", {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_max": 0.6}),
        ("M, 0.20-0.60, canvas 384 (the new cpu preset)",
         {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_max": 0.6, "canvas": 384}),
        ("M, 0.20-0.60, canvas 512", {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_max": 0.6, "canvas": 512}),
        ("M, 0.15-0.50, canvas 384", {**_MULTI, "steps": 48, "crop_min": 0.15, "crop_max": 0.5, "canvas": 384}),
        ("M, 0.15-0.50", {**_MULTI, "steps": 48, "crop_min": 0.15, "crop_max": 0.5}),
        ("M, 0.20-0.60, 192 px", {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_max": 0.6, "input_scale": 0.86}),
    ),
    2: (
        ("before: v1 cpu (cost 256)", {}),
        ("N: the cpu preset (99)", _N),
        ("N, 6 crops, 32 steps (99)", {**_N, "crops": 6, "steps": 32}),
        ("N, 128 px, 6 crops (97)", {**_N, "input_scale": 0.58, "crops": 6}),
        ("N, 128 px, 12 crops, 32 steps (129)", {**_N, "input_scale": 0.58, "crops": 12, "steps": 32}),
        ("N, 128 px, 8 crops (129)", {**_N, "input_scale": 0.58, "crops": 8}),
        ("N, 0.15-0.50 (99)", {**_N, "crop_min": 0.15, "crop_max": 0.5}),
        ("N, 0.15-0.60 (99)", {**_N, "crop_min": 0.15}),
        ("N, lr cosine to 0.1 (99)", {**_N, "lr_end": 0.1}),
        ("N, lr 1.5 cosine to 0.1 (99)", {**_N, "lr": 1.5, "lr_end": 0.1}),
        ("N, noise 0.1 (99)", {**_N, "noise": 0.1}),
        ("N, 8 crops (199)", {**_N, "crops": 8}),
        ("N, 8 crops, 96 steps (398)", {**_N, "crops": 8, "steps": 96}),
        ("N, 8 crops, 96 steps, 224 px (768)", {**_N, "crops": 8, "steps": 96, "input_scale": 1.0}),
        ("N, 16 crops, 128 steps, 224 px, canvas 512 (2048)",
         {**_N, "crops": 16, "steps": 128, "input_scale": 1.0, "canvas": 512}),
    ),
}
SEARCH = SEARCH_ROUNDS[max(SEARCH_ROUNDS)]  # what `atlas bench --only search,cost` runs


@dataclass(frozen=True)
class SpeedRow:
    implementation: str
    model: str
    batch: int
    ms_per_step: float  # one optimisation step of one call (all `batch` images)
    ms_per_image_step: float  # ms_per_step / batch: what one visualization costs per step

    def per_hour(self, steps: int) -> float:
        return 3600.0 * 1000.0 / (self.ms_per_image_step * steps)


@dataclass(frozen=True)
class QualityRow:
    """A config's quality on the judging protocol (atlas.judging) and its cost, per class."""

    config: str
    classes: int
    seconds_per_image: float
    per_class: dict[int, dict[str, dict[str, tuple[float, float]]]]  # class -> scale -> model -> (top-1, top-5)
    stats: dict[int, dict[str, float]]  # class -> atlas.imagestats.image_stats

    def rates_on(self, classes: Sequence[int], scale: str = "large") -> dict[str, tuple[float, float]]:
        """Mean (top-1, top-5) rates per model at one scale over a subset of this row's classes."""
        names = self.per_class[classes[0]][scale].keys()
        return {name: tuple(sum(self.per_class[c][scale][name][i] for c in classes) / len(classes) for i in (0, 1))
                for name in names}

    @property
    def rates(self) -> dict[str, dict[str, tuple[float, float]]]:
        """scale -> model -> mean (top-1, top-5) rates over all of this row's classes."""
        classes = list(self.per_class)
        return {scale: self.rates_on(classes, scale) for scale in SCALES}

    def stat_on(self, classes: Sequence[int], name: str) -> float:
        return sum(self.stats[c][name] for c in classes) / len(classes)


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


def run_ours(loaded: LoadedModel, preset: Preset, batch: int, device: str, *, param: str = "maco",
             classes: Sequence[int] | None = None, seed: int = 0, **options) -> tuple[torch.Tensor, float]:
    classes = list(classes) if classes is not None else [SPEED_CLASS] * batch
    objectives = [class_logit(c) for c in classes]
    out = {}
    seeds = [seed + i for i in range(len(classes))]
    seconds = timed(lambda: out.setdefault("r", render(loaded, objectives, preset, seeds,
                                                        device=device, param=param, **options)), device)
    return out["r"].images, seconds


def speed(loaded: LoadedModel, preset: Preset, steps: int, device: str, batches: Sequence[int] = (1, 8),
          references: bool = True) -> list[SpeedRow]:
    """ms per step of each implementation at identical settings (canvas, crops, noise, model, device)."""
    preset = replace(preset, steps=steps)
    rows = []
    run_ours(loaded, replace(preset, steps=1), 1, device)  # warm-up: allocator, kernels
    for batch in batches:
        _, seconds = run_ours(loaded, preset, batch, device)
        ms = 1000 * seconds / steps
        rows.append(SpeedRow("atlas (ours)", loaded.name, batch, ms, ms / batch))
    # the same arithmetic in another memory layout: what `channels_last = true` buys at identical settings
    run_ours(loaded, replace(preset, steps=1), 1, device, channels_last=True)
    _, seconds = run_ours(loaded, preset, 1, device, channels_last=True)
    ms = 1000 * seconds / steps
    rows.append(SpeedRow("atlas (ours) · channels_last", loaded.name, 1, ms, ms))
    if references:
        for kind in ("maco", "fourier"):
            run_horama(loaded, preset, 1, device, kind)  # the same warm-up as ours
            _, seconds = run_horama(loaded, preset, steps, device, kind)
            ms = 1000 * seconds / steps
            rows.append(SpeedRow(f"horama 0.3.0 {kind}", loaded.name, 1, ms, ms))
        try:
            run_lucent(loaded, preset, 1, device)
        except ImportError as error:  # torch-lucent needs decorator, kornia and IPython: a bare GPU box may lack them
            print(f"bench: torch-lucent row skipped ({error}); install the dev extra to time it", file=sys.stderr)
            return rows
        seconds = run_lucent(loaded, preset, steps, device)
        rows.append(SpeedRow("torch-lucent 0.1.8 fft", loaded.name, 1, 1000 * seconds / steps, 1000 * seconds / steps))
    return rows


class _Trivial(torch.nn.Module):
    """Stands in for the network to time our image handling alone: pooling and a tiny linear layer."""

    def __init__(self, classes: int):
        super().__init__()
        self.fc = torch.nn.Linear(3, classes)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


def time_split(loaded: LoadedModel, preset: Preset, batch: int, steps: int, device: str) -> dict[str, float]:
    """Fraction of a step spent in our image handling (parameterisation, crops, noise, their backward)."""
    preset = replace(preset, steps=steps)
    run_ours(loaded, replace(preset, steps=1), batch, device)  # warm-up: on a GPU the first call sets up cuDNN
    _, full = run_ours(loaded, preset, batch, device)
    trivial = replace(loaded, module=_Trivial(loaded.num_classes).to(device).requires_grad_(False).eval())
    run_ours(trivial, replace(preset, steps=1), batch, device)
    _, image_only = run_ours(trivial, preset, batch, device)
    return {"step_ms": 1000 * full / steps, "image_ms": 1000 * image_only / steps,
            "image_fraction": image_only / full}


def peak_memory_mb(loaded: LoadedModel, preset: Preset, batch: int, device: str) -> float:
    """Peak memory of a short render: CUDA allocator peak on a GPU, peak RSS growth in a fresh process on a CPU."""
    preset = replace(preset, steps=2)
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run_ours(loaded, preset, batch, device)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    import json
    import subprocess
    import sys

    # Peak RSS growth of the render alone: Linux resets the high-water mark VmHWM on
    # "5" > /proc/self/clear_refs, so model loading (and hashing its weights) does not count.
    code = (
        "import json, sys\n"
        "from atlas.models import load_model; from atlas.presets import Preset; from atlas.bench import run_ours\n"
        "def status(key):\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))\n"
        "a = json.loads(sys.argv[1]); m = load_model(a['model'], random_weights=a['random'])\n"
        "open('/proc/self/clear_refs', 'w').write('5'); base = status('VmRSS:')\n"
        "run_ours(m, Preset(**a['preset']), a['batch'], 'cpu')\n"
        "print(json.dumps((status('VmHWM:') - base) / 1024))\n"
    )
    args = {"model": loaded.name, "random": loaded.weights_source.startswith("random"),
            "preset": preset.to_dict(), "batch": batch}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def quality(loaded: LoadedModel, judges: Sequence[LoadedModel], preset: Preset, classes: Sequence[int], device: str,
            *, config: str, batch: int = 8, crops: int = 16, runner: str = "ours", **options) -> QualityRow:
    """Render each class once and judge it on the protocol's scales (atlas.judging)."""
    images, seconds = [], 0.0
    for start in range(0, len(classes), batch if runner == "ours" else 1):
        chunk = list(classes[start : start + (batch if runner == "ours" else 1)])
        if runner == "ours":
            out, s = run_ours(loaded, preset, len(chunk), device, classes=chunk, **options)
        else:
            image, s = run_horama(loaded, preset, preset.steps, device, runner, index=chunk[0])
            out = image[None]
        images.append(out)
        seconds += s
    # judged as stored: rounded to 8 bits, as the pipeline scores what it writes
    stack = (torch.cat(images) * 255).round() / 255
    broken = int((~torch.isfinite(stack)).flatten(1).any(1).sum())
    if broken:
        print(f"bench: {config}: {broken} of {len(classes)} images not finite", file=sys.stderr)
    # judged where they were rendered: on a GPU box the CPU would take minutes per row
    panel = [Judge(replace(m, module=m.module.to(device)), role)
             for m, role in [(loaded, "generator"), *((j, "judge") for j in judges)]]
    judged = judge_images(stack, panel, list(classes), crops=crops, seed=0)
    per_class = {c: target_rates(j) for c, j in zip(classes, judged, strict=True)}
    stats = {c: image_stats(stack[k].numpy()) for k, c in enumerate(classes)}
    return QualityRow(config, len(classes), seconds / len(classes), per_class, stats)


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
