"""Click capture: O(1) append on the response path, batched XADD off it.

The redirect only appends to a list. A background task flushes a batch every few
milliseconds (or when it is full) as one stream entry on the next `clicks:{n}` shard. When
Redis fails, events stay buffered and are retried; past the buffer bound they are counted
as dropped (a metric that must stay at zero).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from redis.asyncio import Redis

from shared.clicks import BATCH_FIELD, ClickEvent, encode_batch
from shared.keys import click_stream

log = logging.getLogger("ricochet.edge")


class ClickCapture:
    def __init__(self, redis: Redis, shards: int, batch: int, flush_ms: int, limit: int) -> None:
        self.redis = redis
        self.shards = shards
        self.batch = batch
        self.interval = flush_ms / 1000
        self.limit = limit
        self.buffer: list[ClickEvent] = []
        self.captured = 0
        self.flushed = 0
        self.dropped = 0
        self._shard = random.randrange(shards)
        self._full = asyncio.Event()

    def record(self, event: ClickEvent) -> None:
        if len(self.buffer) >= self.limit:
            self.dropped += 1
            return
        self.buffer.append(event)
        self.captured += 1
        if len(self.buffer) >= self.batch:
            self._full.set()

    async def flush(self) -> None:
        while self.buffer:
            chunk = self.buffer[: self.batch]
            shard = self._shard
            self._shard = (shard + 1) % self.shards
            await self.redis.xadd(click_stream(shard), {BATCH_FIELD: encode_batch(chunk)})
            # Only now forget them: a failed XADD leaves the chunk at the front of the buffer.
            del self.buffer[: len(chunk)]
            self.flushed += len(chunk)

    async def run(self) -> None:
        backoff = self.interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.interval)
            self._full.clear()
            try:
                await self.flush()
                backoff = self.interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("click flush failed (%s); %d events buffered", exc, len(self.buffer))
                backoff = min(backoff * 2, 2.0)
                await asyncio.sleep(backoff)

    async def drain(self, within: float = 10.0) -> None:
        """On shutdown: push out everything buffered, retrying for up to `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.buffer and loop.time() < deadline:
            try:
                await self.flush()
            except Exception as exc:
                log.warning("drain: flush failed (%s), retrying", exc)
                await asyncio.sleep(0.2)
        if self.buffer:
            log.error("drain: %d click events could not be written", len(self.buffer))
            self.dropped += len(self.buffer)
            self.buffer.clear()
