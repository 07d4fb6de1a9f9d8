"""Feature-visualization atlas: MACO renders of a vision model's classes and channels, as a static site.

The library, for notebooks (README, "From a notebook"):

    atlas.visualize(model, ["class:1", "channel:layer4:12"], preset="cpu", seeds=2) -> Pictures
    atlas.Atlas(cache_folder).add(pictures)        # cache entries that `atlas build` shows
    atlas.Atlas(cache_folder).concepts(model, dir) -> each class's concepts, which visualize renders
    atlas.objectives.channel("layer4", 12) + ...   # objective values, their algebra
    atlas.RenderSettings.make("atlas", steps=64)   # the settings of a render, as one value

These names are imported on first use: `import atlas` stays light (no torch) for the site side.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that owns it; loaded when first read
_LAZY = {
    "visualize": "atlas.notebook",
    "Atlas": "atlas.notebook",
    "Picture": "atlas.picture",
    "Pictures": "atlas.picture",
    "RenderSettings": "atlas.settings",
    "get_preset": "atlas.presets",
    "load_model": "atlas.models",
    "AtlasError": "atlas.errors",
}
_MODULES = ("objectives", "presets", "models", "render")

__all__ = ["__version__", *_LAZY, *_MODULES]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _MODULES:
        return importlib.import_module(f"atlas.{name}")
    raise AttributeError(f"module 'atlas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
