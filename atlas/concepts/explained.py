"""A class's concepts as a notebook shows them: `atlas.Atlas(cache).concepts(...)` returns them.

Each `ClassConcepts` is the concept bank of one class that the call computed or found in the cache
(what `atlas render` turns into concept pictures and `atlas build` into the class page), with its
concepts most important first: their share of the class logit, their crops as PIL images (read from the cache, checked
against their sha256) and the objective whose MACO picture shows them. Jupyter shows a class as a
table of its concepts and their top crops, and a list of classes one after another. Torch-free.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from atlas.concepts.formats import Concept, ConceptBank
from atlas.concepts.store import VISUALIZATION_COSINE, crop_path, verified_crop

if TYPE_CHECKING:
    from atlas.objectives import Objective

SHOWN_CROPS = 5  # crops a concept's row shows in Jupyter; `crops` gives every one


@dataclass(frozen=True)
class ExplainedConcept:
    """One concept of a class: `rank` 1 is the most important."""

    cache: Path = field(repr=False)
    bank: ConceptBank = field(repr=False)
    position: int  # in the bank, 0 first

    @property
    def concept(self) -> Concept:
        return self.bank.concepts[self.position]

    @property
    def rank(self) -> int:
        return self.position + 1

    @property
    def class_index(self) -> int:
        return self.bank.class_index

    @property
    def share(self) -> float:
        """Its mean contribution to the class logit over the bank's images, as a fraction of that logit."""
        return self.concept.share

    @property
    def importance(self) -> float:
        """Its mean contribution to the class logit, in logit units."""
        return self.concept.importance

    @property
    def crops(self) -> list[Image.Image]:
        """The image patches that express it most, most first (128 px WebP, as the cache keeps them)."""
        return [Image.open(io.BytesIO(self._crop_bytes(i))) for i in range(len(self.concept.crops))]

    @property
    def objective(self) -> Objective:
        """The direction whose MACO picture shows it, as `atlas render` renders it (the same cache key)."""
        from atlas.concepts.craft import concept_objective  # here: the module stays torch-free

        return concept_objective(self.bank.layer, self.concept.values, cosine=VISUALIZATION_COSINE)

    def _crop_bytes(self, i: int) -> bytes:
        crop = self.concept.crops[i]
        info = self.bank.files.get(crop.image)
        return verified_crop(crop_path(self.cache, self.bank, crop), info.sha256 if info else None)

    def __repr__(self) -> str:
        return f"ExplainedConcept(class {self.class_index}, concept {self.rank}, share {100 * self.share:.0f}%)"


@dataclass(frozen=True)
class ClassConcepts:
    """One class's concepts: `concepts` most important first; `logit` is their sum with `rest`."""

    cache: Path = field(repr=False)
    bank: ConceptBank = field(repr=False)
    name: str

    @property
    def index(self) -> int:
        return self.bank.class_index

    @property
    def layer(self) -> str:
        return self.bank.layer

    @property
    def logit(self) -> float:
        """The class logit, mean over the bank's images."""
        return self.bank.logit

    @property
    def rest(self) -> float:
        """What the concepts leave of the logit: the bias and what they do not reconstruct, in logit units."""
        return self.bank.residual + self.bank.rest

    @property
    def concepts(self) -> list[ExplainedConcept]:
        return [ExplainedConcept(self.cache, self.bank, i) for i in range(len(self.bank.concepts))]

    def __len__(self) -> int:
        return len(self.bank.concepts)

    def __repr__(self) -> str:
        shares = ", ".join(f"{100 * c.share:.0f}%" for c in self.bank.concepts)
        return f"ClassConcepts({self.index} {self.name!r}, {len(self)} concepts at {self.layer}: {shares})"

    def _repr_html_(self) -> str:
        right = ' style="text-align:right;padding-right:1em"'
        rows = []
        for concept in self.concepts:
            shown = len(concept.concept.crops[:SHOWN_CROPS])
            crops = "".join(f'<img src="data:image/webp;base64,{base64.b64encode(concept._crop_bytes(i)).decode()}" '
                            f'width="64" height="64" alt="crop {i + 1}" style="margin-right:2px">'
                            for i in range(shown))
            rows.append(f'<tr><td style="text-align:left">concept {concept.rank}</td><td{right}>'
                        f"{100 * concept.share:.0f}%</td><td{right}>{concept.importance:+.2f}</td>"
                        f'<td style="text-align:left">{crops}</td></tr>')
        head = (f"<b>{self.index} {html.escape(self.name)}</b>: {len(self)} concepts at layer "
                f"<code>{html.escape(self.layer)}</code> from {self.bank.images} images; class logit "
                f"{self.logit:+.2f} = the concepts {self.logit - self.rest:+.2f} + the rest (bias, unexplained) "
                f"{self.rest:+.2f}")
        return (f'<div style="margin-bottom:1em">{head}<table><tr><th style="text-align:left">concept</th>'
                f"<th{right}>share of the logit</th><th{right}>in logit units</th>"
                f'<th style="text-align:left">the patches that show it most</th></tr>{"".join(rows)}</table></div>')


SHOWN_CLASSES = 10  # 1000 classes of 10 concepts of 5 inline crops would be hundreds of MB of HTML


class Explanations(list):
    """The classes `Atlas.concepts` explained, in class order; Jupyter shows the first few in turn."""

    def __init__(self, classes: Sequence[ClassConcepts] = ()) -> None:
        super().__init__(classes)

    def _repr_html_(self) -> str:
        shown = "".join(c._repr_html_() for c in self[:SHOWN_CLASSES])
        more = len(self) - SHOWN_CLASSES
        if more > 0:
            shown += f"<p>... and {more} more classes: <code>explained[i]</code> shows the i-th.</p>"
        return shown
