"""Ingest: the `ingest` consumer group on every `clicks:{n}` shard, into PostgreSQL.

Order of operations is what makes it lossless and duplicate-free: insert (idempotent on the
click id) and commit, then XACK. A crash between the two re-delivers entries whose rows are
already there, and ON CONFLICT DO NOTHING makes the second insert a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncEngine

from control.clicks import enrich
from control.clicks import repository as clicks
from control.settings import ControlSettings
from shared.clicks import BATCH_FIELD, ClickEvent, decode_batch
from shared.keys import INGEST_GROUP, click_streams

DEAD_STREAM = "clicks:dead"
CLAIM_IDLE_MS = 60_000  # entries a crashed consumer held this long are taken over
log = logging.getLogger("ricochet.ingest")

# redis-py types stream replies loosely; these are the RESP2 shapes we rely on.
Entries = list[tuple[bytes, dict[bytes, bytes] | None]]


class Ingest:
    def __init__(self, settings: ControlSettings, engine: AsyncEngine, redis: Redis, consumer: str):
        self.settings = settings
        self.engine = engine
        self.redis = redis
        self.consumer = consumer
        self.streams = click_streams(settings.click_shards)
        self.stored = 0
        self._last_claim = 0.0

    async def ensure_groups(self) -> None:
        for stream in self.streams:
            # From "0", not "$": clicks the edge wrote before any ingest existed still count.
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
                await self.redis.xgroup_create(stream, INGEST_GROUP, id="0", mkstream=True)

    async def process(self, stream: str, entries: Entries) -> int:
        events: list[ClickEvent] = []
        ids: list[bytes] = []
        for entry_id, fields in entries:
            ids.append(entry_id)
            if not fields:  # trimmed or deleted while pending
                continue
            try:
                events.extend(decode_batch(fields[BATCH_FIELD]))
            except (KeyError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                # Never drop silently: park the undecodable entry where operators can see it.
                log.error("undecodable entry %s on %s: %s", entry_id, stream, exc)
                dead: dict[Any, Any] = dict(fields)
                dead.update(
                    {b"stream": stream.encode(), b"entry": entry_id, b"error": str(exc).encode()}
                )
                await self.redis.xadd(DEAD_STREAM, dead)
        who = enrich.visitors()
        rows = []
        for event in events:
            try:
                rows.append(enrich.row(event, who))
            except ValueError as exc:  # ids that are not UUIDs: a producer bug, keep evidence
                log.error("unusable click %s on %s: %s", event.id, stream, exc)
                await self.redis.xadd(
                    DEAD_STREAM,
                    {
                        b"stream": stream.encode(),
                        b"event": msgspec.msgpack.encode(event),
                        b"error": str(exc).encode(),
                    },
                )
        async with self.engine.begin() as conn:
            inserted = await clicks.store(conn, rows)
        if ids:
            await self.redis.xack(stream, INGEST_GROUP, *ids)
        self.stored += inserted
        return inserted

    async def recover_own_pending(self) -> None:
        """After a restart under the same consumer name, finish what was read but not acked."""
        for stream in self.streams:
            while True:
                reply: Any = await self.redis.xreadgroup(
                    INGEST_GROUP, self.consumer, {stream: "0"}, count=self.settings.ingest_batch
                )
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                await self.process(stream, entries)

    async def claim_abandoned(self) -> None:
        for stream in self.streams:
            start = "0-0"
            while True:
                reply: Any = await self.redis.xautoclaim(
                    stream,
                    INGEST_GROUP,
                    self.consumer,
                    CLAIM_IDLE_MS,
                    start,
                    count=self.settings.ingest_batch,
                )
                start, entries = reply[0], reply[1]
                if entries:
                    await self.process(stream, entries)
                if not entries or start in (b"0-0", "0-0"):
                    break

    async def trim(self) -> int:
        """Drop entries every consumer group has acknowledged, never one still needed.

        For each group the first entry it may still need is its oldest pending entry, or if
        nothing is pending, whatever follows the last entry it was given. XTRIM MINID (Redis
        6.2) removes only entries below the smallest of those.
        """
        removed = 0
        for stream in self.streams:
            try:
                groups: Any = await self.redis.xinfo_groups(stream)
            except ResponseError:
                continue  # the stream does not exist yet
            if not groups:
                continue  # nobody consumes it: keep everything
            floors = []
            for group in groups:
                name = group["name"]
                if group["pending"]:
                    summary: Any = await self.redis.xpending(stream, name)
                    floors.append(_parse_id(summary["min"]))
                else:
                    ms, seq = _parse_id(group["last-delivered-id"])
                    floors.append((ms, seq + 1))
            ms, seq = min(floors)
            removed += int(await self.redis.xtrim(stream, minid=f"{ms}-{seq}"))
        return removed

    async def step(self) -> int:
        if time.monotonic() - self._last_claim > CLAIM_IDLE_MS / 2000:
            self._last_claim = time.monotonic()
            await self.claim_abandoned()
            await self.trim()
        reply: Any = await self.redis.xreadgroup(
            INGEST_GROUP,
            self.consumer,
            {s: ">" for s in self.streams},
            count=self.settings.ingest_batch,
            block=self.settings.ingest_block_ms,
        )
        stored = 0
        for stream, entries in reply or []:
            name = stream.decode() if isinstance(stream, bytes) else stream
            stored += await self.process(name, entries)
        return stored

    async def run(self, stop: asyncio.Event, on_ready: Callable[[], None] | None = None) -> None:
        await asyncio.to_thread(enrich.visitors)  # load the parsers now, not on the first click
        await self.ensure_groups()
        await self.recover_own_pending()
        if on_ready:
            on_ready()
        while not stop.is_set():
            try:
                await self.step()
            except Exception as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    # Redis lost the group (flushed, or restarted without persistence).
                    log.warning("consumer group missing; creating it again")
                    with contextlib.suppress(Exception):
                        await self.ensure_groups()
                    continue
                log.exception("ingest step failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)


def _parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
