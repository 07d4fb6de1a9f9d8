"""A cached picture judged by another model of the atlas: the entry kind, its key, its JSON. Stdlib only.

In an atlas of several models, every model's class pictures are judged by every other model of
the same class table, on the judging protocol (atlas.judging: small crops, large crops, the whole
picture).  Such a judgment is cached on its own, beside the render it judges, so that adding a
model renders only its own pictures and judges the others' without rendering them again:

    <cache>/judgments/<key[:2]>/<key>.json

`key` = sha256 of the canonical JSON of the judged render's cache key, the judge's name and
weights sha256, and the judging settings (crops, seed, the protocol's scales), as `judgment_key`
builds it.  A file that does not read back as a `Judgment` of its own key is not one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas.kind import content_key

FORMAT = 1
KIND = "judgment"
FOLDER = "judgments"


class InvalidJudgment(ValueError):
    """A judgment file that cannot be read; the message says why in one line."""


@dataclass(frozen=True)
class ScaleRates:
    """The judge's hold on the picture's class at one scale: the share of crops whose top-1 / top-5
    holds it, and its mean probability."""

    top1_rate: float
    top5_rate: float
    prob: float | None = None


@dataclass(frozen=True)
class Judgment:
    key: str
    picture: str  # the judged render's cache key
    generator: str  # the model that rendered it
    judge: str
    judge_weights_sha256: str
    target: int  # the class the picture was rendered for
    crops: int
    seed: int
    scales: dict[str, ScaleRates]  # "small", "large", "whole" (atlas.judging.SCALES)


def judgment_key(picture: str, judge: str, judge_weights_sha256: str, *, crops: int, seed: int,
                 scales: Mapping[str, tuple[float, float]]) -> str:
    """The cache key of `judge`'s judgment of the render `picture` at these judging settings."""
    material = {"format": FORMAT, "picture": picture, "judge": judge, "judge_weights_sha256": judge_weights_sha256,
                "crops": crops, "seed": seed, "scales": {name: list(scale) for name, scale in scales.items()}}
    return content_key(material)


def to_dict(judgment: Judgment) -> dict[str, Any]:
    return {
        "format": FORMAT, "kind": KIND, "key": judgment.key, "picture": judgment.picture,
        "generator": judgment.generator, "judge": judgment.judge,
        "judge_weights_sha256": judgment.judge_weights_sha256, "target": judgment.target,
        "crops": judgment.crops, "seed": judgment.seed,
        "scales": {name: {"top1_rate": r.top1_rate, "top5_rate": r.top5_rate, "prob": r.prob}
                   for name, r in judgment.scales.items()},
    }


def dumps(judgment: Judgment) -> bytes:
    return json.dumps(to_dict(judgment), sort_keys=True, indent=1, allow_nan=False).encode()


def from_dict(data: Any, key: str | None = None) -> Judgment:
    """A typed `Judgment`; `InvalidJudgment` for anything else, and for one of another key than `key`."""
    try:
        if data["format"] != FORMAT or data["kind"] != KIND:
            raise ValueError(f"format {data['format']!r} / kind {data['kind']!r} is not a judgment of format {FORMAT}")
        judgment = Judgment(
            key=_text(data["key"]), picture=_text(data["picture"]), generator=_text(data["generator"]),
            judge=_text(data["judge"]), judge_weights_sha256=_text(data["judge_weights_sha256"]),
            target=_count(data["target"]), crops=_count(data["crops"]), seed=_count(data["seed"]),
            scales={_text(name): ScaleRates(_rate(r["top1_rate"]), _rate(r["top5_rate"]),
                                            None if r.get("prob") is None else _rate(r["prob"]))
                    for name, r in dict(data["scales"]).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidJudgment(str(exc)) from exc
    if key is not None and judgment.key != key:
        raise InvalidJudgment(f"names key {judgment.key[:12]}, not its file's {key[:12]}")
    return judgment


def loads(raw: bytes, key: str | None = None) -> Judgment:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidJudgment(f"not JSON: {exc}") from exc
    return from_dict(data, key)


def path(root: Path, key: str) -> Path:
    return Path(root) / FOLDER / key[:2] / f"{key}.json"


def read_all(root: Path, problems: list[str] | None = None) -> Iterator[Judgment]:
    """Every judgment of the cache at `root`; one that does not read is named in `problems` and skipped."""
    folder = Path(root) / FOLDER
    for file in sorted(folder.glob("*/*.json")) if folder.is_dir() else ():
        if file.name.startswith(".") or file.is_symlink():
            continue
        try:
            yield loads(file.read_bytes(), file.stem)
        except (OSError, InvalidJudgment) as exc:
            if problems is not None:
                problems.append(f"{file}: {exc}")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a non-empty string")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a non-negative integer")
    return value


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 1:
        raise ValueError(f"{value!r} is not a rate from 0 to 1")
    return float(value)
