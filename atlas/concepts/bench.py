"""How long concepts take: seconds per class for each phase, measured, and projected to a full run.

`atlas bench` can call `bench_concepts` with any ImageNet-layout folder; the projection scales
every phase but the crops linearly with the images per class (reading, activations and
importance are per image; each HALS sweep is linear in the patches), and the total linearly
with the classes. A projection for another device needs a measurement on that device.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from atlas.concepts.run import PHASES, ConceptRequest, run_concepts
from atlas.models import LoadedModel


@dataclass(frozen=True)
class ConceptBench:
    device: str
    threads: int
    classes: int
    images_per_class: float
    per_class: dict[str, float]  # seconds per class, per phase

    @property
    def seconds_per_class(self) -> float:
        return sum(self.per_class.values())

    def projected_seconds(self, classes: int = 1000, images_per_class: int = 500) -> float:
        scale = images_per_class / self.images_per_class
        return classes * sum(v if phase == "crops" else v * scale for phase, v in self.per_class.items())

    def lines(self) -> list[str]:
        split = ", ".join(f"{phase} {self.per_class[phase]:.2f}" for phase in PHASES)
        hours = self.projected_seconds() / 3600
        return [
            f"concepts on {self.device} ({self.threads} threads): {self.seconds_per_class:.1f} s per class of "
            f"{self.images_per_class:.0f} images ({split})",
            f"projected for 1000 classes x 500 images on this device: {hours:.1f} h",
        ]


def bench_concepts(loaded: LoadedModel, images: Path, *, classes: Sequence[int] | None = None,
                   images_per_class: int = 50, concepts: int = 10, batch_size: int = 32,
                   group: int = 1) -> ConceptBench:
    """Compute the banks of `classes` of `images` in a throwaway cache and time each phase."""
    with tempfile.TemporaryDirectory(prefix="atlas-concepts-bench-") as work:
        request = ConceptRequest(images=Path(images), cache=Path(work), classes=classes, concepts=concepts,
                                 per_class=images_per_class, batch_size=batch_size, group=group)
        summary = run_concepts(loaded, request, report=lambda line: None)
    device = str(next(loaded.module.parameters()).device)
    return ConceptBench(device=device, threads=torch.get_num_threads(), classes=summary.computed,
                        images_per_class=summary.images / max(1, summary.computed), per_class=summary.per_class())
