"""Ingest: the `ingest` consumer group on every `clicks:{n}` shard, into PostgreSQL.

Order of operations is what makes it lossless and duplicate-free: insert (idempotent on the
click id) and commit, then XACK. A crash between the two re-delivers entries whose rows are
already there, and ON CONFLICT DO NOTHING makes the second insert a no-op.

One bad entry never holds up the others. When storing a batch fails for a reason of its
own content (not a lost connection), each entry is stored on its own: the good ones are
stored and acked, a failing one stays pending and is tried again when claimed. An entry
delivered more than `ingest_max_deliveries` times gets one last try on its own and, if it
still fails for its content, goes to the dead stream with the reason, and is acked. An
outage is not the entry's fault: connection-level failures never dead-letter anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import psycopg
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from control.clicks import enrich
from control.clicks import events as click_events
from control.clicks import repository as clicks
from control.ingest.metrics import IngestMetrics
from control.settings import ControlSettings
from shared.clicks import BATCH_FIELD, ClickEvent, decode_batch
from shared.keys import INGEST_GROUP, click_streams

DEAD_STREAM = "clicks:dead"
CLAIM_IDLE_MS = 60_000  # entries a crashed consumer held this long are taken over
log = logging.getLogger("ricochet.ingest")

# redis-py types stream replies loosely; these are the RESP2 shapes we rely on.
Entries = list[tuple[bytes, dict[bytes, bytes] | None]]


@dataclass
class _Entry:
    entry_id: bytes
    fields: dict[bytes, bytes] | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: Exception | None = None  # failed before the database: decoding or enriching


def _systemic(exc: BaseException) -> bool:
    """A failure that is not the fault of what an entry holds: servers or network down,
    timeouts, deadlocks, disk full, or a schema that does not match this code. Retried
    later; it never sends anything to the dead stream."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig or exc
    return isinstance(
        exc,
        psycopg.OperationalError  # also lock/statement timeouts, deadlocks, disk full
        | psycopg.InterfaceError
        | psycopg.ProgrammingError  # e.g. a table missing: migrations not applied
        | psycopg.InternalError
        | psycopg.NotSupportedError
        | sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.ProgrammingError
        | sa_exc.InternalError
        | sa_exc.NotSupportedError
        | sa_exc.TimeoutError  # no pooled connection in time
        | RedisConnectionError
        | RedisTimeoutError
        | OSError
        | TimeoutError,
    )


