"""The site's JSON: the manifest, the index (also as a <script> for search and grids), one per unit.

Paths inside are relative to the site root. The search index is a script that sets a
global, not a fetched file, so that it works from file:// where fetch() is not allowed.
"""

from __future__ import annotations

import json
from typing import Any

from atlas import __version__
from atlas.site.concept_views import CropImage
from atlas.site.pages import ChannelPage, ClassPage, Render, Site, UnitPage
from atlas.typed_json import as_data

SITE_FORMAT = 1
SEARCH_INDEX_PATH = "data/search-index.js"
SEARCH_INDEX_GLOBAL = "ATLAS_INDEX"


def to_json(value: Any) -> bytes:
    """Strict JSON: the cache reader rejects NaN and Infinity, and none may slip out as bare `NaN`."""
    return (json.dumps(value, ensure_ascii=False, indent=1, allow_nan=False) + "\n").encode("utf-8")


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: `<`, `>` and `&` as \\u escapes, so that text
    such as `</script>` or `<!--` cannot end or change the element; U+2028/9 for old parsers."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _tile(page: UnitPage) -> dict[str, Any]:
    main = page.main
    return {
        "page": page.path,
        "status": page.status,
        "thumb": main.media.thumb if main and main.media else None,
        "thumb_overlay": main.media.thumb_overlay if main and main.media else None,
        "thumb_size": list(main.media.thumb_size) if main and main.media else None,
    }


def _concept_tile(page: ClassPage) -> dict[str, Any]:
    """The class's top concept for the index's "by top concept" view: its picture when rendered, else its
    top crop (a patch of a photo), as a channel lists its top example; nothing when the class has no
    concepts, so that an atlas without concepts adds nothing to its index. (Every page loads the index:
    a full atlas's thousand crop paths stay out of it once the pictures exist.)"""
    if not page.concepts:
        return {}
    first = page.concepts[0]
    if first.media is not None:
        return {"concept_thumb": first.media.thumb, "concept_thumb_overlay": first.media.thumb_overlay,
                "concept_thumb_size": list(first.media.thumb_size)}
    return {"concept_crop": first.crops[0].path} if first.crops else {}


def _called(page: ClassPage) -> dict[str, Any]:
    """When the generator's own top-1 on the picture is another class: the words the index's tile shows."""
    called = page.main.called if page.main else None
    return {} if called is None else {"called": f"{called.model} calls this picture {called.page.name}"}


def index_document(site: Site) -> dict[str, Any]:
    """Every class and channel with its page, status and thumbnails: the data behind search and grids."""
    return {
        "format": SITE_FORMAT,
        "model": site.model.name,
        "classes": [
            {"index": c.index, "name": c.name, "synonyms": list(c.info.synonyms), "wnid": c.info.wnid, **_tile(c),
             **_concept_tile(c), **_called(c)}
            for c in site.classes
        ],
        "layers": [
            {
                "name": layer.name,
                "slug": layer.slug,
                "page": layer.path,
                "channels": [{"channel": ch.channel, "label": ch.label, **_tile(ch),
                              **({"example": ch.examples[0].crop.path} if ch.examples else {})}
                             for ch in layer.channels],
            }
            for layer in site.layers
        ],
    }


def atlas_index(sites: list[Site]) -> dict[str, Any]:
    """The search index: every model's index document, named by the model, with its folder and home page
    (the default model first), so that search finds a class in every model of the atlas."""
    return {"format": SITE_FORMAT,
            "models": [{**index_document(site), "folder": site.prefix, "home": site.home.path} for site in sites]}


def search_index_script(index: dict[str, Any]) -> bytes:
    return f"window.{SEARCH_INDEX_GLOBAL} = {script_json(index)};\n".encode()


def render_document(render: Render) -> dict[str, Any]:
    rec = render.entry.record
    media = render.media
    return {
        "key": render.entry.key,
        "status": render.entry.status,
        "failure": render.entry.failure,
        "seed": rec.seed,
        "seed_index": rec.seed_index,
        "objective": as_data(rec.objective),
        "images": None if media is None else {
            "thumb": media.thumb, "thumb_overlay": media.thumb_overlay,
            "detail": media.detail, "detail_overlay": media.detail_overlay, "png": media.png,
            "thumb_size": list(media.thumb_size), "detail_size": list(media.detail_size),
            "full_size": list(media.full_size),
        },
        "predictions": [
            {"model": p.model, "role": p.role, "target_top1_rate": p.top1_rate, "target_top5_rate": p.top5_rate,
             "top5": [{"index": g.page.index, "name": g.page.name, "prob": g.prob, "page": g.page.path}
                      for g in p.guesses]}
            for p in render.predictions
        ],
        "preset": rec.preset,
        "param": rec.param,
        "spectrum_sha256": rec.spectrum_sha256,
        "engine_version": rec.engine_version,
        "objective_value": rec.objective_value,
        "timing": as_data(rec.timing),
        "scores": as_data(rec.scores),
        "judging": None if rec.judging is None else {scale: as_data(s) for scale, s in rec.judging.items()},
        "files": as_data(rec.files),
    }


