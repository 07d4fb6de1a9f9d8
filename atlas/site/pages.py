"""The site's content objects: pages, renders and their media, as plain data.

Each page knows its own output path (relative to the site root) and gives relative URLs to
anything else with `page.href(target)`, so templates never compute paths. `gather.py` makes
these objects from a cache; templates and the JSON writer only read them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import posixpath
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from atlas.concepts.formats import ConceptBank, ExampleSet
from atlas.matches import Counterpart
from atlas.model_record import ClassInfo, LayerInfo, ModelInfo
from atlas.record import class_objective_words, target_rates
from atlas.site.cache_reader import CacheContents, Entry
from atlas.site.concept_views import CROPS, ConceptView, Example, ShareTable

THUMB_SIDE = 192
DETAIL_SIDE = 640
# Part of every derivative's name: bump it when the way derivatives are made changes.
DERIVATIVES_VERSION = "1"


@functools.lru_cache(maxsize=65536)
def _relative(target: str, folder: str) -> str:
    return posixpath.relpath(target, folder or ".")


class HasPath(Protocol):
    path: str


def scaled(size: tuple[int, int], side: int) -> tuple[int, int]:
    """`size` shrunk so that its longer side is at most `side` (never enlarged)."""
    w, h = size
    k = min(1.0, side / max(w, h))
    return max(1, round(w * k)), max(1, round(h * k))


@dataclass(frozen=True)
class Media:
    """The site's files for one rendered entry, named by a hash of their sources.

    A new render gets new names, so unchanged derivatives never need rewriting and a
    browser never shows a stale cached picture.
    """

    folder: str
    full_size: tuple[int, int]
    with_png: bool

    @staticmethod
    def for_entry(entry: Entry, with_png: bool) -> Media:
        assert entry.size is not None and entry.image_sha256 and entry.attribution_sha256
        material = f"{DERIVATIVES_VERSION}:{THUMB_SIDE}:{DETAIL_SIDE}:{entry.image_sha256}:{entry.attribution_sha256}"
        return Media(f"media/{hashlib.sha256(material.encode()).hexdigest()[:16]}", entry.size, with_png)

    @property
    def thumb(self) -> str:
        return f"{self.folder}/thumb.webp"

    @property
    def thumb_overlay(self) -> str:
        return f"{self.folder}/thumb-overlay.webp"

    @property
    def detail(self) -> str:
        return f"{self.folder}/detail.webp"

    @property
    def detail_overlay(self) -> str:
        return f"{self.folder}/detail-overlay.webp"

    @property
    def png(self) -> str | None:
        return f"{self.folder}/image.png" if self.with_png else None

    @property
    def thumb_size(self) -> tuple[int, int]:
        return scaled(self.full_size, THUMB_SIDE)

    @property
    def detail_size(self) -> tuple[int, int]:
        return scaled(self.full_size, DETAIL_SIDE)

    @property
    def files(self) -> tuple[str, ...]:
        names = (self.thumb, self.thumb_overlay, self.detail, self.detail_overlay)
        return names + ((self.png,) if self.png else ())


EVERY_MODEL = ("models.html", "compare.html")  # the templates of the root's pages about every model


@dataclass(eq=False)
class Page:
    path: str  # output path relative to the site root, e.g. "classes/0607.html"
    title: str
    template: str

    @property
    def section(self) -> str:
        """Which section of its model's part of the site the page belongs to, for the navigation bar;
        "models" for the root's pages about every model, which belong to no one model's sections."""
        if self.template in EVERY_MODEL:
            return "models"
        if "/layers/" in f"/{self.path}":
            return "layers"
        return "about" if posixpath.basename(self.path) == "about.html" else "classes"

    @property
    def root(self) -> str:
        """The site root relative to this page: "", "../" or "../../"."""
        return "../" * self.path.count("/")

    def href(self, target: str | HasPath) -> str:
        """A relative URL from this page to `target` (a site path, or anything with `.path`)."""
        return _relative(target if isinstance(target, str) else target.path, posixpath.dirname(self.path))

    @property
    def crops_base(self) -> str:
        """The crops folder relative to this page, with its trailing slash."""
        return f"{self.root}{CROPS}/"


@dataclass(frozen=True)
class Guess:
    page: ClassPage
    prob: float
    is_target: bool


@dataclass(frozen=True)
class Prediction:
    model: str
    role: str
    guesses: tuple[Guess, ...]
    top1_rate: float | None
    top5_rate: float | None


@dataclass(frozen=True)
class ScaleRates:
    """One model's hold on the class at each scale of the judging protocol (atlas.scoring)."""

    model: str
    rates: tuple[tuple[float | None, float | None], ...]  # (top-1, top-5) per scale, in JudgingTable order