class Ingest:
    def __init__(self, settings: ControlSettings, engine: AsyncEngine, redis: Redis, consumer: str):
        self.settings = settings
        self.engine = engine
        self.redis = redis
        self.consumer = consumer
        self.streams = click_streams(settings.click_shards)
        self.metrics = IngestMetrics()
        self._last_claim = 0.0

    @property
    def stored(self) -> int:
        return self.metrics.stored

    async def ensure_groups(self) -> None:
        for stream in self.streams:
            # From "0", not "$": clicks the edge wrote before any ingest existed still count.
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
                await self.redis.xgroup_create(stream, INGEST_GROUP, id="0", mkstream=True)

    async def _dead_letter(
        self, stream: str, entry_id: bytes, fields: dict[bytes, bytes], reason: str, error: str
    ) -> None:
        """Park a whole entry, as it was, where operators can see and replay it."""
        dead: dict[Any, Any] = dict(fields)
        dead.update(
            {
                b"stream": stream.encode(),
                b"entry": entry_id,
                b"reason": reason.encode(),
                b"error": error.encode(),
            }
        )
        await self.redis.xadd(DEAD_STREAM, dead)
        self.metrics.dead_letter()

    async def _prepare(self, stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> _Entry:
        entry = _Entry(entry_id, fields)
        try:
            events = decode_batch(fields[BATCH_FIELD])
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            # Never drop silently: park the undecodable entry where operators can see it.
            log.error("undecodable entry %s on %s: %s", entry_id, stream, exc)
            await self._dead_letter(stream, entry_id, fields, "undecodable", str(exc))
            return entry  # nothing to store: acked with the rest
        try:
            who = enrich.visitors()
            for event in events:
                try:
                    entry.rows.append(enrich.row(event, who))
                except ValueError as exc:  # ids that are not UUIDv7s: a producer bug
                    log.error("unusable click %s on %s: %s", event.id, stream, exc)
                    await self._park_click(stream, event, exc)
        except Exception as exc:
            if _systemic(exc):
                raise
            entry.error = exc  # e.g. a parser bug on one odd user agent: this entry only
        return entry

    async def _park_click(self, stream: str, event: ClickEvent, exc: Exception) -> None:
        await self.redis.xadd(
            DEAD_STREAM,
            {
                b"stream": stream.encode(),
                b"event": msgspec.msgpack.encode(event),
                b"reason": b"unusable",
                b"error": str(exc).encode(),
            },
        )
        self.metrics.dead_letter()

    async def _store(self, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        async with self.engine.begin() as conn:
            inserted = await clicks.store(conn, rows)
            # Same transaction: an event exists exactly when its click does.
            events = await click_events.record(conn, self.settings, inserted)
        self.metrics.batch(rows, len(inserted), events)
        return len(inserted)

    async def _store_alone(self, entry: _Entry) -> Exception | None:
        """Store one entry in its own transaction; the entry's own failure is returned."""
        if entry.error is not None:
            return entry.error
        try:
            await self._store(entry.rows)
        except Exception as exc:
            if _systemic(exc):
                raise
            return exc
        return None

    async def _deliveries(self, stream: str, entries: Entries) -> dict[bytes, int]:
        """How many times each of these pending entries has been delivered (XPENDING)."""
        ids = [_parse_id(entry_id) for entry_id, _ in entries]
        low, high = min(ids), max(ids)
        reply: Any = await self.redis.xpending_range(
            stream,
            INGEST_GROUP,
            min=f"{low[0]}-{low[1]}",
            max=f"{high[0]}-{high[1]}",
            count=4 * len(entries) + 100,  # our other pending entries may fall in the range
            consumername=self.consumer,
        )
        return {_as_bytes(p["message_id"]): int(p["times_delivered"]) for p in reply}

    async def process(self, stream: str, entries: Entries, *, redelivered: bool = False) -> int:
        """Store and ack `entries`; those that fail on their content stay pending.

        `redelivered`: they were pending already (recovered or claimed), so their delivery
        counts are looked at, and those past the limit get a last try before the dead stream.
        """
        counts = await self._deliveries(stream, entries) if redelivered and entries else {}
        limit = self.settings.ingest_max_deliveries
        done: list[bytes] = []  # to ack
        batch: list[_Entry] = []
        last_try: list[_Entry] = []
        for entry_id, fields in entries:
            if not fields:  # trimmed or deleted while pending
                done.append(entry_id)
                continue
            entry = await self._prepare(stream, entry_id, fields)
            (last_try if counts.get(_as_bytes(entry_id), 0) > limit else batch).append(entry)
        before = self.stored
        failed = next((e.error for e in batch if e.error), None)
        if batch and failed is None:
            try:
                await self._store([row for e in batch for row in e.rows])
                done.extend(e.entry_id for e in batch)
            except Exception as exc:
                if _systemic(exc):
                    raise
                failed = exc
        if failed is not None:
            log.warning(
                "storing %d entries of %s failed (%s); storing them one by one",
                len(batch),
                stream,
                failed,
            )
            for entry in batch:
                failure = await self._store_alone(entry)
                if failure is None:
                    done.append(entry.entry_id)
                else:  # stays pending: tried again when claimed, dead-lettered at the limit
                    log.error("entry %s on %s failed: %s", entry.entry_id, stream, failure)
        for entry in last_try:
            failure = await self._store_alone(entry)
            if failure is not None:
                times = counts[_as_bytes(entry.entry_id)]
                log.error(
                    "entry %s on %s failed after %d deliveries, moved to %s: %s",
                    entry.entry_id,
                    stream,
                    times,
                    DEAD_STREAM,
                    failure,
                )
                assert entry.fields is not None
                await self._dead_letter(
                    stream,
                    entry.entry_id,
                    entry.fields,
                    f"delivered {times} times (limit {limit})",
                    f"{type(failure).__name__}: {failure}",
                )
            done.append(entry.entry_id)
        if done:
            await self.redis.xack(stream, INGEST_GROUP, *done)
        return self.stored - before

    async def recover_own_pending(self) -> None:
        """After a restart under the same consumer name, finish what was read but not acked."""
        for stream in self.streams:
            after = "0"  # past entries that fail and stay pending, not round again
            while True:
                reply: Any = await self.redis.xreadgroup(
                    INGEST_GROUP, self.consumer, {stream: after}, count=self.settings.ingest_batch
                )
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                await self.process(stream, entries, redelivered=True)
                after = _as_bytes(entries[-1][0]).decode()

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
                    await self.process(stream, entries, redelivered=True)
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
        if self.settings.ingest_metrics_port:
            self.metrics.serve(self.settings.ingest_metrics_host, self.settings.ingest_metrics_port)
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
            finally:
                line = self.metrics.report()
                if line:
                    log.info(line)


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
