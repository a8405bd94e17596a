"""Redis key names and channels: the one place both sides agree on them.

Stream shards use a hash tag (`clicks:{3}`) so they spread over a Redis Cluster's slots.
"""

from __future__ import annotations

LINK_PREFIX = "l:"
INVALIDATE_CHANNEL = "ricochet:links:invalidate"
INGEST_GROUP = "ingest"


def link_key(domain: str, slug: str) -> str:
    """Projection key of one link: `l:<domain>/<slug>` (both already normalised)."""
    return f"{LINK_PREFIX}{domain}/{slug}"


def click_stream(shard: int) -> str:
    return f"clicks:{{{shard}}}"


def click_streams(shards: int) -> list[str]:
    return [click_stream(n) for n in range(shards)]
