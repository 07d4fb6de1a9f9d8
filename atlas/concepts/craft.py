"""CRAFT (Fel et al., CVPR 2023) for one class: patch activations, concepts, importance, crops.

The model is split at a layer: g (input -> layer) and h (layer -> logits). Patches of the
class's images go through g and are mean-pooled over positions; a non-negative factorisation
of that (patches x channels) matrix gives the concept bank W (K, C) and each patch's
coefficients U. Activations are clamped at 0 for the factorisation (post-ReLU/SiLU maps are
nearly so); the clamped-away part goes into the residual, so no logit is lost.

Importance is gradient x input on the concept coefficients of whole images (the estimator of
the "holistic" CRAFT follow-up): each position of the image's activation map A is written
A = U W + R with U >= 0 solved for the fixed bank, the layer's output is replaced by U W + R,
and concept k's share of the class logit is sum over positions of U[:, k] * dlogit/dU[:, k].
At the feature map that the head pools (average pooling, then a linear map: `feature_layer`)
this is exact, not an estimate: the logit is w_c . mean(U W + R) + b, which is linear in U,
so the shares, the residual's share w_c . mean(R) and the bias add up to the logit. At other
layers h is non-linear and the remainder (logit minus shares and residual) is kept as `rest`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from atlas.concepts.nmf import nmf_transform
from atlas.concepts.patches import cut_patches, patch_grid
from atlas.errors import AtlasError
from atlas.models import LoadedModel, classifier_head
from atlas.objectives import ActivationCapture, Objective, direction

PASS_LAYER = "pass the layer of the concepts (--layer NAME, or layer= in a notebook; `atlas layers` lists them)"


@dataclass(frozen=True)
class FeatureLayer:
    name: str
    exact: bool  # global average pooling then a linear classifier: importance here is an exact logit share


@dataclass(frozen=True)
class Importance:
    """Per image: concept shares (n, K), the residual's share, the rest (bias, or h's non-linearity), the logit."""

    shares: torch.Tensor
    residual: torch.Tensor
    rest: torch.Tensor
    logits: torch.Tensor


def _device(loaded: LoadedModel) -> torch.device:
    return next(loaded.module.parameters()).device


def to_model_input(loaded: LoadedModel, squares: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float, normalised with the model's mean and std, on its device."""
    device = _device(loaded)
    x = squares.to(device).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(loaded.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(loaded.std, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def feature_layer(loaded: LoadedModel) -> FeatureLayer:
    """The module whose output the head pools (timm's `forward_features` output), found by one forward pass."""
    module = loaded.module
    if not (hasattr(module, "forward_features") and hasattr(module, "forward_head")):
        return _pooled_layer(loaded)
    features, returned = _outputs(loaded, module.forward_features)
    found = returned.get(id(features))
    if found is None or not isinstance(features, torch.Tensor) or features.ndim != 4:
        raise AtlasError(f"cannot find the feature map of {loaded.name!r}: {PASS_LAYER}")
    head = classifier_head(loaded)
    exact = head is not None and _pools_into(head, features, module.forward_head(features))
    return FeatureLayer(found[0], exact)


def _outputs(loaded: LoadedModel, forward: Callable[[torch.Tensor], Any]) -> tuple[Any, dict[int, tuple[str, Any]]]:
    """`forward` of a fixed random batch, and each output of a module on the way: its id -> (the outermost
    module returning it, the output), in the order they were first returned. Holding the outputs keeps
    their ids from being reused."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, loaded.input_size, loaded.input_size, generator=generator).to(_device(loaded))
    returned: dict[int, tuple[str, Any]] = {}

    def hook(name: str):
        def record(_module, _inputs, output) -> None:
            returned[id(output)] = (name, output)  # an outer module returning it again renames it
        return record

    handles = [sub.register_forward_hook(hook(name)) for name, sub in loaded.module.named_modules() if name]
    try:
        result = forward(x)
    finally:
        for handle in handles:
            handle.remove()
    return result, returned


def _pools_into(head: torch.nn.Linear, features: torch.Tensor, logits: torch.Tensor) -> bool:
    """Whether the logits are `head` of the features' mean over positions: the head is average pooling
    then a linear map, and importance at the features is an exact share of the logit."""
    pooled = head(features.mean(dim=(2, 3)))
    return bool(torch.allclose(logits, pooled, rtol=1e-4, atol=1e-4 * float(logits.abs().max().clamp_min(1))))


@torch.no_grad()
def _pooled_layer(loaded: LoadedModel) -> FeatureLayer:
    """In a module without timm's split (a torchvision or plain torch classifier): the last (B, C, H, W)
    output whose mean over positions, through the final linear classifier, gives the model's logits,
    found by one forward pass; the head is then average pooling and a linear map, so importance is exact."""
    head = classifier_head(loaded)
    if head is None:
        raise AtlasError(f"model {loaded.name!r} has no final linear classifier of its classes: {PASS_LAYER}")
    logits, returned = _outputs(loaded, loaded.module)
    maps = [(name, out) for name, out in reversed(returned.values())
            if isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[1] == head.in_features]
    # a map of one position is the pooling's own output (AdaptiveAvgPool2d(1)): the map before it is the one
    for name, output in sorted(maps, key=lambda m: m[1].shape[2] * m[1].shape[3] == 1):
        if _pools_into(head, output, logits):
            return FeatureLayer(name, exact=True)
    raise AtlasError(f"cannot find the map that the classifier of {loaded.name!r} average-pools: {PASS_LAYER}")


@torch.no_grad()
def patch_activations(loaded: LoadedModel, layer: str, squares: torch.Tensor, patch: int,
                      batch_size: int = 64) -> torch.Tensor:
    """(n * P, C) activations at `layer`, mean-pooled per patch, for n (S, S, 3) uint8 images; on the model's device.

    Rows are image-major in `patch_grid` order. Batches hold about `batch_size` patches.
    """
    side = loaded.input_size
    grid = patch_grid(side, patch)
    per_batch = max(1, batch_size // len(grid))
    out = []
    with ActivationCapture(loaded.module, {layer}, logits=False) as capture:
        for start in range(0, squares.shape[0], per_batch):
            x = to_model_input(loaded, squares[start : start + per_batch])
            patches = cut_patches(x, grid, patch, side)
            out.append(capture(patches).layers[layer].float().mean(dim=(2, 3)))
    return torch.cat(out)


def importance(loaded: LoadedModel, layer: str, squares: torch.Tensor, class_index: int, concepts: torch.Tensor,
               batch_size: int = 32) -> Importance:
    """Gradient x input of the class logit on each concept's coefficients, per whole image (see the module doc)."""
    target = loaded.module.get_submodule(layer)
    w = concepts.to(_device(loaded)).float()
    parts: dict[str, torch.Tensor] = {}

    def replace(_module, _inputs, output):
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            raise AtlasError(
                f"layer {layer!r} does not give a (B, C, H, W) map: pick a convolutional layer for concepts")
        b, c, h, wd = output.shape
        flat = output.detach().float().permute(0, 2, 3, 1).reshape(b, h * wd, c)
        u = nmf_transform(flat.clamp_min(0), w)
        residual = (flat - u @ w).requires_grad_(True)  # a leaf of its own: no path back to u
        u.requires_grad_(True)
        parts.update(u=u, residual=residual)
        return (u @ w + residual).reshape(b, h, wd, c).permute(0, 3, 1, 2).to(output.dtype)

    results = []
    handle = target.register_forward_hook(replace)
    try:
        for start in range(0, squares.shape[0], batch_size):
            x = to_model_input(loaded, squares[start : start + batch_size])
            with torch.enable_grad():
                logits = loaded.module(x)[:, class_index].float()
                grad_u, grad_r = torch.autograd.grad(logits.sum(), [parts["u"], parts["residual"]])
            shares = (grad_u * parts["u"]).sum(dim=1).detach()
            residual = (grad_r * parts["residual"]).sum(dim=(1, 2)).detach()
            logits = logits.detach()
            results.append((shares, residual, logits - shares.sum(dim=1) - residual, logits))
    finally:
        handle.remove()
    shares, residual, rest, logits = (torch.cat(column).cpu() for column in zip(*results, strict=True))
    return Importance(shares, residual, rest, logits)


def top_patches(coefficients: torch.Tensor, count: int) -> torch.Tensor:
    """(K, count) row indices of the patches with the highest coefficient for each concept."""
    return coefficients.topk(min(count, coefficients.shape[0]), dim=0).indices.T


def aligned_classes(concepts: torch.Tensor, classifier: torch.Tensor,
                    top: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, top) indices and cosines of the classes whose classifier weights point most along each concept."""
    cosine = torch.nn.functional.normalize(concepts.float().cpu(), dim=1) @ torch.nn.functional.normalize(
        classifier.float().cpu(), dim=1).T
    values, indices = cosine.topk(min(top, classifier.shape[0]), dim=1)
    return indices, values


def concept_objective(layer: str, vector: torch.Tensor | np.ndarray | tuple[float, ...],
                      cosine: bool = False) -> Objective:
    """The objective whose MACO picture shows a concept: its direction at its layer (keyed by the vector's hash)."""
    return direction(layer, vector, cosine=cosine)
