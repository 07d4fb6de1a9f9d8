"""Plain data about every page of the site, gathered once so that every page sees the same data.

Content objects know their own output path (relative to the site root) and give relative
URLs to anything else with `page.href(target)`; templates never compute paths.
"""

from __future__ import annotations

import functools
import hashlib
import json
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from atlas.errors import AtlasError
from atlas.site.records import CacheContents, ClassInfo, Entry, LayerInfo

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


@dataclass(eq=False)
class Page:
    path: str  # output path relative to the site root, e.g. "classes/0607.html"
    title: str
    template: str

    @property
    def section(self) -> str:
        """Which top-level section the page belongs to, for the navigation bar."""
        if self.path.startswith("layers/"):
            return "layers"
        return "about" if self.path == "about.html" else "classes"

    @property
    def root(self) -> str:
        """The site root relative to this page: "", "../" or "../../"."""
        return "../" * self.path.count("/")

    def href(self, target: str | HasPath) -> str:
        """A relative URL from this page to `target` (a site path, or anything with `.path`)."""
        return _relative(target if isinstance(target, str) else target.path, posixpath.dirname(self.path))


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
class Related:
    page: ClassPage
    score: float


@dataclass(eq=False)
class Render:
    """One cached entry as a page shows it."""

    entry: Entry
    media: Media | None
    predictions: tuple[Prediction, ...]
    name: str  # file name stem for downloads: "efficientnet_lite0-class-0607-seed0"

    @property
    def crops(self) -> int | None:
        return (self.entry.record.get("scores") or {}).get("crops")

    @property
    def status(self) -> str:
        return self.entry.status

    @property
    def failure(self) -> str | None:
        return self.entry.failure

    @property
    def seed(self) -> int:
        return self.entry.seed

    @property
    def parameters(self) -> list[tuple[str, str]]:
        rec = self.entry.record
        timing = rec.get("timing") or {}
        rows = [(k if k != "name" else "preset", _text(v)) for k, v in (rec.get("preset") or {}).items()]
        rows += [
            ("parameterisation", _text(rec.get("param"))),
            ("seed", f"{self.entry.seed} (index {self.entry.seed_index})"),
            ("objective value", _text(rec.get("objective_value"))),
            ("render time", f"{timing['seconds']} s" if timing.get("seconds") is not None else "–"),
            ("batch size", _text(timing.get("batch_size"))),
            ("device", _text(timing.get("device"))),
            ("finished", _text(timing.get("finished"))),
            ("spectrum sha256", _text(rec.get("spectrum_sha256"))[:16]),
            ("engine version", _text(rec.get("engine_version"))),
            ("cache key", self.entry.key[:16]),
        ]
        retry = rec.get("retry")
        if isinstance(retry, dict):
            rows.append(("retried", f"first seed {retry.get('first_seed')}: {retry.get('reason')}"))
        return rows


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
    def status(self) -> str:
        if self.ok_renders:
            return "ok"
        return "failed" if self.renders else "pending"

    @property
    def label(self) -> str:
        raise NotImplementedError


@dataclass(eq=False)
class ClassPage(UnitPage):
    info: ClassInfo | None = None
    kind = "class"

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

    @property
    def label(self) -> str:
        return f"{self.number} {self.name}"


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
    def samples(self) -> list[ChannelPage]:
        return [c for c in self.channels if c.status == "ok"][:6]


@dataclass(eq=False)
class ChannelPage(UnitPage):
    layer: LayerPage | None = None
    channel: int = 0
    kind = "channel"

    @property
    def number(self) -> str:
        return f"c{self.channel:04d}"

    @property
    def label(self) -> str:
        assert self.layer is not None
        return f"{self.layer.name} · channel {self.channel}"


@dataclass(frozen=True)
class Summary:
    classes: int
    classes_rendered: int
    classes_failed: int
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

    @property
    def model(self):  # noqa: ANN201 - ModelInfo
        return self.contents.model

    @property
    def channels(self) -> list[ChannelPage]:
        return [c for layer in self.layers for c in layer.channels]

    @property
    def pages(self) -> list[Page]:
        return [self.home, self.about, self.not_found, self.layers_index, *self.classes, *self.layers, *self.channels]

    @property
    def renders(self) -> list[Render]:
        return [r for p in [*self.classes, *self.channels] for r in p.renders]

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


SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def layer_slug(name: str) -> str:
    """A folder name for a layer: timm's dotted names stay as they are ("blocks.3")."""
    slug = SLUG_UNSAFE.sub("-", name).strip(".-") or "layer"
    return slug


def _order(entries: list[Entry]) -> list[Entry]:
    """One entry per seed (ok beats failed, then the newest), ordered by seed index.

    Records for the same objective with other seeds are the extra seeds; two records with
    the same seed (say, re-rendered with another preset) would be the same picture twice.
    """
    best: dict[int, Entry] = {}
    for e in entries:
        cur = best.get(e.seed)
        if cur is None or (e.status == "ok", e.finished) > (cur.status == "ok", cur.finished):
            best[e.seed] = e
    return sorted(best.values(), key=lambda e: (e.seed_index, e.seed))


