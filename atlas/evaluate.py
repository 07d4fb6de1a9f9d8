"""Scores that need real photographs of each class: plausibility and a per-class FID.

As in the MACO paper: plausibility is how close a visualization comes to real images of its
class in the generating model's own feature space (here the cosine distance to the nearest
real image's pooled pre-logits features; lower is better); FID is the Fréchet distance
between Gaussian fits of feature clouds. The paper uses Inception-v3 features for FID; its
weights do not ship with any package, so the feature model is an option that defaults to the
bundled EfficientNet-Lite2 (an independent network from the default Lite0 atlas). With few
visualizations per class, the visualization cloud is made of random crops at the optimisation
scale (the scoring crops), which is also what the network saw while rendering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from atlas.errors import AtlasError
from atlas.image_limits import size_problem
from atlas.models import LoadedModel, data_transform, pooled_features
from atlas.scoring import picture_crops, pixel_boxes
from atlas.spectrum import IMAGE_SUFFIXES


@dataclass(frozen=True)
class ClassScore:
    class_index: int
    wnid: str
    real_images: int
    visualizations: int
    plausibility: float  # mean over visualizations of the cosine distance to the nearest real image
    fid: float


def real_image_paths(folder: Path) -> list[Path]:
    """The photos in a class folder; raises when there are none, since no score can be computed."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise AtlasError(f"no photos in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}): "
                         "add some, or remove the folder to skip that class")
    return paths


@torch.no_grad()
def real_features(loaded: LoadedModel, paths: Sequence[Path], chunk: int = 32) -> torch.Tensor:
    """Features of real photos, preprocessed exactly as the model was evaluated (resize, centre crop)."""
    transform = data_transform(loaded)
    device = next(loaded.module.parameters()).device
    out = []
    for start in range(0, len(paths), chunk):
        batch = []
        for path in paths[start : start + chunk]:
            try:
                with Image.open(path) as im:
                    problem = size_problem(im.size)
                    if problem is None:
                        batch.append(transform(im.convert("RGB")))
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise AtlasError(f"cannot read image {path} ({exc}); remove it or convert it to PNG/JPEG") from exc
            if problem is not None:
                raise AtlasError(f"image {path} is not read: {problem}; remove it or shrink it")
        out.append(pooled_features(loaded, torch.stack(batch).to(device)).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def visualization_features(loaded: LoadedModel, images: torch.Tensor, crops: int, seed: int,
                           crop_scale: tuple[float, float]) -> torch.Tensor:
    """Features of random crops of (K, 3, S, S) images in [0, 1]; (K, crops, D)."""
    boxes = pixel_boxes(images.shape[-1], crops, seed, *crop_scale)
    pixels = picture_crops(images.float().cpu(), [boxes] * images.shape[0], loaded.input_size)
    mean = torch.tensor(loaded.mean).view(1, 3, 1, 1)
    std = torch.tensor(loaded.std).view(1, 3, 1, 1)
    device = next(loaded.module.parameters()).device
    features = pooled_features(loaded, ((pixels - mean) / std).to(device)).float().cpu()
    return features.view(images.shape[0], crops, -1)


def nearest_cosine_distance(queries: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """For each query row, 1 - the largest cosine similarity to any reference row."""
    q = torch.nn.functional.normalize(queries.double(), dim=1)
    r = torch.nn.functional.normalize(references.double(), dim=1)
    return 1.0 - (q @ r.T).max(dim=1).values


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature clouds.

    tr(sqrt(S1 S2)) is computed as the sum of the square roots of the eigenvalues of
    sqrt(S1) S2 sqrt(S1), which is symmetric positive semi-definite, so small or
    rank-deficient clouds (fewer samples than dimensions) stay numerically real.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise AtlasError(f"FID needs at least two samples on each side, got {len(a)} and {len(b)}")
    mu = a.mean(0) - b.mean(0)
    s1 = np.cov(a, rowvar=False)
    s2 = np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(mu @ mu + np.trace(s1) + np.trace(s2) - 2.0 * np.sqrt(np.clip(cross, 0, None)).sum())


def score_class(
    generator: LoadedModel,
    feature_model: LoadedModel,
    images: torch.Tensor,
    real_paths: Sequence[Path],
    *,
    crops: int = 16,
    seed: int = 0,
    crop_scale: tuple[float, float] = (0.2, 0.25),
) -> tuple[float, float]:
    """(plausibility, FID) of one class's visualizations against its real photos."""
    if images.shape[0] * crops < 2:
        raise AtlasError(f"FID needs at least two crops of the visualizations, got {images.shape[0] * crops}: "
                         "raise --crops")
    if len(real_paths) < 2:
        raise AtlasError(f"FID needs at least two real images, got {len(real_paths)}: add photos to the class folder")
    vis_gen = visualization_features(generator, images, crops, seed, crop_scale).flatten(0, 1)
    real_gen = real_features(generator, real_paths)
    plausibility = float(nearest_cosine_distance(vis_gen, real_gen).mean())
    if feature_model is generator:
        vis_fid, real_fid = vis_gen, real_gen
    else:
        vis_fid = visualization_features(feature_model, images, crops, seed, crop_scale).flatten(0, 1)
        real_fid = real_features(feature_model, real_paths)
    return plausibility, frechet_distance(vis_fid.numpy(), real_fid.numpy())
