"""How long `atlas concepts` takes: seconds per class for each phase, measured, and projected to a full run.

`bench_concepts` times any ImageNet-layout folder; `time_concepts` is `atlas bench`'s part, on the
user's folder or a sample of scikit-image's photos. The projection scales every phase but the crops
linearly with the images per class (reading, activations and importance are per image; each HALS
sweep is linear in the patches), and the total linearly with the classes. A projection for another
device needs a measurement on that device.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from atlas.concepts.run import PHASES, ConceptRequest, run_concepts
from atlas.errors import AtlasError
from atlas.models import LoadedModel

# Photos that ship with scikit-image, each under the WordNet id of the ImageNet class it shows:
# `make bench` has no ImageNet, and the costs depend on the image sizes, not on what they show.
SAMPLE_PHOTOS = {"n02123045": "chelsea", "n07920052": "coffee"}  # tabby cat, espresso


@dataclass(frozen=True)
class ConceptBench:
    device: str
    threads: int
    classes: int
    images_per_class: float
    per_class: dict[str, float]  # seconds per class, per phase
    source: str = ""  # the images timed, in words

    @property
    def seconds_per_class(self) -> float:
        return sum(self.per_class.values())

    def projected_seconds(self, classes: int = 1000, images_per_class: int = 500) -> float:
        scale = images_per_class / self.images_per_class
        return classes * sum(v if phase == "crops" else v * scale for phase, v in self.per_class.items())

    def to_json(self) -> dict[str, object]:
        return {"source": self.source, "classes": self.classes, "images_per_class": self.images_per_class,
                "threads": self.threads, "seconds_per_class": self.per_class,
                "projected_hours_1000x500": self.projected_seconds() / 3600}

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


def sample_folder(root: Path, images_per_class: int = 50, seed: int = 0, classes: int | None = None) -> Path:
    """An ImageNet-layout folder of `images_per_class` 500x375 JPEGs a class (ImageNet's usual size),
    random crops of scikit-image's photos, for timing concepts where no ImageNet is at hand.

    Each photo lies under the WordNet id of its class; `classes` beyond those add folders of the same
    photos under the first other ImageNet ids, so that a GPU timing covers enough classes to batch."""
    try:
        from skimage import data
    except ImportError:
        raise AtlasError("the concept benchmark's sample images come from scikit-image (the dev extra): "
                         "install it, or pass --images DIR with one subfolder per WordNet id") from None
    rng = np.random.default_rng(seed)
    folders = list(SAMPLE_PHOTOS.items())
    if classes is not None and classes > len(folders):
        from atlas.models import imagenet_classes

        photos = list(SAMPLE_PHOTOS.values())
        others = [c.wnid for c in imagenet_classes() if c.wnid not in SAMPLE_PHOTOS]
        folders += [(wnid, photos[i % len(photos)]) for i, wnid in enumerate(others[: classes - len(folders)])]
    for wnid, name in folders:
        source = Image.fromarray(getattr(data, name)()).convert("RGB")
        folder = Path(root) / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(images_per_class):
            side = int(rng.integers(min(source.size) // 2, min(source.size) + 1))
            left = int(rng.integers(0, source.width - side + 1))
            top = int(rng.integers(0, source.height - side + 1))
            crop = source.crop((left, top, left + side, top + side)).resize((500, 375), Image.Resampling.BICUBIC)
            crop.save(folder / f"{wnid}_{i:04d}.JPEG", quality=90)
    return Path(root)


def time_concepts(lite0: LoadedModel, images: Path | None, device: str) -> ConceptBench:
    """Seconds per class of `atlas concepts` (50 images a class), per phase, and the 1000-class projection."""
    loaded = replace(lite0, module=lite0.module.to(device))
    gpu = device.startswith("cuda")
    with tempfile.TemporaryDirectory(prefix="atlas-concept-images-") as work:
        # on a GPU two classes would time mostly the warm-up: 16 make one NMF group
        folder = images if images is not None else sample_folder(Path(work), images_per_class=50,
                                                                 classes=16 if gpu else None)
        measured = bench_concepts(loaded, folder, images_per_class=50, batch_size=256 if gpu else 32,
                                  group=16 if gpu else 1)
    source = str(images) if images is not None else "scikit-image photos, 500x375 JPEG"
    return replace(measured, source=source)
