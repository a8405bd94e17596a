"""Apply link projection messages to Redis, never moving a key backwards in version."""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis

from shared.keys import INVALIDATE_CHANNEL
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


class Projector:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._upsert = redis.register_script(_UPSERT)
        self._delete = redis.register_script(_DELETE)

    async def apply(self, messages: list[dict[str, Any]]) -> None:
        keys: list[str] = []
        for msg in messages:
            key, version = msg["key"], msg["version"]
            if msg["op"] == "upsert":
                record = msgspec.convert(msg["record"], LinkRecord)
                await self._upsert(keys=[key], args=[version, encode_link(record)])
            elif msg["op"] == "delete":
                await self._delete(keys=[key], args=[version])
            keys.append(key)
            if old := msg.get("old_key"):  # slug or domain changed: the old address goes away
                await self._delete(keys=[old], args=[version])
                keys.append(old)
        if keys:
            # Edges evict these from their local caches; one message per batch.
            await self.redis.publish(INVALIDATE_CHANNEL, "\n".join(keys))
