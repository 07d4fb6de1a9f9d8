"""How fast: our engine against the reference implementations, scaling with batch and canvas, where a
step goes, the render options, and the seconds per image of the searched configs.

Every function measures and returns plain rows (dataclasses, or dicts as they are written to the JSON).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch

from atlas.bench.runs import run_horama, run_lucent, run_ours, seconds_per_image
from atlas.bench.search import CPU_BEFORE, SEARCH
from atlas.models import LoadedModel
from atlas.presets import Preset, get_preset


@dataclass(frozen=True)
class SpeedRow:
    implementation: str
    model: str
    batch: int
    ms_per_step: float  # one optimisation step of one call (all `batch` images)
    ms_per_image_step: float  # ms_per_step / batch: what one visualization costs per step

    def per_hour(self, steps: int) -> float:
        return 3600.0 * 1000.0 / (self.ms_per_image_step * steps)


def speed_preset() -> Preset:
    """Identical settings for every implementation: horama's crops and noise on a 512 canvas. Every field
    that changes what a step computes is named, so that a change to the `atlas` preset (a whole view, a
    smaller input) never makes our step do more or less than horama's."""
    return get_preset("atlas", canvas=512, crops=8, crop_min=0.20, crop_max=0.25, noise=0.05, whole_views=0,
                      input_scale=1.0, crop_anneal=False)


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


def speed_rows(models: Sequence[LoadedModel], preset: Preset, steps: int, device: str, gpu: bool) -> list[dict]:
    """`speed` of each model, each row with its images per hour at 256 steps and its speed against
    horama's maco on the same model (`x_horama`, above 1 when faster)."""
    rows = []
    for model in models:
        measured = speed(model, preset, steps, device, batches=(1, 8, 32) if gpu else (1, 4))
        horama_ms = next(r.ms_per_image_step for r in measured if r.implementation == "horama 0.3.0 maco")
        for r in measured:
            rows.append(asdict(r) | {"per_hour_256_steps": r.per_hour(256),
                                     "x_horama": horama_ms / r.ms_per_image_step})
    return rows


def scaling(loaded: LoadedModel, preset: Preset, steps: int, device: str, gpu: bool) -> dict[str, list[dict]]:
    """ms per step, images per hour and peak memory against the batch, up to the first that does not fit;
    peak memory against the canvas at batch 4."""
    batches = (1, 2, 4, 8, 16, 32, 64) if gpu else (1, 2, 4, 8, 16)
    rows = []
    run_ours(loaded, replace(preset, steps=1), 1, device)  # warm-up, as for every timed row
    for batch in batches:
        try:
            seconds = run_ours(loaded, replace(preset, steps=steps), batch, device)[1]
            memory = peak_memory_mb(loaded, preset, batch, device)
        except torch.OutOfMemoryError:
            break
        rows.append({"batch": batch, "ms_per_step": 1000 * seconds / steps,
                     "images_per_hour": 3600 * batch / (seconds / steps * preset.steps), "peak_mb": memory})
    canvases = []
    for canvas in (256, 512, 1024, 1280) if gpu else (256, 512, 1024):
        canvases.append({"canvas": canvas, "batch": 4,
                         "peak_mb": peak_memory_mb(loaded, replace(preset, canvas=canvas), 4, device)})
    return {"batch": rows, "canvas": canvases}


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


def split_rows(lite0: LoadedModel, resnet: LoadedModel, preset: Preset, steps: int, device: str,
               gpu: bool) -> list[dict]:
    """`time_split` of Lite0 at batch 1 and 8 and of ResNet-50, each row with its model and batch."""
    rows = []
    for model, batch in ((lite0, 1), (lite0, 8), (resnet, 8 if gpu else 2)):
        split = time_split(model, preset, batch, steps, device)
        rows.append({"model": model.name, "batch": batch} | split)
    return rows


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


GPU_OPTIONS_BATCH = 16  # 32 images x 16 crops took 40 GB of an H100; the compiled graph needs as much again


def gpu_options(lite0: LoadedModel, resnet: LoadedModel, preset: Preset, steps: int,
                device: str) -> dict[str, object]:
    """bf16 autocast, channels_last and torch.compile on and off; projected 1000-class atlas times."""
    rows = []
    batch = GPU_OPTIONS_BATCH
    for bf16 in (False, True):
        for channels_last in (False, True):
            seconds = run_ours(lite0, replace(preset, steps=steps), batch, device,
                               autocast_bf16=bf16, channels_last=channels_last)[1]
            rows.append({"bf16": bf16, "channels_last": channels_last, "compile": False,
                         "ms_per_image_step": 1000 * seconds / steps / batch})
    torch.cuda.empty_cache()
    compiled = replace(lite0, module=torch.compile(lite0.module))
    run_ours(compiled, replace(preset, steps=2), batch, device)  # compilation
    seconds = run_ours(compiled, replace(preset, steps=steps), batch, device)[1]
    rows.append({"bf16": False, "channels_last": False, "compile": True,
                 "ms_per_image_step": 1000 * seconds / steps / batch})
    horama = get_preset("horama")
    best = min(r["ms_per_image_step"] for r in rows)
    resnet_ms = 1000 * run_ours(resnet, replace(horama, steps=steps), 8, device)[1] / steps / 8
    projection = {"lite0_atlas_hours": 1000 * preset.steps * best / 1000 / 3600,
                  "resnet50_horama_hours": 1000 * horama.steps * resnet_ms / 1000 / 3600}
    return {"options": rows, "projection": projection}


def cost(loaded: LoadedModel, preset: Preset, steps: int, device: str) -> dict[str, object]:
    """Seconds per image (wall, and CPU time of this process) at batch 1 of every searched config, then of
    the render options at `preset`, as written to the JSON."""
    from atlas.device import native_bf16

    # Seconds per image of every searched config, timed twice in alternating order (min kept).
    configs = _best_of_two_orders(loaded, [(label, get_preset("cpu", **(CPU_BEFORE | o)), 1, {})
                                           for label, o in SEARCH], steps, device)
    # The render options at the `cpu` preset; bf16 only where this machine has bf16 instructions.
    combos = [((b, cl, bf), preset, b, {"channels_last": cl, "autocast_bf16": bf})
              for b in (1, 2) for cl, bf in ((False, False), (True, False), (True, True))
              if not bf or native_bf16(device)]
    options = _best_of_two_orders(loaded, combos, steps, device)
    return {"threads": torch.get_num_threads(),
            "configs": {k: {"wall": w, "cpu": c} for k, (w, c) in configs.items()},
            "options": [{"batch": b, "channels_last": cl, "bf16": bf, "wall": w, "cpu": c}
                        for (b, cl, bf), (w, c) in options.items()]}


def _best_of_two_orders(loaded: LoadedModel, runs: list, steps: int, device: str) -> dict:
    """key -> (wall, CPU) seconds per image of each (key, preset, batch, options), timed in the order given
    and then reversed; the smaller of the two kept."""
    best: dict = {}
    for order in (runs, runs[::-1]):
        for key, preset, batch, options in order:
            wall, cpu = seconds_per_image(loaded, preset, device, batch=batch, steps=steps, **options)
            old = best.get(key, (wall, cpu))
            best[key] = (min(old[0], wall), min(old[1], cpu))
    return best
