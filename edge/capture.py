"""Click capture: O(1) append on the response path, batched XADD off it, nothing lost.

The redirect only appends to a list. A background task flushes a batch every few
milliseconds (or when it is full) as one stream entry on the next `clicks:{n}` shard. When
Redis fails, batches go to the local spool file instead, and Redis is probed once a second;
when it answers again the spool is replayed first. Only when the spool itself cannot be
written (disk full) and the in-memory bound is reached are events dropped, and counted.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from redis.asyncio import Redis

from edge.metrics import Counters
from edge.spool import Spool
from shared.clicks import BATCH_FIELD, ClickEvent, encode_batch
from shared.keys import click_stream

log = logging.getLogger("ricochet.edge")
PROBE_EVERY_S = 1.0


class ClickCapture:
    def __init__(
        self,
        redis: Redis,
        spool: Spool,
        counters: Counters,
        *,
        shards: int,
        batch: int,
        flush_ms: int,
        limit: int,
    ) -> None:
        self.redis = redis
        self.spool = spool
        self.counters = counters
        self.shards = shards
        self.batch = batch
        self.interval = flush_ms / 1000
        self.limit = limit
        self.buffer: list[ClickEvent] = []
        self.redis_down = False
        self._next_probe = 0.0
        self._shard = random.randrange(shards)
        # Resolved by the flush timer or by a full buffer, whichever comes first: a bare
        # future and a timer handle cost a fraction of wait_for(Event.wait()) (a task, a
        # timeout, two futures), which ran twenty times a second.
        self._wake: asyncio.Future[None] | None = None
        self.stopping = False  # set at shutdown, before the task is cancelled

    def record(self, event: ClickEvent) -> None:
        if len(self.buffer) >= self.limit:
            self.counters.clicks_dropped += 1
            return
        self.buffer.append(event)
        self.counters.clicks_captured += 1
        if len(self.buffer) >= self.batch:
            wake = self._wake
            if wake is not None and not wake.done():
                wake.set_result(None)

    async def _xadd(self, payload: bytes) -> None:
        shard = self._shard
        self._shard = (shard + 1) % self.shards
        await self.redis.xadd(click_stream(shard), {BATCH_FIELD: payload})

    async def flush(self) -> None:
        """Move everything buffered to Redis, or to the spool when Redis is down."""
        while self.buffer:
            chunk = self.buffer[: self.batch]
            payload = encode_batch(chunk)
            if not self.redis_down:
                try:
                    await self._xadd(payload)
                    del self.buffer[: len(chunk)]
                    self.counters.clicks_flushed += len(chunk)
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("redis unreachable for clicks (%s); spooling", exc)
                    self.redis_down = True
                    self._next_probe = time.monotonic() + PROBE_EVERY_S
            try:
                self.spool.append(payload)
            except OSError as exc:
                # Keep them in memory (bounded by `limit`) and try again next round.
                log.error("cannot spool clicks (%s); %d held in memory", exc, len(self.buffer))
                return
            del self.buffer[: len(chunk)]
            self.counters.clicks_spooled += len(chunk)

    async def recover(self) -> None:
        """If Redis is reachable again (or spool files exist), replay the spool first."""
        if self.redis_down:
            if time.monotonic() < self._next_probe:
                return
            self._next_probe = time.monotonic() + PROBE_EVERY_S
            try:
                await self.redis.ping()
            except Exception:
                return
        elif time.monotonic() < self._next_probe:
            return  # Redis is fine: look for spool files (ours or orphans) once a second
        else:
            self._next_probe = time.monotonic() + PROBE_EVERY_S
        if not self.spool.has_files():
            self.redis_down = False
            return
        try:
            sent = await self.spool.replay(self._replay_one)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("spool replay interrupted (%s); will retry", exc)
            self.redis_down = True
            return
        self.redis_down = False
        if sent:
            log.info("replayed %d spooled click batches", sent)

    async def _replay_one(self, payload: bytes) -> None:
        await self._xadd(payload)
        # Counting events means decoding; frames are small and this is off the hot path.
        from shared.clicks import decode_batch

        self.counters.clicks_replayed += len(decode_batch(payload))

    async def run(self) -> None:
        self.spool.orphans_of_dead()
        # Not `while True`: the loop must end (within one interval) when shutting down.
        loop = asyncio.get_running_loop()
        while not self.stopping:
            if len(self.buffer) < self.batch:
                wake = self._wake = loop.create_future()
                timer = loop.call_later(self.interval, _resolve, wake)
                try:
                    await wake
                finally:
                    timer.cancel()
                    self._wake = None
            await self.recover()
            await self.flush()

    async def drain(self) -> None:
        """On shutdown: everything buffered goes to Redis, or failing that to the spool."""
        await self.flush()
        if self.buffer:
            self.counters.clicks_dropped += len(self.buffer)
            log.error("shutdown: %d click events could not be written anywhere", len(self.buffer))
            self.buffer.clear()
        self.spool.close()


def _resolve(wake: asyncio.Future[None]) -> None:
    if not wake.done():
        wake.set_result(None)
