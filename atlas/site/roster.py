"""The atlas's models: each model's folder, the root index of model cards, and the model switcher.

An atlas holds one or more models; each model's pages live in a folder named by the model
(`efficientnet_lite0/classes/0001.html`), so that a link to a page stays the same when a model is
added. The switcher on every page links the same class, channel, layer or page of each other
model where that model has it, else that model's index.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from atlas.site.compare import ComparePage, Matrix, Rates, compare_pages, matrix
from atlas.site.pages import ChannelPage, ClassPage, LayerPage, Page, Site

MODEL_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
HOME = "index.html"


def model_folder(name: str) -> str:
    """The model's folder in the site: timm names stay as they are, anything else becomes '-'
    ("hf-hub:timm/x" -> "hf-hub-timm-x")."""
    return MODEL_UNSAFE.sub("-", name).strip(".-") or "model"


@dataclass(frozen=True)
class SwitchLink:
    """One model in the switcher: where the page's counterpart is (`same`), or that model's index."""

    name: str
    path: str
    current: bool
    same: bool


@dataclass(frozen=True)
class ModelCard:
    """A model on the root index: what it is and how well its pictures hold their class."""

    site: Site
    whole_top1: float | None  # mean whole-picture top-1 of the generator on its own class pictures
    large_top1: float | None  # the same on large crops
    previews: tuple[ClassPage, ...] = ()  # a few of its class pictures, the same classes on every card

    @property
    def name(self) -> str:
        return self.site.model.name

    @property
    def large(self) -> str:
        """The large scale in words: "large crops (40-80% of the side)"."""
        return self.site.scale_words.get("large", "large crops")

    @property
    def architecture(self) -> str:
        return self.name.split("@")[0]

    @staticmethod
    def of(site: Site, previews: Sequence[int]) -> ModelCard:
        shown = [site.classes[i] for i in previews if 0 <= i < len(site.classes) and site.classes[i].main]
        return ModelCard(site, _generator_rate(site, "whole"), _generator_rate(site, "large"),
                         tuple(shown or [p for p in site.classes if p.main][:PREVIEWS]))


PREVIEWS = 6  # class pictures on a model's card: a first look at what it draws


def _preview_classes(sites: Sequence[Site]) -> list[int]:
    """The first classes that every model has a picture of, so that the cards compare like with like."""
    drawn = [{p.index for p in site.classes if p.main} for site in sites]
    return sorted(set.intersection(*drawn))[:PREVIEWS] if drawn else []


def _generator_rate(site: Site, scale: str) -> float | None:
    """The generator's mean target top-1 rate at `scale` over the class pictures it made (first seed)."""
    rates = []
    for page in site.classes:
        judging = page.main.entry.record.judging if page.main is not None else None
        scores = judging.get(scale) if judging else None
        own = next((m for m in scores.models if m.role == "generator"), None) if scores else None
        if own is not None and own.target_top1_rate is not None:
            rates.append(own.target_top1_rate)
    return sum(rates) / len(rates) if rates else None


def _key(site: Site, page: Page) -> tuple[Any, ...]:
    """What a page is about, the same in every model: a class (by index and name), a channel, a layer,
    or a page of the model's folder by its place there."""
    if isinstance(page, (ClassPage, ComparePage)):  # a compare page's switcher opens the class in each model
        assert page.info is not None
        return ("class", page.index, page.info.wnid, page.info.name)
    if isinstance(page, ChannelPage):
        assert page.layer is not None
        return ("channel", page.layer.name, page.channel)
    if isinstance(page, LayerPage):
        return ("layer", page.name)
    return ("page", page.path.removeprefix(site.prefix))


@dataclass(eq=False)
class Roster:
    """Every model's part of the site, the default (first) model first."""

    sites: list[Site]
    judged: dict[tuple[str, str], Rates] = field(default_factory=dict)  # (picture key, judge) -> its rates
    home: Page = field(default_factory=lambda: Page(HOME, "Models", "models.html"))
    compares: list[ComparePage] = field(default_factory=list)
    matrix: Matrix | None = None
    _pages: dict[int, dict[tuple[Any, ...], Page]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for site in self.sites:
            site.roster = self
        self.compares = compare_pages(self.sites, self.judged)
        self.matrix = matrix(self.sites, self.judged)
        self._compare = {p.index: p for p in self.compares}
        link_same_units(self.sites)

    @property
    def own_pages(self) -> list[Page]:
        """The pages of the atlas rather than of one model: the root index and the compare pages."""
        return [self.home, *self.compares]

    def compare_of(self, site: Site, page: Page) -> ComparePage | None:
        """The compare page of a class page of a model that takes part in the comparison."""
        if not isinstance(page, ClassPage) or not self.compares:
            return None
        found = self._compare.get(page.index)
        return found if found is not None and any(c.site is site for c in found.columns) else None

    @property
    def default(self) -> Site:
        return self.sites[0]

    @property
    def cards(self) -> list[ModelCard]:
        previews = _preview_classes(self.sites)
        return [ModelCard.of(site, previews) for site in self.sites]

    def _index(self, site: Site) -> dict[tuple[Any, ...], Page]:
        if id(site) not in self._pages:
            self._pages[id(site)] = {_key(site, p): p for p in site.pages if p is not site.not_found}
        return self._pages[id(site)]

    def switch(self, site: Site, page: Page) -> list[SwitchLink]:
        """The switcher of `page` (a page of `site`): every model, linked to its counterpart of `page`."""
        if len(self.sites) < 2 or page is site.not_found or page is self.home:
            return []
        key = _key(site, page)
        links = []
        for other in self.sites:
            target = self._index(other).get(key)
            links.append(SwitchLink(other.model.name, (target or other.home).path, target is page, target is not None))
        return links

    # The whole atlas as the build writes it: every model's pages and files, and the root index.

    @property
    def pages(self) -> list[Page]:
        return [*self.own_pages, *(p for site in self.sites for p in site.pages)]

    @property
    def renders(self) -> list:
        return [r for site in self.sites for r in site.renders]

    @property
    def crops(self) -> dict:
        return {path: source for site in self.sites for path, source in site.crops.items()}

    @property
    def thumbnails(self) -> dict:
        return {path: source for site in self.sites for path, source in site.thumbnails.items()}

    def drop_thumbnails(self, paths: Collection[str]) -> None:
        for site in self.sites:
            site.drop_thumbnails(paths)

    @property
    def with_png(self) -> bool:
        return self.default.with_png

    def include_pngs(self, on: bool = True) -> None:
        for site in self.sites:
            site.include_pngs(on)


def link_same_units(sites: list[Site]) -> None:
    """A channel's matches in other models (`atlas match`) link to those models' channel pages where the
    atlas holds them: each model's part was gathered alone, and saw only its own pages."""
    pages = {(site.contents.model.name, site.contents.model.weights_sha256, layer.name, page.channel): page
             for site in sites for layer in site.layers for page in layer.channels}
    for site in sites:
        for layer in site.layers:
            for page in layer.channels:
                page.same_units = [dataclasses.replace(unit, page=pages.get(
                    (unit.match.model, unit.match.weights_sha256, unit.match.layer, unit.match.channel)))
                    for unit in page.same_units]
