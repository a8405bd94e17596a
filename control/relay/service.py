"""The relay: reads committed outbox rows in order and applies them outside any transaction.

One relay leads at a time (a PostgreSQL advisory lock), so messages apply in commit order;
others wait as standbys. LISTEN/NOTIFY wakes the leader the moment a writer commits, with a
slow poll as a safety net. A row is deleted only after its effect is applied: at-least-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from control.clicks import partitions
from control.db import session_factory
from control.delivery import engine as delivery
from control.delivery import fanout
from control.events import repository as event_rows
from control.events import service as events
from control.idempotency import repository as idempotency
from control.internal.service import rebuild
from control.links import state
from control.outbox import repository as outbox
from control.relay.completeness import CHECK_EVERY_S, Completeness
from control.relay.projector import Projector
from control.settings import ControlSettings

LEADER_LOCK = 7460002
PURGE_EVERY_S = 600.0
PARTITIONS_EVERY_S = 3600.0  # click partitions: made a week ahead, so hourly is plenty
PARTITIONS_RETRY_S = 300.0
log = logging.getLogger("ricochet.relay")


class Relay:
    def __init__(
        self,
        settings: ControlSettings,
        engine: AsyncEngine,
        redis: Redis,
        enqueue: Callable[[list[uuid.UUID]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = session_factory(engine)
        # Hands delivery ids to the broker (default: Dramatiq, configured on first use).
        self._enqueue = enqueue
        self._next_reconcile = 0.0
        self.redis = redis
        self.projector = Projector(redis)
        self.completeness = Completeness(redis, self._rebuild)
        self._seq_saved = 0
        self.relayed = 0
        self._next_purge = 0.0
        self._next_partitions = 0.0  # at once when leading, then hourly
        self.handlers: dict[str, Callable[[list[dict[str, Any]]], Awaitable[None]]] = {
            state.PROJECTION_TOPIC: self._project,
            events.TOPIC: self._events,
        }

    async def drain(self) -> int:
        """Apply every pending message; returns how many were applied."""
        done = 0
        while True:
            async with self.engine.connect() as conn:
                batch = await outbox.next_batch(conn, self.settings.relay_batch)
            if not batch:
                return done
            unknown = {topic for _, topic, _ in batch if topic not in self.handlers}
            if unknown:
                # A newer control plane wrote topics this relay cannot apply: stop rather than
                # drop them; a relay of the matching version will pick them up.
                raise RuntimeError(f"outbox has topics this relay does not know: {sorted(unknown)}")
            # Apply in order, grouping consecutive messages of one topic into one call.
            group: list[dict[str, Any]] = []
            for index, (_, topic, payload) in enumerate(batch):
                group.append(payload)
                if index + 1 == len(batch) or batch[index + 1][1] != topic:
                    await self.handlers[topic](group)
                    group = []
            async with self.engine.begin() as conn:
                await outbox.remove(conn, [row_id for row_id, _, _ in batch])
                seq = self.completeness.seq
                if seq > self._seq_saved:
                    await outbox.set_projection_seq(conn, seq)
            self._seq_saved = max(self._seq_saved, seq)
            done += len(batch)
            self.relayed += len(batch)

    async def _rebuild(self, progress: Callable[[int], None]) -> int:
        done = await rebuild(self.engine, self.redis, progress)
        # Wake the loop now: the marker can be set after the next full drain.
        async with self.engine.begin() as conn:
            await outbox.wake_relay(conn)
        return done

    async def _project(self, payloads: list[dict[str, Any]]) -> None:
        """Each projection batch gets the next watermark, in Redis now and in PostgreSQL with
        the removal of its rows: a marker behind PostgreSQL's shows writes Redis lost."""
        self.completeness.seq += 1
        await self.projector.apply(payloads, seq=self.completeness.seq)

    async def _events(self, payloads: list[dict[str, Any]]) -> None:
        """Events are stored already (in the `events` table, same transaction as the change).
        What remains is webhook fan-out: deliveries are created in one transaction and
        enqueued after it commits. A lost enqueue only delays: the reconciler resends."""
        ids = [uuid.UUID(p["event_id"]) for p in payloads]
        async with self.sessions.begin() as session:
            created = await fanout.create_for_events(session, ids)
        if created:
            try:
                await asyncio.to_thread(self._enqueue_deliveries, created)
            except Exception:
                log.exception("enqueueing %d deliveries failed; the reconciler will", len(created))

    def _enqueue_deliveries(self, ids: list[uuid.UUID]) -> None:
        if self._enqueue is None:
            from control.delivery import actors

            if not actors.configured():
                actors.configure(self.settings)
            self._enqueue = actors.enqueue
        self._enqueue(ids)

    async def run(self, stop: asyncio.Event, on_ready: Callable[[], None] | None = None) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.settings.libpq_url, autocommit=True
        ) as listener:
            while not stop.is_set():
                row = await (
                    await listener.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,))
                ).fetchone()
                if row and row[0]:
                    break
                log.info("another relay leads; standing by")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)
            if stop.is_set():
                return
            await listener.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
            async with self.engine.connect() as conn:
                self.completeness.seq = self._seq_saved = await outbox.projection_seq(conn)
            log.info("relay leading")
            if on_ready:
                on_ready()
            try:
                while not stop.is_set():
                    try:
                        await self.step()
                    except Exception:
                        log.exception("relay pass failed; retrying")
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), 1.0)
                        continue
                    await self._wait(listener, stop)
            finally:
                await self.completeness.stop()

    async def step(self) -> None:
        """One pass of the leader: relay, keep the projection complete, chores."""
        # A rebuild that ended before this drain began is covered by it (ADR 0013).
        rebuilt = self.completeness.rebuilt()
        await self.drain()
        if rebuilt:
            await self.completeness.finish()
        await self.completeness.check()
        await self._housekeeping()

    async def _housekeeping(self) -> None:
        """Leader-only chores that need no schedule of their own."""
        now = time.monotonic()
        if now >= self._next_reconcile:
            # Deliveries whose broker message was lost, or whose worker died mid-attempt.
            every = self.settings.delivery_reconcile_s
            self._next_reconcile = now + every
            try:
                await delivery.reconcile(self.sessions, self._enqueue_deliveries, every)
            except Exception:
                log.exception("delivery reconciliation failed; trying again in %g s", every)
        if now >= self._next_partitions:
            await self._maintain_partitions(now)
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_EVERY_S
        async with self.engine.begin() as conn:
            purged = await idempotency.purge_expired(conn)
        if purged:
            log.info("purged %d expired idempotency keys", purged)
        if self.settings.event_retention_days:
            await self._purge_events()

    async def _purge_events(self) -> None:
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=self.settings.event_retention_days)
        total = 0
        while True:
            async with self.engine.begin() as conn:
                done = await event_rows.purge_before(conn, cutoff)
            total += done
            if done < event_rows.PURGE_CHUNK:
                break
        if total:
            log.info(
                "purged %d events older than %d days", total, self.settings.event_retention_days
            )

    async def _maintain_partitions(self, now: float) -> None:
        """Daily partitions of `clicks` a week ahead; those past the retention dropped.
        A failure (say a lock not granted in time) is logged and tried again soon: it must
        not hold up relaying."""
        try:
            created, dropped = await partitions.maintain(
                self.engine, self.settings.click_retention_days
            )
        except Exception:
            log.exception("click partition maintenance failed; trying again in 5 minutes")
            self._next_partitions = now + PARTITIONS_RETRY_S
            return
        self._next_partitions = now + PARTITIONS_EVERY_S
        if created or dropped:
            log.info(
                "click partitions: created %s; dropped %s",
                ", ".join(created) or "none",
                ", ".join(dropped) or "none",
            )

    async def _wait(self, listener: psycopg.AsyncConnection, stop: asyncio.Event) -> None:
        # Returns on the first NOTIFY or after the poll interval; shutdown waits at most that.
        # Woken at least once a second, to check the projection marker.
        timeout = min(self.settings.relay_poll_s, CHECK_EVERY_S)
        async for _ in listener.notifies(timeout=timeout, stop_after=1):
            pass
