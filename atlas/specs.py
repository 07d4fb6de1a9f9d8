"""Class and channel specs: "all", "none", "sample", "0-99", "1,207,967", WordNet ids, class names, "top:N".

A part of a class spec that starts with a digit is an index or a range; any other part names a
class, by WordNet id or by name (case aside), which only the model's class table can resolve.
"sample" is the CPU subset's default: a few classes of whatever head the model has.

Torch-free, so that a configuration is checked (`check_spec`) before any model is loaded, and
by `atlas build`, which never imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

from atlas.errors import AtlasError

WNID = re.compile(r"^n\d{8}$")

# "sample" on a head with ImageNet's classes: 16 classes a reader knows at a glance, spread over the
# hierarchy (fish, birds, a dog, an insect, mammals, objects, food, a landscape, a flower)
IMAGENET_SAMPLE = (
    "n01443537", "n01518878", "n02007558", "n02099601", "n02206856", "n02391049", "n02510455", "n02782093",
    "n02802426", "n03100240", "n04409515", "n07742313", "n07753592", "n07873807", "n09472597", "n11939491",
)


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


def parse_classes(spec: str, num_classes: int, names: Mapping[str, int | Sequence[int]] | None = None) -> list[int]:
    """Class indices of a spec: "all", "none", "sample", ranges and lists, WordNet ids and class names (sorted, unique).

    `names` maps a lower-case WordNet id or class name to its class (or to every class that carries
    it: such a name is refused, the index is not ambiguous); `atlas.labels.lookup` builds it."""
    text = spec.strip().lower()
    if text == "all":
        return list(range(num_classes))
    if text in ("none", ""):
        return []
    if text == "sample":
        return sample_classes(num_classes, names)
    _names_something(spec, "class")
    indices: set[int] = set()
    numeric = []
    for part in text.split(","):
        part = part.strip()
        if not _is_name(part):
            numeric.append(part)
            continue
        found = _indices(names, part)
        if not found:
            what = "a WordNet id" if WNID.match(part) else "a name"
            raise AtlasError(f"unknown class {part!r}: not {what} of this model's classes; give a class index, "
                             "or a name from its labels")
        if len(found) > 1:
            raise AtlasError(f"class name {part!r} is shared by classes {', '.join(map(str, found))}: give the index")
        indices.add(found[0])
    indices.update(_ranges(",".join(numeric), "class", num_classes))
    return sorted(indices)


def sample_classes(num_classes: int, names: Mapping[str, int | Sequence[int]] | None = None) -> list[int]:
    """IMAGENET_SAMPLE where the head has all of those classes, else as many classes spread evenly
    over the head (every class of a head with that many or fewer): the middle of each of 16 equal parts."""
    found = [_indices(names, wnid) for wnid in IMAGENET_SAMPLE]
    if all(len(indices) == 1 for indices in found):
        return sorted(indices[0] for indices in found)
    parts = len(IMAGENET_SAMPLE)
    return sorted({(2 * i + 1) * num_classes // (2 * parts) for i in range(parts)}) if num_classes else []


def _indices(names: Mapping[str, int | Sequence[int]] | None, name: str) -> tuple[int, ...]:
    """Every class that carries `name` (a lower-case WordNet id or class name)."""
    found = (names or {}).get(name)
    return (found,) if isinstance(found, int) else tuple(found or ())


def _is_name(part: str) -> bool:
    """A part of a class spec that names a class rather than numbering it: it has a letter and no leading digit."""
    return bool(part) and not part[0].isdigit() and any(ch.isalpha() for ch in part)


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
    _names_something(spec, f"layer {layer} channel")
    return sorted(set(_ranges(text, f"layer {layer} channel", channels)))


def _names_something(spec: str, what: str) -> None:
    """Refuse a spec of commas and spaces alone: a typo, not a request for nothing (that is "none")."""
    if not spec.replace(",", "").strip():
        raise AtlasError(f"{what} spec {spec!r} names nothing: write none, or a spec like 0-99")


def check_spec(spec: str, what: str) -> None:
    """Raise AtlasError unless `spec` is a well-formed class (`what` "class") or channel spec.

    Syntax only, so that a configuration can be checked before any model is loaded; the
    ranges are checked against the model when the jobs are built.
    """
    text = spec.strip().lower()
    if text in ("all", "none", "") or (what == "class" and text == "sample"):
        return
    _names_something(spec, what)
    if what != "class" and text.startswith("top:"):
        if not text[4:].isdigit() or int(text[4:]) < 1:
            raise AtlasError(f"bad channel spec {spec!r}: use top:N with N >= 1")
        return
    for part in text.split(","):
        if what == "class" and _is_name(part.strip()):
            continue  # a WordNet id or a name: the model's class table resolves it
        next(_ranges(part, what, 2**62), None)  # the first number is enough: syntax is checked per part
