"""Reading a render cache (format 1, see docs/architecture.md) for the site: plain data, no torch.

The reader trusts the cache's contract: `record.json` is written last, so an entry
without a valid record is not an entry and is skipped (and counted, so the build can say
so). It checks what is cheap to check (file sizes against the record) and leaves the
content hashes to the image stage, which reads the files anyway.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas.cache import safe_name
from atlas.errors import AtlasError

CACHE_FORMAT = 1


@dataclass(frozen=True)
class ClassInfo:
    index: int
    wnid: str
    name: str
    synonyms: tuple[str, ...]


@dataclass(frozen=True)
class LayerInfo:
    name: str
    channels: int | None
    reduction: int | None


@dataclass(frozen=True)
class ModelInfo:
    """`models/<name>.json`: what the site needs and could not compute without torch."""

    name: str
    weights_sha256: str
    weights_source: str
    num_classes: int
    classes: tuple[ClassInfo, ...]
    nearest_classes: dict[int, tuple[tuple[int, float], ...]]
    layers: tuple[LayerInfo, ...]
    channel_top_classes: dict[str, dict[int, tuple[tuple[int, float], ...]]]
    hardware: str
    code_version: str
    spectrum_sha256: str
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Entry:
    """One cached render: its record plus where its files are."""

    folder: Path
    record: dict[str, Any] = field(repr=False, compare=False)
    key: str
    status: str  # "ok" or "failed"
    failure: str | None
    kind: str  # objective kind: "class", "channel", ...
    class_index: int | None
    layer: str | None
    channel: int | None
    seed: int
    seed_index: int
    finished: str  # ISO time, "" when the record has none
    size: tuple[int, int] | None  # image (width, height); None when failed
    image_sha256: str | None
    attribution_sha256: str | None

    @property
    def image_path(self) -> Path:
        return self.folder / "image.png"

    @property
    def attribution_path(self) -> Path:
        return self.folder / "attribution.npy"


@dataclass(frozen=True)
class CacheContents:
    model: ModelInfo
    entries: tuple[Entry, ...]
    skipped: dict[str, int]  # reason -> count of entries the site does not show
    problems: tuple[str, ...]  # one line per skipped invalid entry


def list_models(cache: Path) -> dict[str, Path]:
    """Model name -> its metadata file (`models/<safe name>.json`)."""
    folder = Path(cache) / "models"
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            name = str(json.loads(path.read_text(encoding="utf-8"))["name"])
        except (OSError, ValueError, KeyError, TypeError):
            name = path.stem  # read_model says what is wrong with it, if it is picked
        found[name] = path
    return found


def read_cache(cache: Path, model: str | None = None) -> CacheContents:
    """The model metadata and every valid entry of that model (same weights) in `cache`."""
    cache = Path(cache)
    if not cache.is_dir():
        raise AtlasError(f"cache folder {cache} does not exist: run `atlas render` first or pass --cache DIR")
    info = read_model(_pick_model(cache, model))
    entries: list[Entry] = []
    skipped: Counter[str] = Counter()
    problems: list[str] = []
    entries_dir = cache / "entries"
    # A name starting with "." is a render's entry being written or set aside, not an entry.
    folders = sorted(p for p in entries_dir.glob("*/[!.]*") if p.is_dir()) if entries_dir.is_dir() else []
    for folder in folders:
        try:
            entry = read_entry(folder)
        except _InvalidEntry as exc:
            skipped["invalid"] += 1
            problems.append(f"{folder}: {exc}")
            continue
        if entry is None:
            skipped["unfinished"] += 1
        elif entry.record["model"]["name"] != info.name:
            skipped["other model"] += 1
        elif entry.record["model"]["weights_sha256"] != info.weights_sha256:
            skipped["other weights"] += 1
        elif entry.kind not in ("class", "channel"):
            skipped[f"{entry.kind} objective"] += 1
        else:
            entries.append(entry)
    return CacheContents(info, tuple(entries), dict(skipped), tuple(problems))


def _pick_model(cache: Path, model: str | None) -> Path:
    models = list_models(cache)
    if model is not None:
        for name, path in models.items():
            if model in (name, path.stem) or path.stem == safe_name(model):
                return path
        listed = ", ".join(models) or "none"
        raise AtlasError(f"the cache {cache} has no metadata for model {model!r} (found: {listed}); pick one with --model")
    if not models:
        raise AtlasError(f"{cache} holds no models/*.json: run `atlas render` into it first")
    if len(models) > 1:
        raise AtlasError(f"{cache} holds several models ({', '.join(models)}): pick one with --model NAME")
    return next(iter(models.values()))


def read_model(path: Path) -> ModelInfo:
    """`models/<name>.json`, checked enough that every page can rely on it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        classes = tuple(
            ClassInfo(int(c["index"]), str(c.get("wnid") or ""), str(c["name"]),
                      tuple(str(s) for s in c.get("synonyms") or ()))
            for c in raw["classes"]
        )
        if [c.index for c in classes] != list(range(len(classes))):
            raise ValueError("classes must be listed by index 0..N-1")
        nearest = {int(k): tuple((int(i), float(s)) for i, s in v) for k, v in raw.get("nearest_classes", {}).items()}
        layers = tuple(
            LayerInfo(str(la["name"]), _opt_int(la.get("channels")), _opt_int(la.get("reduction")))
            for la in raw.get("layers", [])
        )
        top = {
            str(layer): {int(c): tuple((int(i), float(s)) for i, s in v) for c, v in per.items()}
            for layer, per in (raw.get("channel_top_classes") or {}).items()
        }
        return ModelInfo(
            name=str(raw["name"]),
            weights_sha256=str(raw["weights_sha256"]),
            weights_source=str(raw.get("weights_source", "")),
            num_classes=int(raw.get("num_classes", len(classes))),
            classes=classes,
            nearest_classes=nearest,
            layers=layers,
            channel_top_classes=top,
            hardware=str(raw.get("hardware", "")),
            code_version=str(raw.get("code_version", "")),
            spectrum_sha256=str(raw.get("spectrum_sha256", "")),
            raw=raw,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AtlasError(f"cannot read {path} ({exc}): re-run `atlas render` to rewrite the model metadata") from exc


class _InvalidEntry(Exception):
    pass


def read_entry(folder: Path) -> Entry | None:
    """The entry in `folder`, None when its record is not written yet; raises _InvalidEntry."""
    record_path = folder / "record.json"
    if not record_path.exists():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("format") != CACHE_FORMAT:
            raise _InvalidEntry(f"record format {record.get('format')!r}, expected {CACHE_FORMAT}")
        if record["key"] != folder.name:
            raise _InvalidEntry("record key differs from the folder name")
        status = record["status"]
        if status not in ("ok", "failed"):
            raise _InvalidEntry(f"unknown status {status!r}")
        objective = record["objective"]
        kind = str(objective["kind"])
        entry = Entry(
            folder=folder,
            record=record,
            key=str(record["key"]),
            status=status,
            failure=None if status == "ok" else str(record.get("failure") or "no reason recorded"),
            kind=kind,
            class_index=_opt_int(objective.get("class_index")),
            layer=None if objective.get("layer") is None else str(objective["layer"]),
            channel=_opt_int(objective.get("channel")),
            seed=int(record["seed"]),
            seed_index=int(record.get("seed_index", 0)),
            finished=str((record.get("timing") or {}).get("finished") or ""),
            size=None,
            image_sha256=None,
            attribution_sha256=None,
        )
        if kind == "class" and entry.class_index is None:
            raise _InvalidEntry("class objective without class_index")
        if kind == "channel" and (entry.layer is None or entry.channel is None):
            raise _InvalidEntry("channel objective without layer and channel")
        if not {"name", "weights_sha256"} <= set(record["model"]):
            raise _InvalidEntry("record model lacks name or weights_sha256")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _InvalidEntry(f"unreadable record ({exc.__class__.__name__}: {exc})") from exc
    if status == "failed":
        return entry
    return _with_files(entry)


def _with_files(entry: Entry) -> Entry:
    files = entry.record.get("files") or {}
    hashes = {}
    for name in ("image.png", "attribution.npy"):
        meta = files.get(name)
        path = entry.folder / name
        if not isinstance(meta, dict) or "sha256" not in meta:
            raise _InvalidEntry(f"record lists no sha256 for {name}")
        if not path.is_file():
            raise _InvalidEntry(f"{name} is missing")
        if "bytes" in meta and path.stat().st_size != int(meta["bytes"]):
            raise _InvalidEntry(f"{name} has {path.stat().st_size} bytes, the record says {meta['bytes']}")
        hashes[name] = str(meta["sha256"])
    return Entry(
        **{
            **entry.__dict__,
            "size": png_size(entry.image_path),
            "image_sha256": hashes["image.png"],
            "attribution_sha256": hashes["attribution.npy"],
        }
    )


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header, without decoding the image."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise _InvalidEntry(f"{path.name} is not a PNG")
    return struct.unpack(">II", head[16:24])


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
