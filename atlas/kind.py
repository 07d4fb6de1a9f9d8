"""What a kind of cache entry is (`Kind`), and the one key function of every kind.

A key is the sha256 of the canonical JSON of everything an entry depends on; equal material
(whatever its order) gives one key, and any changed input another.  Each kind's owner module
(the dataclasses and JSON of its format) describes the kind with one `Kind`, which
`atlas.store.KINDS` registers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def content_key(material: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of `material`."""
    return hashlib.sha256(canonical_json(dict(material))).hexdigest()


@dataclass(frozen=True, eq=False)  # one object per kind: compared and hashed by identity
class Kind:
    """One kind of stored entry.

    A folder kind (`document` set) keeps each entry in `<cache>/<folder>/<key[:2]>/<key>/`: its files,
    then `document` (the value's JSON) written last, so a folder without it is unfinished.  A file
    kind (`document` None) keeps each value as one JSON file in `<cache>/<folder>/`: by key at
    `<key[:2]>/<key>.json` (atlas.store.file_path), or under a name its owner gives.
    """

    name: str
    folder: str
    value: type
    document: str | None
    loads: Callable[[bytes, str | None], Any]  # checked JSON -> value; InvalidRecord with the reason
    dumps: Callable[[Any], bytes]
    needs: Callable[[Any], Iterable[str]] = lambda value: ()  # files a usable value needs, each in its `files`
    salt: Mapping[str, Any] = field(default_factory=dict)  # in every key: the format, where a new one rekeys

    def key(self, material: Mapping[str, Any]) -> str:
        """The key of an entry of this kind made from `material`."""
        return content_key({**self.salt, **material})
