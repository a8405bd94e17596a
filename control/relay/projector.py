"""Apply link projection messages to Redis, never moving a key backwards in version.

A batch goes out as one pipeline (one round trip, not one per link), and ends by raising
the projection marker's watermark, if the marker exists: Redis replicates commands in
order, so a replica holding watermark N holds every write of batches 1..N (ADR 0013).
"""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis

from shared.keys import INVALIDATE_CHANNEL, PROJECTION_MARKER
from shared.records import LinkRecord, encode_link

# Versions guard against an old message (or a cache rebuild racing the relay) overwriting
# a newer one: Redis keeps whichever version is highest.
_UPSERT = """
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'r', ARGV[2])
return 1
"""
_DELETE = """
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""
# Only an existing marker moves: a missing one means a rebuild must finish first.
_ADVANCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[1])
return 1
"""


class Projector:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._upsert = redis.register_script(_UPSERT)
        self._delete = redis.register_script(_DELETE)
        self._advance = redis.register_script(_ADVANCE)

    async def apply(self, messages: list[dict[str, Any]], seq: int | None = None) -> None:
        """Write `messages` in order; with `seq`, then raise the marker's watermark to it."""
        keys: list[str] = []
        pipe = self.redis.pipeline(transaction=False)
        for msg in messages:
            key, version = msg["key"], msg["version"]
            if msg["op"] == "upsert":
                record = msgspec.convert(msg["record"], LinkRecord)
                await self._upsert(keys=[key], args=[version, encode_link(record)], client=pipe)
            elif msg["op"] == "delete":
                await self._delete(keys=[key], args=[version], client=pipe)
            keys.append(key)
            if old := msg.get("old_key"):  # slug or domain changed: the old address goes away
                await self._delete(keys=[old], args=[version], client=pipe)
                keys.append(old)
        if seq is not None:
            await self._advance(keys=[PROJECTION_MARKER], args=[seq], client=pipe)
        if keys:
            # Edges evict these from their local caches; one message per batch, sent after
            # the writes in the same pipeline, so an edge that re-reads finds the new value.
            pipe.publish(INVALIDATE_CHANNEL, "\n".join(keys))
        if len(pipe):
            await pipe.execute()
