"""The concept and dataset-example parts of the site's pages, as plain data: a class's concepts
(`ConceptView`, their crops, their links to other classes' concepts) and its logit taken apart
(`ShareTable`), a channel's dataset examples (`Example`, with the source thumbnail), and the words
their numbers are shown in. `gather.py` makes them; `atlas.site.pages` holds them on its pages.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from atlas.concepts.formats import Concept, ConceptBank
from atlas.record import ConceptExpression

if TYPE_CHECKING:  # the pages hold these views, and the views name their pages
    from atlas.site.pages import ClassPage, Media, Prediction, Related, Render

CROPS, CROP_EXT = "crops", ".webp"


@dataclass(frozen=True)
class CropImage:
    """A crop of a source image (a concept's patch, a channel's dataset example), copied into the site."""

    path: str  # site path: f"{CROPS}/<name>{CROP_EXT}", the name the cache's own (its content's sha256[:16])
    source: Path  # the file in the cache
    file: str  # the source image, relative to the images folder
    box: tuple[int, int, int, int]  # in the source image's pixels
    value: float  # what ranked it: the concept's coefficient, or the channel's activation
    size: tuple[int, int] | None = None  # (width, height), read where a page needs it
    source_size: tuple[int, int] | None = None  # the source image's (width, height), when the cache has it

    @property
    def name(self) -> str:
        """The file name without folder and extension: a concept's crop list on a page is these names
        after one base (`crops_base`), which keeps a page of ten concepts of ten crops small."""
        return posixpath.basename(self.path)[: -len(CROP_EXT)]


@dataclass(frozen=True)
class ConceptLink:
    """A concept of another class, linked by its anchor on that class's page."""

    page: ClassPage
    position: int
    cosine: float

    @property
    def path(self) -> str:
        return f"{self.page.path}#{concept_anchor(self.position)}"

    @property
    def rank(self) -> int:
        """1 for the class's most important concept (a page's `number` is its display string)."""
        return self.position + 1


def concept_anchor(position: int) -> str:
    return f"concept-{position + 1}"


@dataclass(eq=False)
class ConceptView:
    """One concept of a class page: its picture (when rendered), importance, crops and neighbours."""

    position: int  # in the bank: 0 is the most important
    concept: Concept
    render: Render | None  # the newest render of its direction; None until `atlas render` made it
    crops: tuple[CropImage, ...]
    aligned: tuple[Related, ...]
    similar: tuple[ConceptLink, ...]

    @property
    def anchor(self) -> str:
        return concept_anchor(self.position)

    @property
    def crop_names(self) -> str:
        return " ".join(crop.name for crop in self.crops)

    @property
    def rank(self) -> int:
        """1 for the class's most important concept (a page's `number` is its display string)."""
        return self.position + 1

    @property
    def media(self) -> Media | None:
        return self.render.media if self.render is not None else None

    @property
    def status(self) -> str:
        if self.render is None:
            return "pending"
        return "ok" if self.render.media is not None else "failed"

    @property
    def share(self) -> float:
        return self.concept.share

    @property
    def value_text(self) -> str:
        """Its contribution to the class logit, in logit units: "+1.23"."""
        return signed(self.concept.importance)

    @property
    def share_text(self) -> str:
        """Its share of the class logit ("16%"), empty when the logit is not positive (no share then)."""
        return percent(self.concept.importance / self.logit) if self.logit > 0 else ""

    logit: float = 0.0  # the bank's mean class logit

    @property
    def hold(self) -> Prediction | None:
        """How well the class holds on the concept's picture: the generator's reading of it (the
        rates of crops whose top-1 / top-5 is the class), as class pages show their judging."""
        if self.render is None or self.render.media is None:
            return None
        return next((p for p in self.render.predictions if p.role == "generator" and p.top1_rate is not None), None)

    @property
    def expression(self) -> ConceptExpression | None:
        """How strongly its picture shows this concept against the class's others (atlas.concepts.expression),
        when its render measured it."""
        return self.render.entry.record.expression if self.render is not None and self.media else None

    @property
    def expression_text(self) -> str:
        """"64% of its concept weight, 1st of 10": the own concept's share of the picture's concept
        coefficients, and its rank among the bank's concepts."""
        e = self.expression
        return f"{percent(e.share)} of its concept weight, {ordinal(e.rank)} of {e.concepts}" if e else ""

    def top_text(self, images: int) -> str:
        """In how many of the bank's images it is the most important concept, in words."""
        n = self.concept.top_images
        if n == 0:
            return f"top concept in none of the {images} images: it adds to others"
        return f"top concept in {n} of {images} images"


