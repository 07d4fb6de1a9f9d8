"""`models/<name>.json`'s content, built from the model: what the site needs and cannot compute without torch.

The format (`ModelInfo`, its JSON) is `atlas.model_record`'s; this is only the torch side that measures it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from atlas import __version__
from atlas.device import hardware
from atlas.labels import numbered
from atlas.model_record import ClassInfo, ModelInfo, Ranked
from atlas.models import LoadedModel, classifier_weights, list_layers, pre_logits_layer

NEAREST = 8  # nearest classes per class, and top classes per channel of the last layer


def code_version() -> str:
    """The package version, and the git commit when running from a checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"atlas {__version__}" + (f" ({commit})" if commit else "")


def _top(scores: torch.Tensor, count: int) -> dict[int, Ranked]:
    """Row i -> its `count` largest entries as ((column, score), ...), scores rounded for JSON."""
    best = scores.topk(count, dim=1)
    return {i: tuple((int(j), round(float(v), 4)) for j, v in zip(best.indices[i], best.values[i], strict=True))
            for i in range(scores.shape[0])}


def listed_classes(loaded: LoadedModel) -> tuple[ClassInfo, ...]:
    """The classes the model file lists for `loaded`: its own, numbered when its head has no names."""
    return tuple(loaded.classes or numbered(loaded.num_classes))


def parameter_device(loaded: LoadedModel) -> str:
    """Where the model's parameters are (what its model file names as hardware); cpu for a module without any."""
    return next((str(p.device) for p in loaded.module.parameters()), "cpu")


def model_info(loaded: LoadedModel, device: str, spectrum_sha256: str) -> ModelInfo:
    classes = listed_classes(loaded)
    weights = classifier_weights(loaded)
    nearest: dict[int, Ranked] = {}
    channel_top: dict[str, dict[int, Ranked]] = {}
    if weights is not None:
        unit = torch.nn.functional.normalize(weights.double(), dim=1)
        cosine = unit @ unit.T
        cosine.fill_diagonal_(-2.0)  # never one's own nearest
        nearest = _top(cosine, min(NEAREST, max(weights.shape[0] - 1, 1)))
        last = pre_logits_layer(loaded)
        if last is not None:
            channel_top[last] = _top(weights.T, min(NEAREST, weights.shape[0]))
    return ModelInfo(
        name=loaded.name,
        weights_sha256=loaded.weights_sha256,
        weights_source=loaded.weights_source,
        num_classes=loaded.num_classes,
        input_size=loaded.input_size,
        dataset=loaded.dataset,
        parameters=sum(p.numel() for p in loaded.module.parameters()),
        classes=classes,
        nearest_classes=nearest,
        layers=tuple(list_layers(loaded)),
        channel_top_classes=channel_top,
        hardware=hardware(device),
        code_version=code_version(),
        spectrum_sha256=spectrum_sha256,
        mean=tuple(float(v) for v in loaded.mean),
        std=tuple(float(v) for v in loaded.std),
    )