@dataclass(frozen=True)
class JudgingTable:
    scales: tuple[str, ...]  # column headings: "small crops (20-45% of the side)", ..., "whole picture"
    rows: tuple[ScaleRates, ...]


@dataclass(frozen=True)
class Related:
    page: ClassPage
    score: float


@dataclass(frozen=True)
class Called:
    """The generator's own top-1 on the whole picture, when that is another class than its target."""

    model: str
    page: ClassPage
    prob: float


@dataclass(eq=False)
class Render:
    """One cached entry as a page shows it."""

    entry: Entry
    media: Media | None
    predictions: tuple[Prediction, ...]
    name: str  # file name stem for downloads: "efficientnet_lite0-class-0607-seed0"
    called: Called | None = None

    @property
    def crops(self) -> int | None:
        scores = self.entry.record.scores
        return scores.crops if scores else None

    @property
    def _scores_scale(self) -> tuple[str, tuple[float, float] | None]:
        """The judging scale the top-5 lists were read on (by name, "random" where the record has
        no judging at that scale) and its crop sides."""
        record = self.entry.record
        scale = record.scores.crop_scale if record.scores else None
        name = next((n for n, s in (record.judging or {}).items() if scale and s.crop_scale == scale), "random")
        return name, scale

    @property
    def crops_words(self) -> str:
        """"large crops (40-80% of the side)"."""
        return scale_words(*self._scores_scale)

    @property
    def crops_name(self) -> str:
        """"large crops", as short as a concept card needs it."""
        return scale_words(self._scores_scale[0], None)

    @property
    def judging(self) -> JudgingTable | None:
        """The record's judging as a table, for class targets (a channel has no class to hold)."""
        judging = self.entry.record.judging
        if not judging:
            return None
        rates = target_rates(judging)
        first = next(iter(judging.values()))
        if all(m.target_top1_rate is None for m in first.models):
            return None
        scales = tuple(scale_words(name, scores.crop_scale) for name, scores in judging.items())
        rows = tuple(ScaleRates(m.name, tuple(rates[scale].get(m.name, (None, None)) for scale in judging))
                     for m in first.models)
        return JudgingTable(scales, rows)

    @property
    def parameters(self) -> list[tuple[str, str]]:
        rec = self.entry.record
        timing = rec.timing
        rows = [(k if k != "name" else "preset", _text(v)) for k, v in rec.preset.items()]
        rows += [
            ("parameterisation", _text(rec.param)),
            ("seed", f"{rec.seed} (index {rec.seed_index})"),
            ("objective value", _text(rec.objective_value)),
            ("render time", f"{timing.seconds} s" if timing else "–"),
            ("batch size", _text(timing.batch_size if timing else None)),
            ("device", _text(timing.device if timing else None)),
            ("finished", _text(timing.finished if timing else None)),
            ("spectrum sha256", rec.spectrum_sha256[:16]),
            ("engine version", rec.engine_version),
            ("cache key", rec.key[:16]),
        ]
        if rec.retry is not None:
            rows.append(("retried", f"first seed {rec.retry.first_seed}: {rec.retry.reason}"))
        return rows


def scale_words(name: str, scale: tuple[float, float] | None) -> str:
    """A scale of the judging protocol (atlas.scoring) as every page names it, from the record's own
    crop scale: "small crops (20-45% of the side)", "large crops (...)", "whole picture"."""
    if name == "whole" or (scale is not None and scale[0] == scale[1] == 1.0):
        return "whole picture"
    if scale is None:
        return f"{name} crops"
    low, high = scale
    # a non-breaking hyphen: a narrow column wraps between the words, not inside the range
    return f"{name} crops ({100 * low:.0f}\u2011{100 * high:.0f}% of the side)"


