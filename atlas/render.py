"""The optimisation loop: K objectives in, K images and attributions out (no file I/O).

    result = render(load_model("efficientnet_lite0"), [class_logit(967)], get_preset("cpu"), [0])
    result = render(loaded, objectives, RenderSettings.make("atlas", bf16=True), seeds, device="cuda")

Everything about how the images are made comes in one `RenderSettings` (atlas.settings); a
bare `Preset` means those settings with the default spectrum, MACO, fp32.

Each objective k has its own parameters, random streams (seeded by seeds[k]), crops,
noise and attribution; all K x crops crops go through the model in one pass per step.
The loss is a sum over samples and NAdam is elementwise, so a batch of K gives the
same images as K separate runs (up to float rounding in the model's batched kernels).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from atlas.device import resolve_device
from atlas.errors import AtlasError
from atlas.objectives import ActivationCapture, BatchObjective, Objective
from atlas.param import make_param
from atlas.presets import Preset
from atlas.seeds import stream_seed
from atlas.settings import ENGINE_VERSION, RenderSettings
from atlas.spectrum import check_spectrum, load_spectrum, resize_spectrum
from atlas.transforms import RandomCrops

__all__ = ["ENGINE_VERSION", "RenderResult", "RenderSettings", "magnitude_for", "render"]


@dataclass(frozen=True)
class RenderResult:
    """images (K, 3, S, S) in [0, 1] and attributions (K, 3, S, S) (raw sum of |d loss / d image|
    over the steps), float32 on the CPU (on the render's device when asked: `keep_on_device`); values (K,)
    the objective averaged over the last
    step's crops; finite (K,) False where a sample's objective or gradient went NaN/inf
    (its optimisation stopped there); seconds of wall time for the whole call."""

    images: torch.Tensor
    attributions: torch.Tensor
    values: torch.Tensor
    finite: torch.Tensor
    seconds: float


def magnitude_for(spectrum: str | Path | np.ndarray | torch.Tensor | None, canvas: int) -> torch.Tensor:
    """The magnitude spectrum for a canvas: the default, a file, or an array; resized when needed."""
    if spectrum is None or isinstance(spectrum, (str, Path)):
        array = load_spectrum(spectrum)
    else:
        array = spectrum.detach().cpu().numpy() if isinstance(spectrum, torch.Tensor) else np.asarray(spectrum)
        check_spectrum(array)
    if array.shape[1] != canvas:
        array = resize_spectrum(array, canvas)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def render(
    loaded,
    objectives: Sequence[Objective],
    settings: RenderSettings | Preset,
    seeds: Sequence[int],
    *,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    keep_on_device: bool = False,
) -> RenderResult:
    """Optimise one image per objective; `loaded` is an atlas.models.LoadedModel.

    The model is moved to `device` (and to channels_last memory when asked) in place.
    Same seeds, settings and device give the same images.  `keep_on_device` leaves the images and
    attributions where they were made, for a caller that judges them there and moves them itself.
    """
    start = time.perf_counter()
    if isinstance(settings, Preset):
        settings = RenderSettings.make(settings)
    preset, param = settings.preset, settings.param
    autocast_bf16, channels_last = settings.bf16, settings.channels_last
    objectives, seeds = list(objectives), [int(s) for s in seeds]
    if not objectives:
        raise AtlasError("render needs at least one objective")
    if len(seeds) != len(objectives):
        raise AtlasError(f"{len(objectives)} objectives but {len(seeds)} seeds: give one seed per objective")
    device = torch.device(resolve_device(device))
    k, size = len(objectives), preset.canvas

    module = loaded.module.eval().to(device)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    magnitude = magnitude_for(settings.spectrum, size) if param == "maco" else torch.empty(0)

    geometry = [torch.Generator().manual_seed(s) for s in seeds]  # phase init, then crop boxes
    noise = [torch.Generator(device=device).manual_seed(stream_seed(s, "noise")) for s in seeds]
    image_param = make_param(param, size, magnitude, geometry, device, preset.phase_offset)
    augment = RandomCrops(preset, preset.input_side(loaded.input_size), geometry, noise)
    score = BatchObjective(objectives, preset.views)
    mean = torch.tensor(loaded.mean, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(loaded.std, device=device, dtype=torch.float32).view(1, 3, 1, 1)

    params = image_param.params
    optimizer = torch.optim.NAdam([params], lr=preset.lr)
    attribution = torch.zeros((k, 3, size, size), device=device)
    alive = torch.ones(k, dtype=torch.bool, device=device)
    values = torch.full((k,), float("nan"), device=device)
    layers = set().union(*(o.layers for o in objectives))
    needs_logits = any(o.needs_logits for o in objectives)

    with ActivationCapture(module, layers, needs_logits) as capture:
        for step in range(preset.steps):
            for group in optimizer.param_groups:
                group["lr"] = preset.lr_at(step)
            optimizer.zero_grad(set_to_none=True)
            image = image_param()
            image.retain_grad()
            crops = augment((image - mean) / std, step)
            if channels_last:
                crops = crops.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
                activations = capture(crops)
            values = score(activations)
            alive = alive & torch.isfinite(values)
            # a failed sample contributes zero loss; the others are untouched (losses are summed)
            loss = -torch.where(alive, values, torch.zeros_like(values)).sum()
            loss.backward()
            alive = alive & torch.isfinite(params.grad).flatten(1).all(1) & torch.isfinite(image.grad).flatten(1).all(1)
            attribution += torch.where(alive.view(k, 1, 1, 1), image.grad.abs(), 0.0)
            params.grad = torch.where(alive.view(k, *[1] * (params.ndim - 1)), params.grad, 0.0)
            optimizer.step()
            if progress is not None:
                progress(step + 1, preset.steps)

    with torch.no_grad():
        final = image_param().detach().float()
    return RenderResult(
        images=final if keep_on_device else final.cpu(),
        attributions=attribution if keep_on_device else attribution.cpu(),
        values=values.detach().float().cpu(),
        finite=alive.cpu(),
        seconds=time.perf_counter() - start,
    )