def signed(value: float, digits: int = 2) -> str:
    """A signed number, rounded first so that nothing reads "-0.00"."""
    text = f"{value:+.{digits}f}"
    return f"{0:.{digits}f}" if float(text) == 0 else text.replace("-", "\u2212")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def percent(fraction: float) -> str:
    """A percentage rounded to a whole number, never "-0%"."""
    whole = int(round(100 * fraction))
    return f"{whole}%".replace("-", "\u2212")


@dataclass(frozen=True)
class ShareRow:
    """One row of a class logit taken apart: a concept's contribution, or the rest."""

    label: str
    value: float  # in logit units, the mean over the bank's images
    fraction: float | None  # of the mean logit; None when that is not positive
    start: float  # the bar, as fractions of its track: where it starts ...
    width: float  # ... and how long it is
    anchor: str | None = None  # the concept card's anchor

    @property
    def negative(self) -> bool:
        return self.value < 0 and signed(self.value) != signed(0.0)

    @property
    def value_text(self) -> str:
        return signed(self.value)

    @property
    def share_text(self) -> str:
        return "" if self.fraction is None else percent(self.fraction)


@dataclass(frozen=True)
class ShareTable:
    """A class's mean logit as the sum of its concepts' contributions and the rest, with bars drawn
    relative to the largest contribution; a negative one runs left of the axis."""

    rows: tuple[ShareRow, ...]
    logit: float
    axis: float  # where zero sits on the bar track, from 0 (left) to 1
    images: int
    exact: bool

    @property
    def positive(self) -> bool:
        return self.logit > 0

    @property
    def logit_text(self) -> str:
        return signed(self.logit)

    @staticmethod
    def of(bank: ConceptBank) -> ShareTable:
        rest_label = "rest: bias and unexplained" if bank.exact else \
            "rest: unexplained and estimate error"
        parts = [(f"Concept {n}", c.importance, concept_anchor(n - 1)) for n, c in enumerate(bank.concepts, 1)]
        parts.append((rest_label, bank.residual + bank.rest, None))
        low = max(0.0, -min(v for _, v, _ in parts))
        high = max(0.0, max(v for _, v, _ in parts))
        span = (low + high) or 1.0
        axis = low / span
        rows = []
        for label, value, anchor in parts:
            width = abs(value) / span
            fraction = value / bank.logit if bank.logit > 0 else None
            rows.append(ShareRow(label, value, fraction, axis if value >= 0 else axis - width, width, anchor))
        return ShareTable(tuple(rows), bank.logit, axis, bank.images, bank.exact)


# The frame a source thumbnail is shown in under its example, CSS px: half the stored thumbnail's side, so
# it is sharp on a screen of two pixels a point, and small enough that 16 examples sit above the fold.
SOURCE_FRAME = (64, 48)


@dataclass(frozen=True)
class SourceThumbnail:
    """A dataset example's whole source image, small, copied into the site like the crops, and where
    the example's region lies on it."""

    path: str  # site path: f"{CROPS}/<name>{CROP_EXT}", the name the cache's own (its content's sha256[:16])
    source: Path  # the file in the cache
    size: tuple[int, int]  # (width, height) it is shown at, CSS px
    box: tuple[float, float, float, float]  # the region: left, top, width, height in percent of the image

    @staticmethod
    def of(path: str, source: Path, box: tuple[int, int, int, int],
           source_size: tuple[int, int]) -> SourceThumbnail | None:
        """The thumbnail of a source of `source_size` px with `box` (source pixels) on it; None when the
        size is no size. The box is kept inside the image, whatever the cache says."""
        width, height = source_size
        if width <= 0 or height <= 0:
            return None
        k = min(SOURCE_FRAME[0] / width, SOURCE_FRAME[1] / height)
        shown = (max(1, round(width * k)), max(1, round(height * k)))
        left, right = (min(max(v / width, 0.0), 1.0) for v in (box[0], box[2]))
        top, bottom = (min(max(v / height, 0.0), 1.0) for v in (box[1], box[3]))
        percent_box = (100 * left, 100 * top, 100 * max(right - left, 0.0), 100 * max(bottom - top, 0.0))
        return SourceThumbnail(path, source, shown, percent_box)


@dataclass(frozen=True)
class Example:
    """A channel's dataset example: the crop, the class of its source image and, when the cache has it
    and it passed its checks, the source image small with the crop's box on it."""

    crop: CropImage
    page: ClassPage | None  # None: the source class is not one of the model's
    thumbnail: SourceThumbnail | None = None