def judging_words(renders: Iterable[Render]) -> dict[str, str]:
    """Each judging scale's words, from the first of `renders` whose record has that scale."""
    found: dict[str, tuple[float, float] | None] = {}
    for render in renders:
        for name, scores in (render.entry.record.judging or {}).items():
            if found.get(name) is None:
                found[name] = scores.crop_scale
    return {name: scale_words(name, scale) for name, scale in found.items()}


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass(eq=False)
class UnitPage(Page):
    """A page about one objective (a class or a channel): renders, predictions, neighbours."""

    data_path: str = ""
    renders: list[Render] = field(default_factory=list)
    related: list[Related] = field(default_factory=list)
    prev: UnitPage | None = None
    next: UnitPage | None = None

    @property
    def ok_renders(self) -> list[Render]:
        return [r for r in self.renders if r.media is not None]

    @property
    def failed_renders(self) -> list[Render]:
        return [r for r in self.renders if r.media is None]

    @property
    def main(self) -> Render | None:
        ok = self.ok_renders
        return ok[0] if ok else None

    @property
    def shared_parameters(self) -> list[tuple[str, str]]:
        """Parameter rows that every rendered seed has in common (shown once)."""
        tables = [r.parameters for r in self.ok_renders]
        if not tables:
            return []
        common = set(tables[0]).intersection(*map(set, tables[1:]))
        return [row for row in tables[0] if row in common]

    def own_parameters(self, render: Render) -> list[tuple[str, str]]:
        """The rows in which `render` differs from the other seeds."""
        shared = set(self.shared_parameters)
        return [row for row in render.parameters if row not in shared]

    @property
    def judging_scales(self) -> tuple[str, ...] | None:
        """The scales of the judging table when every rendered seed has one on the same scales: the
        seeds then share its head, each its own body (a page of four seeds says the head once)."""
        tables = [r.judging for r in self.ok_renders]
        if not tables or any(t is None or t.scales != tables[0].scales for t in tables):
            return None
        return tables[0].scales

    @property
    def status(self) -> str:
        if self.ok_renders:
            return "ok"
        return "failed" if self.renders else "pending"

    @property
    def has_pictures(self) -> bool:
        """A picture on the page that the image/attribution toggle applies to."""
        return self.main is not None

    @property
    def explained(self) -> bool:
        """What explains the unit without its picture: a class's concepts, a channel's dataset examples."""
        return False

    @property
    def shows_something(self) -> bool:
        """A picture, or what explains the unit before it: a page that browsing stops at."""
        return self.status == "ok" or self.explained

    @property
    def label(self) -> str:
        raise NotImplementedError


class OfClass:
    """A page about one class (its `info`): its index, the zero-padded number it is shown by, its name."""

    info: ClassInfo | None

    @property
    def index(self) -> int:
        assert self.info is not None
        return self.info.index

    @property
    def number(self) -> str:
        return f"{self.index:04d}"

    @property
    def name(self) -> str:
        assert self.info is not None
        return self.info.name


@dataclass(eq=False)
class ClassPage(OfClass, UnitPage):
    info: ClassInfo | None = None
    bank: ConceptBank | None = None
    concepts: list[ConceptView] = field(default_factory=list)
    kind = "class"

    @property
    def shares(self) -> ShareTable | None:
        return ShareTable.of(self.bank) if self.bank is not None and self.concepts else None

    @property
    def label(self) -> str:
        return f"{self.number} {self.name}"

    @property
    def explained(self) -> bool:
        return bool(self.concepts)

    @property
    def has_pictures(self) -> bool:
        """Its own picture, or a concept's."""
        return self.main is not None or any(c.media is not None for c in self.concepts)

    @property
    def objective_text(self) -> str:
        """What the class pictures maximise, in words: "class logit 1", "class 1's logit + log-probability"."""
        shown = self.renders[0].entry.record.objective if self.renders else None
        if shown is None:
            return f"class logit {self.index}"
        words = class_objective_words(shown.id, self.index)
        if words is None:  # weighted, or another class's term: the record's own words
            return shown.description
        return f"class logit {self.index}" if words == ["logit"] else f"class {self.index}'s " + " + ".join(words)


@dataclass(eq=False)
class LayerPage(Page):
    info: LayerInfo | None = None
    slug: str = ""
    channels: list[ChannelPage] = field(default_factory=list)
    is_last: bool = False

    @property
    def name(self) -> str:
        assert self.info is not None
        return self.info.name

    @property
    def rendered(self) -> int:
        return sum(1 for c in self.channels if c.status == "ok")

    @property
    def with_examples(self) -> int:
        return sum(1 for c in self.channels if c.examples)

    @property
    def samples(self) -> list[ChannelPage]:
        return [c for c in self.channels if c.status == "ok"][:6]


@dataclass(frozen=True)
class SameUnit:
    """The unit another model has for a channel (`atlas match`): its channel page when the site has it."""

    match: Counterpart
    page: ChannelPage | None  # None: that model is not in this site; the match is shown without a link

    @property
    def correlation_text(self) -> str:
        return f"{self.match.correlation:.2f}"


@dataclass(eq=False)
class ChannelPage(UnitPage):
    layer: LayerPage | None = None
    channel: int = 0
    examples: list[Example] = field(default_factory=list)
    example_set: ExampleSet | None = None
    same_units: list[SameUnit] = field(default_factory=list)
    kind = "channel"

    @property
    def number(self) -> str:
        """What the reader sees it called where its layer is known: "channel 101" (its files are c0101.*)."""
        return f"channel {self.channel}"

    @property
    def explained(self) -> bool:
        return bool(self.examples)

    @property
    def stem(self) -> str:
        """The name of its files (c0101.html, c0101.json, the downloads' layer-c0101-seed0.png)."""
        return Path(self.path).stem

    @property
    def label(self) -> str:
        assert self.layer is not None
        return f"{self.layer.name} · channel {self.channel}"


