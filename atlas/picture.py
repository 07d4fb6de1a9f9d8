"""A rendered picture as a notebook shows it: the image, its attribution map and its record.

`atlas.visualize` returns `Pictures`, a list of `Picture`s; Jupyter shows a picture through
`_repr_png_` / `_repr_html_`, and a list of them as one row.  Torch-free: the values are a
PIL image, a numpy array and the typed record (atlas.record) the cache would store.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from atlas.record import RenderRecord, TopClass


@dataclass(frozen=True)
class Picture:
    """One objective's picture for one seed.

    `image`: the picture as the cache stores it (8-bit RGB); `attribution`: (H, W) float32, the
    channel mean of the summed |gradient| over the steps; `record`: everything else (the
    objective, the model, the settings, the seed, the scores), as `atlas.record.RenderRecord`."""

    image: Image.Image = field(repr=False)
    attribution: np.ndarray = field(repr=False)
    record: RenderRecord = field(repr=False)
    class_names: tuple[str, ...] = field(default=(), repr=False, compare=False)  # for captions, when known
    model: Any = field(default=None, repr=False, compare=False)  # the LoadedModel, for `Atlas.add`'s model metadata

    @property
    def objective(self) -> str:
        return self.record.objective.id

    @property
    def description(self) -> str:
        return self.record.objective.description

    @property
    def value(self) -> float | None:
        """The objective's value at the last step (what the optimisation maximised); None when it failed."""
        return self.record.objective_value

    @property
    def seed(self) -> int:
        return self.record.seed

    @property
    def key(self) -> str:
        """Its cache key: the same settings, model and objective give the key `atlas render` gives."""
        return self.record.key

    @property
    def top5(self) -> tuple[TopClass, ...]:
        """The generating model's top-5 classes on crops of the picture; () for a feature extractor."""
        scores = self.record.scores
        generator = next((m for m in scores.models if m.role == "generator"), None) if scores else None
        return generator.top5 if generator is not None else ()

    def class_name(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else f"class {index}"

    def __repr__(self) -> str:
        value = "failed" if self.value is None else f"value {self.value:.4g}"
        return f"Picture({self.objective!r}, seed {self.seed}, {value}, {self.image.width} px)"

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()

    def _repr_html_(self) -> str:
        data = base64.b64encode(self._repr_png_()).decode("ascii")
        lines = [html.escape(self.description), "" if self.value is None else f"value {self.value:.4g}"]
        lines += [f"{html.escape(self.class_name(t.index))} {100 * t.prob:.0f}%" for t in self.top5[:3]]
        caption = "<br>".join(line for line in lines if line)
        return (f'<figure style="margin:4px;display:inline-block;vertical-align:top;max-width:256px">'
                f'<img src="data:image/png;base64,{data}" style="width:256px;image-rendering:auto" '
                f'alt="{html.escape(self.description)}"><figcaption style="font-size:12px">{caption}'
                f"</figcaption></figure>")


class Pictures(list):
    """The pictures of one `atlas.visualize` call, objective-major (each objective's seeds together)."""

    def _repr_html_(self) -> str:
        cells = "".join(picture._repr_html_() for picture in self)
        return f'<div style="display:flex;flex-wrap:wrap;align-items:flex-start">{cells}</div>'

    def _repr_png_(self) -> bytes | None:
        """All pictures side by side, for front ends that show only images."""
        if not self:
            return None
        height = max(p.image.height for p in self)
        row = Image.new("RGB", (sum(p.image.width for p in self), height), "white")
        left = 0
        for picture in self:
            row.paste(picture.image, (left, 0))
            left += picture.image.width
        buffer = io.BytesIO()
        row.save(buffer, format="PNG")
        return buffer.getvalue()
