"""Helpers for the site tests: the committed sample cache, built once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

SAMPLE_CACHE = Path(__file__).resolve().parent / "data" / "sample_cache"
MODEL = "efficientnet_lite0"
_built: dict[str, Path] = {}


def sample_site(tmp_path_factory) -> Path:  # noqa: ANN001 - pytest's factory
    """The sample cache built into a session-wide folder; treat it as read-only."""
    if "site" not in _built:
        from atlas.site.build import build

        out = tmp_path_factory.mktemp("sample-site") / "site"
        build(SAMPLE_CACHE, out)
        _built["site"] = out
    return _built["site"]


def copy_cache(dest: Path) -> Path:
    """A writable copy of the sample cache."""
    shutil.copytree(SAMPLE_CACHE, dest)
    return dest


def patch_class_name(cache: Path, index: int, name: str, synonyms: list[str] | None = None) -> None:
    """Rename a class in the cache's model metadata (the site takes names from there)."""
    path = cache / "models" / f"{MODEL}.json"
    info = json.loads(path.read_text(encoding="utf-8"))
    info["classes"][index]["name"] = name
    info["classes"][index]["synonyms"] = synonyms if synonyms is not None else [name]
    path.write_text(json.dumps(info), encoding="utf-8")


def records(cache: Path) -> list[tuple[Path, dict]]:
    return [(p.parent, json.loads(p.read_text(encoding="utf-8")))
            for p in sorted(cache.glob("entries/*/*/record.json"))]