@dataclass(frozen=True)
class Summary:
    classes: int
    classes_rendered: int
    classes_failed: int
    classes_explained: int  # classes with concepts, rendered or not
    channels_rendered: int
    channels_failed: int
    layers_with_channels: int
    renders: int
    extra_seeds: int
    updated: str  # newest render's finish time: the site is a pure function of the cache
    render_seconds: float
    presets: tuple[tuple[str, int], ...]  # (preset JSON, renders using it)
    params: tuple[str, ...]
    devices: tuple[str, ...]
    engine_versions: tuple[str, ...]
    spectra: tuple[str, ...]
    first_finished: str


@dataclass(eq=False)
class Site:
    contents: CacheContents
    with_png: bool
    home: Page
    about: Page
    not_found: Page
    layers_index: Page
    classes: list[ClassPage]
    layers: list[LayerPage]
    summary: Summary
    prefix: str = ""  # the model's folder in the site, "" for a site of its own
    roster: Any = None  # the atlas's models (atlas.site.roster.Roster): the root index and the model switcher

    @property
    def model(self) -> ModelInfo:
        return self.contents.model

    @property
    def manifest_path(self) -> str:
        return f"{self.prefix}data/manifest.json"

    @property
    def index_path(self) -> str:
        return f"{self.prefix}data/index.json"

    @property
    def top(self) -> Page:
        """The site's root page: the models of the atlas, or this model's index in a site of its own."""
        return self.roster.home if self.roster is not None else self.home

    def compare(self, page: Page) -> Page | None:
        """The class's compare page across the atlas's models (atlas.site.compare), if it has one."""
        return self.roster.compare_of(self, page) if self.roster is not None else None

    def switcher(self, page: Page) -> list:
        """Links to the same page in the atlas's other models (atlas.site.roster), none in a one-model site."""
        return self.roster.switch(self, page) if self.roster is not None else []

    @property
    def channels(self) -> list[ChannelPage]:
        return [c for layer in self.layers for c in layer.channels]

    @property
    def pages(self) -> list[Page]:
        return [self.home, self.about, self.not_found, self.layers_index, *self.classes, *self.layers, *self.channels]

    @property
    def renders(self) -> list[Render]:
        """Every render the site shows: the classes' and channels', then the concepts'."""
        units = [r for p in [*self.classes, *self.channels] for r in p.renders]
        return units + [c.render for p in self.classes for c in p.concepts if c.render is not None]

    def include_pngs(self, on: bool = True) -> None:
        """Switch the full-size PNG downloads on (or back off): the build gathers a site without
        them, measures it with them, and only then decides (gathering again would give the same pages)."""
        self.with_png = on
        for render in self.renders:
            if render.media is not None:
                render.media = replace(render.media, with_png=on)

    @property
    def crops(self) -> dict[str, Path]:
        """Site path -> cache file of every crop the pages show."""
        found = {crop.path: crop.source for p in self.classes for c in p.concepts for crop in c.crops}
        found.update((e.crop.path, e.crop.source) for p in self.channels for e in p.examples)
        return found

    @property
    def thumbnails(self) -> dict[str, Path]:
        """Site path -> cache file of every source thumbnail the pages show."""
        return {e.thumbnail.path: e.thumbnail.source for p in self.channels for e in p.examples if e.thumbnail}

    def drop_thumbnails(self, paths: Collection[str]) -> None:
        """Show the examples whose source thumbnail is one of `paths` (site paths) without it."""
        for page in self.channels:
            page.examples = [replace(e, thumbnail=None) if e.thumbnail and e.thumbnail.path in paths else e
                             for e in page.examples]

    @property
    def has_concepts(self) -> bool:
        return any(p.concepts for p in self.classes)

    @property
    def called_classes(self) -> int:
        """Class pictures that their own generator reads as another class: the index marks their tiles."""
        return sum(1 for p in self.classes if p.main is not None and p.main.called is not None)

    @functools.cached_property
    def searches_channels(self) -> bool:
        """Whether the search box finds channels: it covers every model of the atlas."""
        sites = self.roster.sites if self.roster is not None else [self]
        return any(layer.channels for site in sites for layer in site.layers)

    @functools.cached_property
    def scale_words(self) -> dict[str, str]:
        """The judging scales by name ("small", "large", "whole"), in the words every page uses."""
        return judging_words(self.renders)

    @property
    def presets(self) -> list[dict[str, Any]]:
        return [json.loads(p) for p, _ in self.summary.presets]

    @property
    def preset_labels(self) -> list[str]:
        """"atlas · 512 px · 256 steps" for each preset in use, the most used first."""
        labels = []
        for preset in self.presets:
            parts = [str(preset.get("name", "custom"))]
            if preset.get("canvas") is not None:
                parts.append(f"{preset['canvas']} px")
            if preset.get("steps") is not None:
                parts.append(f"{preset['steps']} steps")
            labels.append(" · ".join(parts))
        return labels
