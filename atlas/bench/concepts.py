"""How long `atlas concepts` takes on this machine: atlas/concepts/bench.py on a sample folder or the user's."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from atlas.models import LoadedModel

if TYPE_CHECKING:  # the concepts pipeline is imported only when its part runs
    from atlas.concepts.bench import ConceptBench


@dataclass(frozen=True)
class ConceptsTiming:
    source: str  # the images timed, in words
    measured: ConceptBench

    def to_json(self) -> dict[str, object]:
        m = self.measured
        return {"source": self.source, "classes": m.classes, "images_per_class": m.images_per_class,
                "threads": m.threads, "seconds_per_class": m.per_class,
                "projected_hours_1000x500": m.projected_seconds() / 3600}


def time_concepts(lite0: LoadedModel, images: Path | None, device: str) -> ConceptsTiming:
    """Seconds per class of `atlas concepts` (50 images a class), per phase, and the 1000-class projection."""
    from atlas.concepts.bench import bench_concepts, sample_folder

    loaded = replace(lite0, module=lite0.module.to(device))
    with tempfile.TemporaryDirectory(prefix="atlas-concept-images-") as work:
        gpu = device.startswith("cuda")
        # on a GPU two classes would time mostly the warm-up: 16 make one NMF group
        folder = images if images is not None else sample_folder(Path(work), images_per_class=50,
                                                                 classes=16 if gpu else None)
        measured = bench_concepts(loaded, folder, images_per_class=50, batch_size=256 if gpu else 32,
                                  group=16 if gpu else 1)
    source = str(images) if images is not None else "scikit-image photos, 500x375 JPEG"
    return ConceptsTiming(source, measured)
