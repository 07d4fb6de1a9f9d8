"""Gathering: a read cache -> every page of the site, linked to each other, in one pass.

Everything is gathered before anything is written, so that every page sees the same data
(after mkdocs' build story).
"""

from __future__ import annotations

import bisect
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping

from atlas.concepts.formats import ConceptBank, Crop, ExampleSet
from atlas.concepts.store import visualization_id
from atlas.errors import AtlasError
from atlas.matches import counterparts
from atlas.model_record import LayerInfo
from atlas.site.cache_reader import BadEntry, CacheContents, Entry, image_size
from atlas.site.concept_views import CROPS, ConceptLink, ConceptView, CropImage, Example, SourceThumbnail
from atlas.site.pages import (
    Called,
    ChannelPage,
    ClassPage,
    Guess,
    LayerPage,
    Media,
    Page,
    Prediction,
    Related,
    Render,
    SameUnit,
    Site,
    Summary,
)

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
        cur = best.get(e.record.seed)
        if cur is None or (e.status == "ok", e.finished) > (cur.status == "ok", cur.finished):
            best[e.record.seed] = e
    return sorted(best.values(), key=lambda e: (e.record.seed_index, e.record.seed))


def _one_objective(entries: list[Entry]) -> list[Entry]:
    """The pictures of one class objective: that of the class's newest picture. A cache can hold a class
    under several (the plain logit and a blend, after `class_objective` changed); a page shows one."""
    if len({e.record.objective.id for e in entries}) < 2:
        return entries
    newest = max(entries, key=lambda e: (e.status == "ok", e.finished)).record.objective.id
    return [e for e in entries if e.record.objective.id == newest]


