"""Host + slug -> link record: local cache, then the Redis projection, then the control plane.

While the relay keeps the projection marker in Redis (ADR 0013), the projection holds every
live link and a miss there is a 404: unknown slugs and hosts never go further. Without the
marker (Redis flushed, restarted or failed over; a rebuild under way) a miss asks the control
plane's internal resolve endpoint instead, because losing Redis data must never turn a live
link into a 404. Those look-ups are capped per worker (a rate and a concurrency), share one
request per key (single-flight), and past the cap answer 503 rather than reach PostgreSQL.
"No such link" is cached in a table of its own, so a scan cannot evict hot links. While Redis
is failing, look-ups skip it for a second at a time instead of waiting on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable

import httpx2 as httpx
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from edge.cache import MISS, LocalCache
from edge.metrics import Counters
from shared.keys import INVALIDATE_CHANNEL, PROJECTION_MARKER, link_key
from shared.records import LinkRecord, decode_link

log = logging.getLogger("ricochet.edge")
REDIS_BACKOFF_S = 1.0
# The record if the key exists, else 1 or 0: whether the projection marker is there. Atomic,
# so a flush cannot fall between reading the key and reading the marker.
_READ = """
local r = redis.call('HGET', KEYS[1], 'r')
if r then return r end
return redis.call('EXISTS', KEYS[2])
"""
_READ_SHA = hashlib.sha1(_READ.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


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


class ControlCap:
    """Per worker: at most `rate` control-plane look-ups a second (a token bucket with a
    second's worth of burst) and `concurrency` at a time. Over the rate, a look-up is
    refused at once; under it, it may wait for a slot."""

    def __init__(
        self, rate: float, concurrency: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(rate, 1.0)
        self.clock = clock
        self._tokens = self.burst
        self._at = clock()
        self.slots = asyncio.Semaphore(concurrency)

    def take(self) -> bool:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class Resolver:
    def __init__(
        self,
        redis: Redis,
        cache: LocalCache,
        counters: Counters,
        aliases: dict[str, str],
        control: ControlClient | None = None,
        cap: ControlCap | None = None,
    ) -> None:
        self.redis = redis
        self.cache = cache
        self.counters = counters
        # Host names (normalised) answered as another domain: the default domain's aliases.
        self.aliases = aliases
        self.control = control
        self.cap = cap or ControlCap(20.0, 4)
        self.subscribed = False  # invalidations reach us; until then, answers may be stale
        self._redis_down_until = 0.0
        self._inflight: dict[str, asyncio.Future[LinkRecord | None]] = {}
        self.stopping = False  # set at shutdown, before the listener is cancelled

    async def _read(self, key: str) -> bytes | int:
        """EVALSHA by hand: redis-py's Script and pipelines cost 2x the CPU of one command,
        and under a scan this runs for every request."""
        command = ("EVALSHA", _READ_SHA, 2, key, PROJECTION_MARKER)
        try:
            return await self.redis.execute_command(*command)  # type: ignore[no-any-return,no-untyped-call]
        except NoScriptError:  # a restarted Redis, or the first call: load it, once
            await self.redis.script_load(_READ)
            return await self.redis.execute_command(*command)  # type: ignore[no-any-return,no-untyped-call]

    def domain(self, host: str) -> str:
        """The domain a (normalised) Host names: itself, or the one it is an alias of."""
        return self.aliases.get(host, host)

    async def resolve(self, host: str, slug: str) -> LinkRecord | None:
        return await self.lookup(self.domain(host), slug)

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
            record, ttl = await self._fetch(domain, slug, key)
            if self.cache.epoch == epoch:  # no eviction raced this read: safe to cache
                self.cache.put(key, record, ttl)
            future.set_result(record)
            return record
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            del self._inflight[key]

    async def _fetch(
        self, domain: str, slug: str, key: str
    ) -> tuple[LinkRecord | None, float | None]:
        """The record and, for an answer of "no such link", how long it may be cached."""
        if time.monotonic() >= self._redis_down_until:
            try:
                # One atomic command: the record, or else whether the projection is complete.
                found = await self._read(key)
                if isinstance(found, bytes):
                    return decode_link(found), None
                if found:
                    # Authoritative: the relay's invalidation evicts it when the link appears.
                    self.counters.authoritative_misses += 1
                    return None, self.cache.ttl
            except Exception as exc:
                log.warning("redis look-up failed (%s); asking the control plane", exc)
                self._redis_down_until = time.monotonic() + REDIS_BACKOFF_S
        if self.control is None:
            if time.monotonic() < self._redis_down_until:
                raise Unavailable(key)
            return None, None
        if not self.cap.take():
            self.counters.control_capped += 1
            raise Unavailable(key)
        try:
            async with self.cap.slots:
                record = await self.control.resolve(domain, slug)
        except Exception as exc:
            raise Unavailable(key) from exc
        self.counters.control_fallbacks += 1
        return record, None

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
