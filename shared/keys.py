"""Redis key names and channels: the one place both sides agree on them.

Stream shards use a hash tag (`clicks:{3}`) so they spread over a Redis Cluster's slots.
"""

from __future__ import annotations

LINK_PREFIX = "l:"
INVALIDATE_CHANNEL = "ricochet:links:invalidate"
INGEST_GROUP = "ingest"
# Present while the projection holds every live link, so a miss there is a 404 (ADR 0013).
# A hash: `seq` is the relay's projection watermark, `since` when it became complete (ms).
PROJECTION_MARKER = "ricochet:projection"
# The token of the rebuild under way; the marker is set only if it survived the rebuild.
PROJECTION_REBUILD = "ricochet:projection:rebuild"


def link_key(domain: str, slug: str) -> str:
    """Projection key of one link: `l:<domain>/<slug>` (both already normalised)."""
    return f"{LINK_PREFIX}{domain}/{slug}"


def click_stream(shard: int) -> str:
    return f"clicks:{{{shard}}}"


def click_streams(shards: int) -> list[str]:
    return [click_stream(n) for n in range(shards)]