def gather(contents: CacheContents, *, with_png: bool = True) -> Site:
    """Every page of the site as plain data, linked to each other."""
    model = contents.model
    by_class: dict[int, list[Entry]] = {}
    by_channel: dict[tuple[str, int], list[Entry]] = {}
    for e in contents.entries:
        if e.kind == "class":
            if not 0 <= (e.class_index or 0) < len(model.classes):
                raise AtlasError(f"entry {e.folder} targets class {e.class_index}, outside the model's {len(model.classes)} classes")
            by_class.setdefault(e.class_index, []).append(e)  # type: ignore[arg-type]
        else:
            by_channel.setdefault((e.layer, e.channel), []).append(e)  # type: ignore[arg-type]

    classes = [
        ClassPage(path=f"classes/{c.index:04d}.html", title=f"{c.index:04d} {c.name}", template="unit.html",
                  data_path=f"data/classes/{c.index:04d}.json", info=c)
        for c in model.classes
    ]

    layer_infos = list(model.layers)
    known = {la.name for la in layer_infos}
    for name in sorted({layer for layer, _ in by_channel} - known):
        layer_infos.append(LayerInfo(name, None, None))
    layers: list[LayerPage] = []
    slugs: dict[str, str] = {}
    for la in layer_infos:
        slug = layer_slug(la.name)
        if slug in slugs:
            raise AtlasError(f"layers {slugs[slug]!r} and {la.name!r} map to the same folder {slug!r}; rename one")
        slugs[slug] = la.name
        layers.append(LayerPage(path=f"layers/{slug}/index.html", title=f"Layer {la.name}", template="layer.html",
                                info=la, slug=slug))
    if layers:
        layers[-1].is_last = True
    layer_by_name = {la.name: la for la in layers}
    for (layer_name, channel), _ in sorted(by_channel.items()):
        layer = layer_by_name[layer_name]
        page = ChannelPage(path=f"layers/{layer.slug}/c{channel:04d}.html", title=f"{layer_name} · channel {channel}",
                           template="unit.html", data_path=f"data/layers/{layer.slug}/c{channel:04d}.json",
                           layer=layer, channel=channel)
        layer.channels.append(page)

    def predictions(entry: Entry, target: int | None) -> tuple[Prediction, ...]:
        out = []
        for m in (entry.record.get("scores") or {}).get("models") or []:
            guesses = tuple(
                Guess(classes[int(g["index"])], float(g["prob"]), int(g["index"]) == target)
                for g in m.get("top5") or []
                if 0 <= int(g["index"]) < len(classes)
            )
            out.append(Prediction(str(m.get("name", "?")), str(m.get("role", "")), guesses,
                                  m.get("target_top1_rate"), m.get("target_top5_rate")))
        return tuple(out)

    def renders(entries: list[Entry], target: int | None, stem: str) -> list[Render]:
        return [
            Render(e, Media.for_entry(e, with_png) if e.status == "ok" else None, predictions(e, target),
                   f"{model.name}-{stem}-seed{e.seed}")
            for e in _order(entries)
        ]

    for page in classes:
        page.renders = renders(by_class.get(page.index, []), page.index, f"class-{page.number}")
        page.related = [Related(classes[i], s) for i, s in model.nearest_classes.get(page.index, ())
                        if 0 <= i < len(classes) and i != page.index][:8]
    _chain(classes)
    for layer in layers:
        top = model.channel_top_classes.get(layer.name, {})
        for page in layer.channels:
            page.renders = renders(by_channel[(layer.name, page.channel)], None, f"{layer.slug}-{page.number}")
            page.related = [Related(classes[i], s) for i, s in top.get(page.channel, ()) if 0 <= i < len(classes)][:8]
        _chain(layer.channels)

    return Site(
        contents=contents,
        with_png=with_png,
        home=Page("index.html", model.name, "index.html"),
        about=Page("about.html", "About this atlas", "about.html"),
        not_found=Page("404.html", "Page not found", "404.html"),
        layers_index=Page("layers/index.html", "Layers", "layers.html"),
        classes=classes,
        layers=layers,
        summary=_summarize(contents, classes, layers),
    )


def _chain(pages: list) -> None:
    """prev/next links, wrapping around so that browsing never hits a dead end."""
    for i, page in enumerate(pages):
        page.prev = pages[i - 1] if len(pages) > 1 else None
        page.next = pages[(i + 1) % len(pages)] if len(pages) > 1 else None


def _summarize(contents: CacheContents, classes: list[ClassPage], layers: list[LayerPage]) -> Summary:
    shown = [r.entry for p in [*classes, *(c for la in layers for c in la.channels)] for r in p.renders]
    finished = sorted(e.finished for e in shown if e.finished)
    presets = Counter(json.dumps(e.record.get("preset") or {}, sort_keys=True) for e in shown)
    return Summary(
        classes=len(classes),
        classes_rendered=sum(p.status == "ok" for p in classes),
        classes_failed=sum(p.status == "failed" for p in classes),
        channels_rendered=sum(c.status == "ok" for la in layers for c in la.channels),
        channels_failed=sum(c.status == "failed" for la in layers for c in la.channels),
        layers_with_channels=sum(1 for la in layers if la.channels),
        renders=len(shown),
        extra_seeds=sum(max(0, len(p.ok_renders) - 1) for p in [*classes, *(c for la in layers for c in la.channels)]),
        updated=finished[-1] if finished else "",
        first_finished=finished[0] if finished else "",
        render_seconds=round(sum(float((e.record.get("timing") or {}).get("seconds") or 0) for e in shown), 1),
        presets=tuple(sorted(presets.items(), key=lambda kv: -kv[1])),
        params=tuple(sorted({str(e.record.get("param")) for e in shown})),
        devices=tuple(sorted({str((e.record.get("timing") or {}).get("device")) for e in shown if e.record.get("timing")})),
        engine_versions=tuple(sorted({str(e.record.get("engine_version")) for e in shown})),
        spectra=tuple(sorted({str(e.record.get("spectrum_sha256")) for e in shown})),
    )
