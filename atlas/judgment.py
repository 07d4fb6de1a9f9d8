"""A cached picture judged by another model of the atlas: the entry kind `judgment`, its key, its JSON.
Stdlib only.

In an atlas of several models, every model's class pictures are judged by every other model of
the same class table, on the judging protocol (atlas.scoring: small crops, large crops, the whole
picture).  Such a judgment is cached on its own, beside the render it judges, so that adding a
model renders only its own pictures and judges the others' without rendering them again.  It is
a file kind of atlas.store, read and listed there (`store.entries`, `store.read`):

    <cache>/judgments/<key[:2]>/<key>.json

`key` = sha256 of the canonical JSON of the format, the judged render's cache key, the judge's
name and weights sha256, and the judging settings (crops, seed, the protocol's scales and boxes), as
`judgment_key` builds it.  A file that does not read back as a `Judgment` of its own key is not one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atlas import typed_json
from atlas.kind import Kind
from atlas.typed_json import InvalidRecord

FORMAT = 1
HEADER = {"format": FORMAT, "kind": "judgment"}


@dataclass(frozen=True)
class ScaleRates:
    """The judge's hold on the picture's class at one scale: the share of crops whose top-1 / top-5
    holds it, and its mean probability."""

    top1_rate: float
    top5_rate: float
    prob: float | None = None

    def __post_init__(self) -> None:
        for rate in (self.top1_rate, self.top5_rate, self.prob):
            if rate is not None and not 0 <= rate <= 1:
                raise InvalidRecord(f"{rate!r} is not a rate from 0 to 1")


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
    scales: dict[str, ScaleRates]  # "small", "large", "whole" (atlas.scoring.SCALES)
    per_picture_boxes: bool | None = None  # as in atlas.record.Scores: None, the same boxes for every picture

    def __post_init__(self) -> None:
        if not all((self.key, self.picture, self.generator, self.judge, self.judge_weights_sha256)):
            raise InvalidRecord("judgment: a name or key is empty")
        if min(self.target, self.crops, self.seed) < 0:
            raise InvalidRecord("judgment: its target, crops or seed is negative")


def judgment_key(picture: str, judge: str, judge_weights_sha256: str, *, crops: int, seed: int,
                 scales: Mapping[str, tuple[float, float]]) -> str:
    """The cache key of `judge`'s judgment of the render `picture` at these judging settings.  The
    boxes are each picture's own (atlas.scoring), so a judgment made on shared boxes is not found
    under this key and the picture is judged again."""
    return KIND.key({"picture": picture, "judge": judge, "judge_weights_sha256": judge_weights_sha256,
                     "crops": crops, "seed": seed, "scales": {name: list(scale) for name, scale in scales.items()},
                     "boxes": "per picture"})


KIND = Kind(name="judgment", folder="judgments", value=Judgment, document=None,
            loads=lambda raw, key: typed_json.loads(Judgment, raw, HEADER, key),
            dumps=lambda value: typed_json.dumps(value, HEADER),
            salt={"format": FORMAT})
