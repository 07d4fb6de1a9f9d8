"""A class's concepts and a channel's dataset examples as a notebook shows them:
`atlas.Atlas(cache).concepts(...)` returns them.

Each `ClassConcepts` is the concept bank of one class that the call computed or found in the cache
(what `atlas render` turns into concept pictures and `atlas build` into the class page), with its
concepts most important first: their share of the class logit, their crops as PIL images (read from the cache, checked
against their sha256) and the objective whose MACO picture shows them. Jupyter shows a class as a
table of its concepts and their top crops, and a list of classes one after another. Each
`ExplainedChannel` is one channel's dataset examples (what its channel page shows): the image regions
that activate it most, with their activations and source classes. Torch-free.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from atlas.concepts.formats import ChannelExamples, Concept, ConceptBank, Crop, ExampleSet
from atlas.concepts.store import VISUALIZATION_COSINE, crop_path, verified_crop

if TYPE_CHECKING:
    from atlas.objectives import Objective

SHOWN_CROPS = 5  # crops a concept's row shows in Jupyter; `crops` gives every one
SHOWN_EXAMPLES = 8  # examples a channel's row shows in Jupyter; `crops` gives every one


def _crop_bytes(cache: Path, value: ConceptBank | ExampleSet, crop: Crop) -> bytes:
    info = value.files.get(crop.image)
    return verified_crop(crop_path(cache, value, crop), info.sha256 if info else None)


def _class_name(classes: Sequence[str], index: int) -> str:
    return classes[index] if 0 <= index < len(classes) else f"class {index}"


def _inline(data: bytes, alt: str) -> str:
    return (f'<img src="data:image/webp;base64,{base64.b64encode(data).decode()}" width="64" height="64" '
            f'alt="{html.escape(alt)}" style="margin-right:2px">')


@dataclass(frozen=True)
class ExplainedConcept:
    """One concept of a class: `rank` 1 is the most important."""

    cache: Path = field(repr=False)
    bank: ConceptBank = field(repr=False)
    position: int  # in the bank, 0 first
    classes: tuple[str, ...] = field(default=(), repr=False)  # the head's class names as the concepts named them

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
        return _crop_bytes(self.cache, self.bank, self.concept.crops[i])

    def __repr__(self) -> str:
        return f"ExplainedConcept(class {self.class_index}, concept {self.rank}, share {100 * self.share:.0f}%)"


@dataclass(frozen=True)
class ClassConcepts:
    """One class's concepts: `concepts` most important first; `logit` is their sum with `rest`."""

    cache: Path = field(repr=False)
    bank: ConceptBank = field(repr=False)
    classes: tuple[str, ...] = field(default=(), repr=False)  # the head's class names as the concepts named them

    @property
    def index(self) -> int:
        return self.bank.class_index

    @property
    def name(self) -> str:
        return _class_name(self.classes, self.index)

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
        return [ExplainedConcept(self.cache, self.bank, i, self.classes) for i in range(len(self.bank.concepts))]

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
            crops = "".join(_inline(concept._crop_bytes(i), f"crop {i + 1}") for i in range(shown))
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
SHOWN_CHANNELS = 10  # likewise a layer's hundreds of channels


