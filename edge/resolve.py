"""Host + slug -> link record: local cache, then the Redis projection, then the control plane.

Redis losing a key (eviction, flush, failover) must never turn a live link into a 404, so a
miss in Redis asks the control plane's internal resolve endpoint. Concurrent misses for one
key share a single request (single-flight), and "no such link" is cached briefly either way.
While Redis is failing, look-ups skip it for a second at a time instead of waiting on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx2 as httpx
from redis.asyncio import Redis

from edge.cache import MISS, LocalCache
from edge.metrics import Counters
from shared.keys import INVALIDATE_CHANNEL, link_key
from shared.records import LinkRecord, decode_link

log = logging.getLogger("ricochet.edge")
REDIS_BACKOFF_S = 1.0


class Unavailable(Exception):
    """Neither Redis nor the control plane could say whether the link exists."""


class ControlClient:
    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    async def resolve(self, domain: str, slug: str) -> LinkRecord | None:
        response = await self.http.get(
            "/internal/v1/resolve", params={"host": domain, "slug": slug}
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return decode_link(response.content)

    async def aclose(self) -> None:
        await self.http.aclose()


class Resolver:
    def __init__(
        self,
        redis: Redis,
        cache: LocalCache,
        counters: Counters,
        default_domain: str,
        fallback: bool,
        control: ControlClient | None = None,
    ) -> None:
        self.redis = redis
        self.cache = cache
        self.counters = counters
        self.default_domain = default_domain
        self.fallback = fallback
        self.control = control
        self.subscribed = False  # invalidations reach us; until then, answers may be stale
        self._redis_down_until = 0.0
        self._inflight: dict[str, asyncio.Future[LinkRecord | None]] = {}
        self.stopping = False  # set at shutdown, before the listener is cancelled

    async def resolve(self, host: str, slug: str) -> LinkRecord | None:
        record = await self.lookup(host, slug)
        if record is None and self.fallback and host != self.default_domain:
            record = await self.lookup(self.default_domain, slug)
        return record

    async def lookup(self, domain: str, slug: str) -> LinkRecord | None:
        key = link_key(domain, slug)
        hit = self.cache.get(key)
        if hit is not MISS:
            self.counters.cache_hits += 1
            return hit  # type: ignore[return-value]
        self.counters.cache_misses += 1
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[LinkRecord | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            epoch = self.cache.epoch
            record = await self._fetch(domain, slug, key)
            if self.cache.epoch == epoch:  # no eviction raced this read: safe to cache
                self.cache.put(key, record)
            future.set_result(record)
            return record
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            del self._inflight[key]

    async def _fetch(self, domain: str, slug: str, key: str) -> LinkRecord | None:
        if time.monotonic() >= self._redis_down_until:
            try:
                raw: bytes | None = await self.redis.hget(key, "r")  # type: ignore[assignment]
                if raw:
                    return decode_link(raw)
            except Exception as exc:
                log.warning("redis look-up failed (%s); asking the control plane", exc)
                self._redis_down_until = time.monotonic() + REDIS_BACKOFF_S
        if self.control is None:
            if time.monotonic() < self._redis_down_until:
                raise Unavailable(key)
            return None
        try:
            record = await self.control.resolve(domain, slug)
        except Exception as exc:
            raise Unavailable(key) from exc
        self.counters.control_fallbacks += 1
        return record

    async def listen_invalidations(self) -> None:
        """Evict keys the relay announces; on a lost subscription, drop the whole cache."""
        # Not `while True`: a cancel the Redis client turns into a connection error must not
        # become a resubscription that outlives shutdown.
        while not self.stopping:
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
