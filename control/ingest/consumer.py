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

Batches are worth a transaction (docs/adr/0012-ingest-adaptive-batching.md). At a steady
rate the edge's entries arrive a few at a time; when a read brings fewer than
`ingest_batch_clicks`, ingest keeps reading for up to `ingest_linger_ms` before it
stores, and stores what it read on every shard in one transaction (a bigger read in
several of about that many clicks), then acks each shard.
Lingering changes only when the commit happens, never the order above: an entry read
while lingering is pending until its commit, so a crash or a shutdown meanwhile leaves
it to be delivered again (a shutdown stops lingering and stores what it holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator
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
    stream: str
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
        self._unfinished = False  # a step failed: entries it read may be pending unacked
        self._stop: asyncio.Event | None = None  # set by `run`: stop lingering at once

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
        entry = _Entry(stream, entry_id, fields)
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
        """Store and ack `entries` of `stream`; those that fail on their content stay pending.

        `redelivered`: they were pending already (recovered or claimed), so their delivery
        counts are looked at, and those past the limit get a last try before the dead stream.
        """
        return await self.process_read({stream: entries}, redelivered=redelivered)

    async def process_read(self, read: dict[str, Entries], *, redelivered: bool = False) -> int:
        """Store what one read (or linger) brought from several shards, in one transaction
        per `ingest_batch_clicks` or so, acking each one's entries after its commit; see
        `process`. (A backlog's read can hold 40,000 clicks: in one statement its rollups
        would be sorted on disk.)"""
        stored = 0
        for chunk in _chunks(read, self.settings.ingest_batch_clicks):
            stored += await self._process_chunk(chunk, redelivered)
        return stored

    async def _process_chunk(self, read: dict[str, Entries], redelivered: bool) -> int:
        limit = self.settings.ingest_max_deliveries
        done: dict[str, list[bytes]] = {}  # to ack, per stream
        batch: list[_Entry] = []
        last_try: list[tuple[_Entry, int]] = []
        for stream, entries in read.items():
            counts = await self._deliveries(stream, entries) if redelivered and entries else {}
            acks = done.setdefault(stream, [])
            for entry_id, fields in entries:
                if not fields:  # trimmed or deleted while pending
                    acks.append(entry_id)
                    continue
                entry = await self._prepare(stream, entry_id, fields)
                times = counts.get(_as_bytes(entry_id), 0)
                if times > limit:
                    last_try.append((entry, times))
                else:
                    batch.append(entry)
        before = self.stored
        failed = next((e.error for e in batch if e.error), None)
        if batch and failed is None:
            try:
                await self._store([row for e in batch for row in e.rows])
                for e in batch:
                    done[e.stream].append(e.entry_id)
            except Exception as exc:
                if _systemic(exc):
                    raise
                failed = exc
        if failed is not None:
            log.warning(
                "storing %d entries of %s failed (%s); storing them one by one",
                len(batch),
                ", ".join(sorted({e.stream for e in batch})),
                failed,
            )
            for entry in batch:
                failure = await self._store_alone(entry)
                if failure is None:
                    done[entry.stream].append(entry.entry_id)
                else:  # stays pending: tried again when claimed, dead-lettered at the limit
                    log.error("entry %s on %s failed: %s", entry.entry_id, entry.stream, failure)
        for entry, times in last_try:
            failure = await self._store_alone(entry)
            if failure is not None:
                log.error(
                    "entry %s on %s failed after %d deliveries, moved to %s: %s",
                    entry.entry_id,
                    entry.stream,
                    times,
                    DEAD_STREAM,
                    failure,
                )
                assert entry.fields is not None
                await self._dead_letter(
                    entry.stream,
                    entry.entry_id,
                    entry.fields,
                    f"delivered {times} times (limit {limit})",
                    f"{type(failure).__name__}: {failure}",
                )
            done[entry.stream].append(entry.entry_id)
        for stream, acks in done.items():
            if acks:
                await self.redis.xack(stream, INGEST_GROUP, *acks)
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

    async def _read(self, block_ms: int) -> dict[str, Entries]:
        reply: Any = await self.redis.xreadgroup(
            INGEST_GROUP,
            self.consumer,
            {s: ">" for s in self.streams},
            count=self.settings.ingest_batch,
            block=block_ms,
        )
        return {_as_str(stream): entries for stream, entries in reply or [] if entries}

    async def read(self) -> dict[str, Entries]:
        """New entries of every shard: a batch's worth, or what came within the linger window.

        Waits up to `ingest_block_ms` for anything; once something came, keeps reading for
        up to `ingest_linger_ms` more while it holds fewer than `ingest_batch_clicks`.
        """
        got = await self._read(self.settings.ingest_block_ms)
        linger = self.settings.ingest_linger_ms / 1000
        if not got or linger <= 0:
            return got
        clicks = sum(_clicks_in(f) for entries in got.values() for _, f in entries)
        deadline = time.monotonic() + linger
        while clicks < self.settings.ingest_batch_clicks and not self._stopping():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms < 1:
                break
            more = await self._read(left_ms)
            for stream, entries in more.items():
                got.setdefault(stream, []).extend(entries)
                clicks += sum(_clicks_in(f) for _, f in entries)
        return got

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def step(self) -> int:
        if time.monotonic() - self._last_claim > CLAIM_IDLE_MS / 2000:
            self._last_claim = time.monotonic()
            await self.claim_abandoned()
            await self.trim()
        if self._unfinished:
            # A step failed after reading (Redis or PostgreSQL went away mid-linger): what
            # it read is pending under our name. Finish it now, not when XAUTOCLAIM finds it
            # idle a minute later.
            await self.recover_own_pending()
            self._unfinished = False
        read = await self.read()
        return await self.process_read(read) if read else 0

    async def run(self, stop: asyncio.Event, on_ready: Callable[[], None] | None = None) -> None:
        self._stop = stop
        await asyncio.to_thread(enrich.visitors)  # load the parsers now, not on the first click
        # The parsers are ~100 MB of long-lived objects: out of the collector's sight, a full
        # collection no longer walks them all (it cost ingest a tenth of its CPU).
        gc.freeze()
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
                self._unfinished = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            finally:
                line = self.metrics.report()
                if line:
                    log.info(line)


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _as_str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _chunks(read: dict[str, Entries], size: int) -> Iterator[dict[str, Entries]]:
    """`read` cut into pieces of at most `size` clicks (or one entry, if bigger)."""
    chunk: dict[str, Entries] = {}
    clicks = 0
    for stream, entries in read.items():
        for entry in entries:
            n = _clicks_in(entry[1])
            if chunk and clicks + n > size:
                yield chunk
                chunk, clicks = {}, 0
            chunk.setdefault(stream, []).append(entry)
            clicks += n
    if chunk:
        yield chunk


def _clicks_in(fields: dict[bytes, bytes] | None) -> int:
    """How many clicks an entry carries, from its msgpack array header (1 if unreadable:
    decoding, and refusing what is broken, is `_prepare`'s business)."""
    data = (fields or {}).get(BATCH_FIELD, b"")
    if data[:1] and 0x90 <= data[0] <= 0x9F:
        return data[0] - 0x90
    if data[:1] == b"\xdc" and len(data) >= 3:
        return int.from_bytes(data[1:3], "big")
    if data[:1] == b"\xdd" and len(data) >= 5:
        return int.from_bytes(data[1:5], "big")
    return 1


def _parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
