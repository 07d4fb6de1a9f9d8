"""The configured classifier: the model, its weights and its class names, as every command loads them.

`atlas render`, `atlas concepts`, `atlas eval` and `atlas layers` load their model here, so that a
fine-tuned checkpoint's classes get the same names wherever they are read.  The names come from,
in this order: `labels` (a file, one name a line), the sorted class folders of the image folder
(`--images`, else `[concepts] images`) when the model has no class table of its own, timm's table
(ImageNet), and "class N".  `dataset` names the classes on the site.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from atlas import labels as class_labels
from atlas.config import Config
from atlas.models import LoadedModel, load_model


def load_configured_model(config: Config, images: str | os.PathLike | None = None, *,
                          device: str = "cpu") -> LoadedModel:
    """The config's model with its class names (above) and `dataset`; `images`: the command's image folder."""
    labels = class_labels.read_labels(config.labels) if config.labels is not None else None
    loaded = load_model(config.model, checkpoint=config.checkpoint, random_weights=config.random_weights,
                        device=device, labels=labels, labels_source=f"labels file {config.labels}")
    folder = images if images is not None else config.concepts.images
    if labels is None and folder is not None and loaded.num_classes and \
            loaded.classes == class_labels.numbered(loaded.num_classes):  # no names of its own
        names = class_labels.folder_labels(folder)
        classes = class_labels.class_table(names, loaded.num_classes, f"image folder {Path(folder)}")
        loaded = dataclasses.replace(loaded, classes=classes)
    if config.dataset is not None:
        loaded = dataclasses.replace(loaded, dataset=config.dataset)
    return loaded


def same_classes(judge: LoadedModel, generator: LoadedModel) -> bool:
    """Whether `judge` can score `generator`'s classes: the same class table, index for index."""
    return [(c.wnid, c.name) for c in judge.classes] == [(c.wnid, c.name) for c in generator.classes]
