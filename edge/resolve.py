"""Host + slug -> link record: local cache first, then the Redis projection."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis

from edge.cache import MISS, LocalCache
from shared.keys import INVALIDATE_CHANNEL, link_key
from shared.records import LinkRecord, decode_link

log = logging.getLogger("ricochet.edge")


class Resolver:
    def __init__(
        self, redis: Redis, cache: LocalCache, default_domain: str, fallback: bool
    ) -> None:
        self.redis = redis
        self.cache = cache
        self.default_domain = default_domain
        self.fallback = fallback
        self.subscribed = False  # invalidations reach us; until then, answers may be stale

    async def resolve(self, host: str, slug: str) -> LinkRecord | None:
        record = await self._lookup(link_key(host, slug))
        if record is None and self.fallback and host != self.default_domain:
            record = await self._lookup(link_key(self.default_domain, slug))
        return record

    async def _lookup(self, key: str) -> LinkRecord | None:
        hit = self.cache.get(key)
        if hit is not MISS:
            return hit  # type: ignore[return-value]
        epoch = self.cache.epoch
        raw: bytes | None = await self.redis.hget(key, "r")  # type: ignore[assignment]
        record = decode_link(raw) if raw else None
        if self.cache.epoch == epoch:
            self.cache.put(key, record)
        return record

    async def listen_invalidations(self) -> None:
        """Evict keys the relay announces; on a lost subscription, drop the whole cache."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(INVALIDATE_CHANNEL)
                # Only once Redis confirms the subscription is every later change sure to
                # reach us; anything before it may have been missed, so start clean then.
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message and message.get("type") == "subscribe":
                        break
                self.cache.clear()
                self.subscribed = True
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = message.get("data")
                    if isinstance(data, bytes):
                        for key in data.decode().split("\n"):
                            self.cache.evict(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed = False
                log.warning("invalidation subscription lost (%s); resubscribing", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