def gather(contents: CacheContents, *, with_png: bool = True, prefix: str = "") -> Site:
    """Every page of one model's part of the site as plain data, linked to each other; `prefix`: its
    folder in the site ("efficientnet_lite0/"), before every path but the shared media, crops and 404."""
    model = contents.model
    by_class: dict[int, list[Entry]] = {}
    by_channel: dict[tuple[str, int], list[Entry]] = {}
    for e in contents.entries:
        objective = e.record.objective
        if objective.class_index is not None:
            if not 0 <= objective.class_index < len(model.classes):
                raise AtlasError(f"entry {e.folder} targets class {objective.class_index}, "
                                 f"outside the model's {len(model.classes)} classes")
            by_class.setdefault(objective.class_index, []).append(e)
        elif objective.layer is not None and objective.channel is not None:
            by_channel.setdefault((objective.layer, objective.channel), []).append(e)
    for layer_name, found in contents.examples.items():  # a channel with dataset examples has a page before its picture
        for channel in found.channels:
            by_channel.setdefault((layer_name, channel.channel), [])

    classes = [
        ClassPage(path=f"{prefix}classes/{c.index:04d}.html", title=f"{c.index:04d} {c.name}", template="unit.html",
                  data_path=f"{prefix}data/classes/{c.index:04d}.json", info=c)
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
        layers.append(LayerPage(path=f"{prefix}layers/{slug}/index.html", title=f"Layer {la.name}",
                                template="layer.html", info=la, slug=slug))
    if layers:
        layers[-1].is_last = True
    layer_by_name = {la.name: la for la in layers}
    for (layer_name, channel), _ in sorted(by_channel.items()):
        layer = layer_by_name[layer_name]
        stem = f"c{channel:04d}"  # the page's files, its data and its downloads are named by it
        page = ChannelPage(path=f"{prefix}layers/{layer.slug}/{stem}.html",
                           title=f"{layer_name} · channel {channel}", template="unit.html",
                           data_path=f"{prefix}data/layers/{layer.slug}/{stem}.json",
                           layer=layer, channel=channel)
        layer.channels.append(page)

    def predictions(entry: Entry, target: int | None) -> tuple[Prediction, ...]:
        scores = entry.record.scores
        out = []
        for m in scores.models if scores else ():
            guesses = tuple(Guess(classes[g.index], float(g.prob), g.index == target)
                            for g in m.top5 if 0 <= g.index < len(classes))
            out.append(Prediction(m.name, m.role, guesses, m.target_top1_rate, m.target_top5_rate))
        return tuple(out)

    def called(entry: Entry, target: int | None) -> Called | None:
        """The generator's top-1 on the whole picture, when it is a class other than `target`."""
        judging = entry.record.judging
        whole = judging.get("whole") if judging else None
        generator = next((m for m in whole.models if m.role == "generator" and m.top5), None) if whole else None
        if target is None or generator is None:
            return None
        top = generator.top5[0]
        if top.index == target or not 0 <= top.index < len(classes):
            return None
        return Called(generator.name, classes[top.index], float(top.prob))

    def renders(entries: list[Entry], target: int | None, stem: str) -> list[Render]:
        return [
            Render(e, Media.for_entry(e, with_png) if e.status == "ok" else None, predictions(e, target),
                   f"{model.name}-{stem}-seed{e.record.seed}", called(e, target) if e.status == "ok" else None)
            for e in _order(entries)
        ]

    for page in classes:
        page.renders = renders(_one_objective(by_class.get(page.index, [])), page.index, f"class-{page.number}")
        page.related = [Related(classes[i], s) for i, s in model.nearest_classes.get(page.index, ())
                        if 0 <= i < len(classes) and i != page.index][:8]
    _concepts(contents, classes, renders)
    _chain(classes)
    _examples(contents, classes, layers)
    for layer in layers:
        top = model.channel_top_classes.get(layer.name, {})
        for page in layer.channels:
            page.renders = renders(by_channel[(layer.name, page.channel)], None, f"{layer.slug}-{page.stem}")
            page.related = [Related(classes[i], s) for i, s in top.get(page.channel, ()) if 0 <= i < len(classes)][:8]
        _chain(layer.channels)
    _same_units(contents, layers)

    return Site(
        contents=contents,
        with_png=with_png,
        home=Page(f"{prefix}index.html", model.name, "index.html"),
        about=Page(f"{prefix}about.html", "About this atlas", "about.html"),
        not_found=Page("404.html", "Page not found", "404.html"),
        layers_index=Page(f"{prefix}layers/index.html", "Layers", "layers.html"),
        prefix=prefix,
        classes=classes,
        layers=layers,
        summary=_summarize(contents, classes, layers),
    )


def _concepts(contents: CacheContents, classes: list[ClassPage],
              renders: Callable[[list[Entry], int | None, str], list[Render]]) -> None:
    """Each class page's concepts, most important first, with their pictures, crops and neighbours."""
    if not contents.banks:
        return
    by_id: dict[str, list[Entry]] = {}
    for e in contents.concept_entries:
        by_id.setdefault(e.record.objective.id, []).append(e)
    similar = contents.similar
    for index, bank in sorted(contents.banks.items()):
        if not 0 <= index < len(classes):
            continue
        page = classes[index]
        page.bank = bank
        for position, concept in enumerate(bank.concepts):
            stem = f"class-{page.number}-concept{position + 1}"
            shown = renders(by_id.get(visualization_id(bank, concept), []), index, stem)
            page.concepts.append(ConceptView(
                position=position,
                concept=concept,
                render=shown[0] if shown else None,
                crops=tuple(_crop(contents, bank, crop) for crop in concept.crops),
                aligned=tuple(Related(classes[a.index], a.cosine)
                              for a in concept.aligned if 0 <= a.index < len(classes)),
                similar=tuple(ConceptLink(classes[s.class_index], s.concept, s.cosine)
                              for s in similar.get((index, position), ()) if 0 <= s.class_index < len(classes)),
                logit=bank.logit,
            ))


def _examples(contents: CacheContents, classes: list[ClassPage], layers: list[LayerPage]) -> None:
    """Each channel page's dataset examples, highest activation first."""
    for layer in layers:
        found = contents.examples.get(layer.name)
        if found is None:
            continue
        per_channel = {c.channel: c for c in found.channels}
        for page in layer.channels:
            channel = per_channel.get(page.channel)
            if channel is None:
                continue
            page.example_set = found
            page.examples = [
                Example(_crop(contents, found, crop, sized=True), classes[c] if 0 <= c < len(classes) else None,
                        _thumbnail(contents, found, crop))
                for crop, c in zip(channel.examples, channel.classes, strict=True)
            ]


UnitKey = tuple[str, str, str, int]  # model name, weights sha256, layer, channel


def _same_units(contents: CacheContents, layers: list[LayerPage], pages: Mapping[UnitKey, ChannelPage] | None = None,
                ) -> None:
    """Each channel page's matched channels in other models (`atlas match`, stored by atlas.matches).

    `pages`: the channel pages a match may link to, by model, weights, layer and channel; by default
    this site's own, so a match to a model the site does not hold is shown without a link."""
    model = contents.model
    if contents.root is None:
        return
    found = counterparts(contents.root, model.name, model.weights_sha256)
    if not found:
        return
    if pages is None:
        pages = {(model.name, model.weights_sha256, la.name, p.channel): p for la in layers for p in la.channels}
    for layer in layers:
        for page in layer.channels:
            page.same_units = [SameUnit(c, pages.get((c.model, c.weights_sha256, c.layer, c.channel)))
                               for c in found.get((layer.name, page.channel), ())]


def _crop(contents: CacheContents, value: ConceptBank | ExampleSet, crop: Crop, sized: bool = False) -> CropImage:
    source = contents.crop_path(value, crop)
    try:
        size = image_size(source) if sized else None
    except ValueError as exc:
        raise BadEntry(source.parent, f"{exc}: run `atlas concepts` again to rewrite it") from exc
    return CropImage(f"{CROPS}/{crop.image}", source, crop.file, crop.box, crop.value, size, crop.source_size)


def _thumbnail(contents: CacheContents, value: ExampleSet, crop: Crop) -> SourceThumbnail | None:
    """The example's source thumbnail, where the example set has one (format 3); its bytes are checked
    when the build copies it, and an example whose thumbnail fails is shown without it."""
    if crop.thumbnail is None or crop.source_size is None:
        return None
    return SourceThumbnail.of(f"{CROPS}/{crop.thumbnail}", contents.crop_path(value, crop).parent / crop.thumbnail,
                              crop.box, crop.source_size)


def _chain(pages: list) -> None:
    """prev/next links to the nearest page that shows something (a picture, or a class's concepts or a
    channel's examples before it) either way, wrapping around, so that browsing never hits a dead end nor
    walks through the empty pages of a partial atlas (every page when none shows anything)."""
    shown = [i for i, page in enumerate(pages) if page.shows_something] or list(range(len(pages)))
    for i, page in enumerate(pages):
        after = bisect.bisect_right(shown, i)
        before = bisect.bisect_left(shown, i) - 1
        nxt, prev = pages[shown[after % len(shown)]], pages[shown[before]]
        page.next = nxt if nxt is not page else None
        page.prev = prev if prev is not page else None


def _summarize(contents: CacheContents, classes: list[ClassPage], layers: list[LayerPage]) -> Summary:
    shown = [r.entry for p in [*classes, *(c for la in layers for c in la.channels)] for r in p.renders]
    records = [e.record for e in shown]
    timings = [r.timing for r in records if r.timing is not None]
    finished = sorted(e.finished for e in shown if e.finished)
    presets = Counter(json.dumps(r.preset, sort_keys=True) for r in records)
    return Summary(
        classes=len(classes),
        classes_rendered=sum(p.status == "ok" for p in classes),
        classes_failed=sum(p.status == "failed" for p in classes),
        classes_explained=sum(1 for p in classes if p.concepts),
        channels_rendered=sum(c.status == "ok" for la in layers for c in la.channels),
        channels_failed=sum(c.status == "failed" for la in layers for c in la.channels),
        layers_with_channels=sum(1 for la in layers if any(c.renders for c in la.channels)),
        renders=len(shown),
        extra_seeds=sum(max(0, len(p.ok_renders) - 1) for p in [*classes, *(c for la in layers for c in la.channels)]),
        updated=finished[-1] if finished else "",
        first_finished=finished[0] if finished else "",
        render_seconds=round(sum(float(t.seconds) for t in timings), 1),
        presets=tuple(sorted(presets.items(), key=lambda kv: -kv[1])),
        params=tuple(sorted({r.param for r in records})),
        devices=tuple(sorted({t.device for t in timings})),
        engine_versions=tuple(sorted({r.engine_version for r in records})),
        spectra=tuple(sorted({r.spectrum_sha256 for r in records})),
    )
