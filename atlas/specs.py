"""Class and channel specs: "all", "none", "0-99", "1,207,967", WordNet ids, "top:N".

Torch-free, so that a configuration is checked (`check_spec`) before any model is loaded, and
by `atlas build`, which never imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

from atlas.errors import AtlasError

WNID = re.compile(r"^n\d{8}$")


def _ranges(spec: str, what: str, limit: int) -> Iterator[int]:
    """Yield the numbers of a spec like "0-9,17,20-22", checking each against [0, limit)."""
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)|(\d+)", part)
        if match is None:
            raise AtlasError(f"bad {what} spec {part!r} in {spec!r}: use ranges and lists like 0-99 or 1,207,967")
        low, high = (int(match[1]), int(match[2])) if match[3] is None else (int(match[3]),) * 2
        if low > high:
            raise AtlasError(f"bad {what} range {part!r}: the start is after the end")
        if high >= limit:
            raise AtlasError(f"{what} {high} is out of range: valid are 0-{limit - 1}")
        yield from range(low, high + 1)


def parse_classes(spec: str, num_classes: int, wnids: Mapping[str, int] | None = None) -> list[int]:
    """Class indices of a spec: "all", "none", ranges and lists, WordNet ids (sorted, unique)."""
    text = spec.strip().lower()
    if text == "all":
        return list(range(num_classes))
    if text in ("none", ""):
        return []
    indices: set[int] = set()
    numeric = []
    for part in text.split(","):
        part = part.strip()
        if WNID.match(part):
            if wnids is None or part not in wnids:
                raise AtlasError(f"unknown class {part!r}: not a WordNet id of this model's classes")
            indices.add(wnids[part])
        else:
            numeric.append(part)
    indices.update(_ranges(",".join(numeric), "class", num_classes))
    return sorted(indices)


def parse_channels(spec: str, layer: str, channels: int, ranking: Sequence[int] | None = None) -> list[int]:
    """Channel indices of a spec: "all", ranges and lists, or "top:N" (the N first of `ranking`).

    `ranking` orders the layer's channels by importance (the pipeline passes the classifier
    weights' column norms for the layer feeding the classifier); without it "top:N" is an error.
    """
    text = spec.strip().lower()
    if text == "all":
        return list(range(channels))
    if text in ("none", ""):
        return []
    if text.startswith("top:"):
        try:
            count = int(text[4:])
        except ValueError:
            count = 0
        if count < 1:
            raise AtlasError(f"bad channel spec {spec!r} for layer {layer}: use top:N with N >= 1")
        if ranking is None:
            raise AtlasError(
                f"layer {layer}: top:N ranks channels by the classifier weights, so it works only for "
                f"the layer that feeds the classifier; use a range like 0-{min(count, channels) - 1}"
            )
        if count > channels:
            raise AtlasError(f"layer {layer}: top:{count} asks for more channels than it has ({channels})")
        return sorted(int(c) for c in ranking[:count])
    return sorted(set(_ranges(text, f"layer {layer} channel", channels)))


def check_spec(spec: str, what: str) -> None:
    """Raise AtlasError unless `spec` is a well-formed class (`what` "class") or channel spec.

    Syntax only, so that a configuration can be checked before any model is loaded; the
    ranges are checked against the model when the jobs are built.
    """
    text = spec.strip().lower()
    if text in ("all", "none", ""):
        return
    if what != "class" and text.startswith("top:"):
        if not text[4:].isdigit() or int(text[4:]) < 1:
            raise AtlasError(f"bad channel spec {spec!r}: use top:N with N >= 1")
        return
    for part in text.split(","):
        if what == "class" and WNID.match(part.strip()):
            continue
        next(_ranges(part, what, 2**62), None)  # the first number is enough: syntax is checked per part