def unit_document(site: Site, page: UnitPage) -> dict[str, Any]:
    doc: dict[str, Any] = {"format": SITE_FORMAT, "model": site.model.name, "page": page.path, "status": page.status}
    if isinstance(page, ClassPage):
        assert page.info is not None
        doc.update(kind="class", index=page.index, name=page.name, synonyms=list(page.info.synonyms),
                   wnid=page.info.wnid)
        related_key = "nearest_classes"
    else:
        assert isinstance(page, ChannelPage) and page.layer is not None
        doc.update(kind="channel", layer=page.layer.name, channel=page.channel, label=page.label)
        related_key = "top_classes"
    doc["renders"] = [render_document(r) for r in page.renders]
    if isinstance(page, ClassPage) and page.concepts:
        doc["concepts"] = concepts_document(page)
    if isinstance(page, ChannelPage) and page.examples:
        doc["dataset_examples"] = [
            {**_crop(e.crop), **({"source_thumbnail": e.thumbnail.path} if e.thumbnail else {}),
             "class": None if e.page is None else {"index": e.page.index, "name": e.page.name, "page": e.page.path}}
            for e in page.examples]
    doc[related_key] = [{"index": r.page.index, "name": r.page.name, "score": r.score, "page": r.page.path}
                        for r in page.related]
    return doc


def _crop(crop: CropImage) -> dict[str, Any]:
    out = {"image": crop.path, "file": crop.file, "box": list(crop.box), "value": crop.value}
    if crop.source_size is not None:
        out["source_size"] = list(crop.source_size)
    return out


def concepts_document(page: ClassPage) -> dict[str, Any]:
    """A class's concept bank as its page shows it, with what reproduces it (key, settings)."""
    bank = page.bank
    assert bank is not None
    return {
        "key": bank.key, "layer": bank.layer, "exact": bank.exact, "settings": dict(bank.settings),
        "images": bank.images, "patches": bank.patches, "logit": bank.logit, "residual": bank.residual,
        "rest": bank.rest, "relative_error": bank.relative_error,
        "concepts": [
            {"rank": c.rank, "anchor": c.anchor, "importance": c.concept.importance, "share": c.share,
             "top_images": c.concept.top_images, "vector_sha256": c.concept.digest, "status": c.status,
             "render": None if c.render is None else render_document(c.render),
             "crops": [_crop(x) for x in c.crops],
             "aligned": [{"index": a.page.index, "name": a.page.name, "cosine": a.score, "page": a.page.path}
                         for a in c.aligned],
             "similar": [{"index": s.page.index, "name": s.page.name, "concept": s.rank, "cosine": s.cosine,
                          "page": s.path} for s in c.similar]}
            for c in page.concepts],
    }


def manifest_document(site: Site) -> dict[str, Any]:
    """Everything needed to reproduce the atlas: model, weights, parameters, and every render's key material."""
    model = site.model
    s = site.summary
    return {
        "format": SITE_FORMAT,
        "generator": f"atlas {__version__}",
        "model": {
            "name": model.name, "weights_sha256": model.weights_sha256, "weights_source": model.weights_source,
            "num_classes": model.num_classes, "layers": [la.info.__dict__ for la in site.layers if la.info],
        },
        "code_version": model.code_version,
        "hardware": model.hardware,
        "spectrum_sha256": model.spectrum_sha256,
        "presets": site.presets,
        "params": list(s.params),
        "engine_versions": list(s.engine_versions),
        "devices": list(s.devices),
        "updated": s.updated,
        "counts": {
            "classes": s.classes, "classes_rendered": s.classes_rendered, "classes_failed": s.classes_failed,
            "classes_with_concepts": s.classes_explained,
            "channels_rendered": s.channels_rendered, "channels_failed": s.channels_failed,
            "renders": s.renders, "extra_seeds": s.extra_seeds, "render_seconds": s.render_seconds,
        },
        "skipped_entries": site.contents.skipped,
        "png_downloads": site.with_png,
        "renders": [
            {
                "key": r.entry.key, "objective": r.entry.record.objective.id, "status": r.entry.status,
                "failure": r.entry.failure, "seed": r.entry.record.seed, "seed_index": r.entry.record.seed_index,
                "preset": r.entry.record.preset, "param": r.entry.record.param,
                "spectrum_sha256": r.entry.record.spectrum_sha256,
                "engine_version": r.entry.record.engine_version,
                "finished": r.entry.finished, "files": as_data(r.entry.record.files),
            }
            for r in site.renders
        ],
    }
