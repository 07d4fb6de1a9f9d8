"""The content-addressed store: one key function for every kind of entry.

A key is the sha256 of the canonical JSON of everything an entry depends on; equal material
(whatever its order) gives one key, and any changed input another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def content_key(material: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of `material`."""
    return hashlib.sha256(canonical_json(dict(material))).hexdigest()