@dataclass(frozen=True)
class ExplainedChannel:
    """One channel's dataset examples: the image regions of the folder that activate it most, highest
    first, one a source image. `class_names` names the source classes (the head's class names)."""

    cache: Path = field(repr=False)
    examples: ExampleSet = field(repr=False)
    position: int  # in the example set, 0 first
    class_names: tuple[str, ...] = field(default=(), repr=False)

    @property
    def _channel(self) -> ChannelExamples:
        return self.examples.channels[self.position]

    @property
    def layer(self) -> str:
        return self.examples.layer

    @property
    def channel(self) -> int:
        return self._channel.channel

    @property
    def activations(self) -> list[float]:
        """Each example's activation: the peak of the channel's map on its source image."""
        return [crop.value for crop in self._channel.examples]

    @property
    def files(self) -> list[str]:
        """Each example's source image, relative to the image folder."""
        return [crop.file for crop in self._channel.examples]

    @property
    def classes(self) -> list[int]:
        """Each example's source class (the folder it was read from)."""
        return list(self._channel.classes)

    @property
    def crops(self) -> list[Image.Image]:
        """The regions themselves, as the cache keeps them (128 px WebP), highest activation first."""
        return [Image.open(io.BytesIO(self._crop_bytes(i))) for i in range(len(self._channel.examples))]

    def _crop_bytes(self, i: int) -> bytes:
        return _crop_bytes(self.cache, self.examples, self._channel.examples[i])

    def __len__(self) -> int:
        return len(self._channel.examples)

    def __repr__(self) -> str:
        return f"ExplainedChannel({self.layer} channel {self.channel}, {len(self)} examples)"

    def _repr_html_(self) -> str:
        cells = []
        shown = self._channel.examples[:SHOWN_EXAMPLES]
        for i, (crop, source) in enumerate(zip(shown, self.classes[: len(shown)], strict=True)):
            name = _class_name(self.class_names, source)
            cells.append(f'<td style="text-align:center;font-size:smaller">'
                         f"{_inline(self._crop_bytes(i), f'example {i + 1}: {name}')}"
                         f"<br>{crop.value:.2f}<br>{html.escape(name)}</td>")
        first = f"; the first {len(shown)} here, <code>crops</code> has all" if len(shown) < len(self) else ""
        head = (f"<b><code>{html.escape(self.layer)}</code> channel {self.channel}</b>: the {len(self)} image "
                f"regions that activate it most, one an image, of {self.examples.images} images{first} (below "
                "each, its activation and the class of its image)")
        return f'<div style="margin-bottom:1em">{head}<table><tr>{"".join(cells)}</tr></table></div>'


class LayerExamples(list):
    """The dataset examples of a layer's channels, in channel order; Jupyter shows the first few."""

    def __init__(self, channels: Iterable[ExplainedChannel] = ()) -> None:
        super().__init__(channels)

    def channel(self, channel: int) -> ExplainedChannel:
        """The examples of `channel` (its number in the layer, not its place in this list)."""
        for shown in self:
            if shown.channel == channel:
                return shown
        raise KeyError(f"channel {channel} has no dataset examples here: these are channels "
                       f"{', '.join(str(c.channel) for c in self)}")

    def _repr_html_(self) -> str:
        return _first(self, SHOWN_CHANNELS, "channels", "<code>examples.channel(c)</code> shows channel c")


def _first(values: Sequence[Any], count: int, what: str, how: str) -> str:
    """The first `count` of `values` as Jupyter shows each, and how many more there are and `how` to see one."""
    shown = "".join(v._repr_html_() for v in values[:count])
    more = len(values) - count
    if more > 0:
        shown += f"<p>... and {more} more {what}: {how}.</p>"
    return shown


class Explanations(list):
    """The classes `Atlas.concepts` explained, in class order; Jupyter shows the first few in turn.
    `examples` holds the dataset examples asked for (`layers=`): layer -> `LayerExamples`."""

    def __init__(self, classes: Sequence[ClassConcepts] = (),
                 examples: dict[str, LayerExamples] | None = None) -> None:
        super().__init__(classes)
        self.examples = dict(examples or {})

    def _repr_html_(self) -> str:
        shown = _first(self, SHOWN_CLASSES, "classes", "<code>explained[i]</code> shows the i-th")
        if self.examples:
            layers = ", ".join(f"<code>{html.escape(layer)}</code> ({len(channels)} channels)"
                               for layer, channels in self.examples.items())
            shown += f"<p>Dataset examples of {layers}: <code>explained.examples[layer]</code> shows them.</p>"
        return shown
