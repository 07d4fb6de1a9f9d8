"""A render as a cache entry: the files stored for an image and its `RenderRecord`.

The torch side of the record format: atlas.record stays torch-free, so that `atlas build`
never imports torch, and this module turns what the engine returns (tensors) and what the plan
knows (the job, the model, the preset) into the record's values.  docs/architecture.md shows
an entry as stored.
"""

from __future__ import annotations

import numpy as np
import torch

from atlas.cache import ATTRIBUTION, IMAGE, encode_npy, encode_png
from atlas.imagestats import image_stats
from atlas.jobs import Job
from atlas.models import LoadedModel
from atlas.plan import Plan, PlannedJob
from atlas.record import ConceptExpression, ImageStats, ModelRef, ObjectiveInfo, RenderRecord, Retry, Scores, Timing


def stored_pixels(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, S, S) in [0, 1] -> uint8 of the same shape, on their device: the pixels stored, and
    the ones the judges score."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, S, S) in [0, 1] -> (S, S, 3) uint8 on the host: the image as stored."""
    return stored_pixels(image).permute(1, 2, 0).cpu().numpy()


def attribution_map(attribution: torch.Tensor) -> np.ndarray:
    """The channel mean of the raw attribution sum (3, S, S), as stored: (S, S) float32."""
    return attribution.detach().float().mean(dim=0).cpu().numpy().astype(np.float32)


def entry_files(pixels: np.ndarray, attribution: torch.Tensor) -> dict[str, bytes]:
    """The files of an "ok" entry: the image as stored and its attribution map."""
    return {IMAGE: encode_png(pixels), ATTRIBUTION: encode_npy(attribution_map(attribution))}


def render_record(plan: Plan, item: PlannedJob, *, seed: int, value: float, timing: Timing,
                  judging: dict[str, Scores] | None, pixels: np.ndarray | None, retry: Retry | None = None,
                  failure: str | None = None, expression: ConceptExpression | None = None) -> RenderRecord:
    """The record of one rendered image, its statistics measured on `pixels` (the image as stored); with
    `failure`, the record of the job that has none."""
    return RenderRecord(
        key=item.key,
        status="ok" if failure is None else "failed",
        failure=failure,
        objective=objective_info(item.job, plan.loaded),
        model=model_ref(plan.loaded),
        seed=seed,
        seed_index=item.job.seed_index,
        objective_value=value if failure is None else None,
        retry=retry,
        timing=timing,
        scores=judging["large"] if judging else None,  # "scores" keeps its place: the large scale (atlas.scoring)
        judging=judging,
        image_stats=ImageStats(**image_stats(pixels)) if pixels is not None and failure is None else None,
        expression=expression,
        **plan.settings.record_fields(),
    )


def model_ref(loaded: LoadedModel) -> ModelRef:
    return ModelRef(loaded.name, loaded.weights_sha256, loaded.weights_source, loaded.input_size,
                    tuple(loaded.mean), tuple(loaded.std))


def objective_info(job: Job, loaded: LoadedModel) -> ObjectiveInfo:
    """What the job's image maximises, as the site shows it; a concept is shown under its class."""
    objective = job.objective
    description = objective.describe(loaded.name)
    if job.target is not None and 0 <= job.target < len(loaded.classes):  # the caption names the class
        name = loaded.classes[job.target].name
        description = description if name in description else f"{description} · {name}"
    if job.concept_of is not None:
        return ObjectiveInfo(objective.id, "concept", f"{description} · concept", job.concept_of, objective.layer, None)
    # any class objective (the logit, or a form that also pushes the others down) draws its class: a class picture
    kind = "class" if objective.class_index is not None else objective.kind
    return ObjectiveInfo(objective.id, kind, description, objective.class_index, objective.layer, objective.channel)
