"""Seeds: every random stream of a render comes from a hash, never from a position or a clock.

Both recipes are frozen: a job's seed is in its cache key, and both shape every stored image,
so changing either one re-renders the atlas (and needs a new ENGINE_VERSION).
"""

from __future__ import annotations

import hashlib


def job_seed(objective_id: str, seed_index: int, attempt: int = 0) -> int:
    """A 31-bit seed for image `seed_index` of an objective: the same in any order, shard or run.

    `attempt` > 0 gives the seed of a retry after a non-finite value.
    """
    text = f"{objective_id}|{seed_index}" + (f"|retry{attempt}" if attempt else "")
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def stream_seed(seed: int, stream: str) -> int:
    """A seed for another random stream of the same sample (noise vs. geometry)."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF
