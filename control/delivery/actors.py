"""The delivery actor: a thin shell around `engine.attempt`, on Dramatiq's asyncio loop.

A message carries up to `delivery_batch` delivery ids (docs/adr/0011-batched-delivery.md):
the broker's per-message costs (fetch, ack, a thread hand-off) are paid once per batch. The
actor claims them (one statement for many) and hands the claimed ones to attempts that run
on the loop on their own, so a message never waits for a receiver.

Dramatiq's AsyncIO middleware runs every async actor on one event loop thread per worker
process, so the database engine, HTTP client and per-endpoint semaphores are shared there.
Dramatiq retries are off (max_retries=0): the engine decides when to try again and the
actor enqueues that attempt with a delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Iterable

import aiohttp
import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware.asyncio import AsyncIO
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from control.db import create_engine, session_factory
from control.delivery import engine, guard, repository, statements
from control.delivery.broker import make_broker
from control.delivery.coalesce import Coalescer
from control.settings import ControlSettings

QUEUE = "deliveries"  # the default of RICOCHET_DELIVERY_QUEUE
ACTOR = "deliver"
# How long an idle worker waits between looks at the broker (Dramatiq's worker_timeout; its
# default, 1 s, made every scheduled retry and a first attempt after a lull up to 1 s late).
POLL_MS = 100
log = logging.getLogger("ricochet.delivery")


class Runtime:
    """Per-process resources, made lazily on the loop that uses them: the database engine,
    the HTTP client, the attempts in flight, and the retry enqueuer."""

    def __init__(self, settings: ControlSettings, in_flight: int) -> None:
        self.settings = settings
        self.in_flight = in_flight
        self.db: AsyncEngine | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        self.http: aiohttp.ClientSession | None = None
        self.room: asyncio.Semaphore | None = None
        self.attempts: set[asyncio.Task[None]] = set()
        self.later: Coalescer[None, tuple[uuid.UUID, int], None] | None = None

    def resources(self) -> tuple[async_sessionmaker[AsyncSession], aiohttp.ClientSession]:
        if self.sessions is None or self.http is None:
            self.db = create_engine(self.settings.sqlalchemy_url, self.settings.db_pool_size)
            self.sessions = session_factory(self.db)
            self.http = guard.client(self.settings)
            self.room = asyncio.Semaphore(self.in_flight)
            self.later = Coalescer(contextlib.nullcontext, _enqueue_later)
        return self.sessions, self.http

    async def aclose(self) -> None:
        """Let the attempts in flight end (each ends by its deadline), then close the pools."""
        # An attempt ending may queue its retry (one more task): wait for those too.
        deadline = time.monotonic() + guard.attempt_deadline_s(self.settings) + 5.0
        while self.attempts and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(set(self.attempts), timeout=left)
        for task in set(self.attempts):  # their claims run out; the reconciler sends them again
            task.cancel()
        if self.http is not None:
            await self.http.close()
        if self.db is not None:
            await self.db.dispose()
        self.db = self.sessions = self.http = None


class _CloseRuntime(dramatiq.Middleware):
    """Closes the pools on the event loop thread before the AsyncIO middleware stops it."""

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = get_event_loop_thread()
        if _runtime is not None and thread is not None:
            try:
                thread.run_coroutine(_runtime.aclose())
            except Exception:
                log.exception("closing delivery resources failed")


_runtime: Runtime | None = None
_actor: dramatiq.Actor | None = None  # type: ignore[type-arg]


def configure(
    settings: ControlSettings, broker: dramatiq.Broker | None = None, threads: int = 8
) -> dramatiq.Broker:
    """Make `broker` (default: from settings) the process's broker and declare the actor;
    a process holds at most `threads` messages' worth of attempts in flight."""
    global _runtime, _actor
    broker = broker or make_broker(settings)
    if not any(isinstance(m, AsyncIO) for m in broker.middleware):
        broker.add_middleware(AsyncIO())
    if not any(isinstance(m, _CloseRuntime) for m in broker.middleware):
        broker.add_middleware(_CloseRuntime())
    dramatiq.set_broker(broker)
    _actor = broker.actors.get(ACTOR) or dramatiq.Actor(
        deliver,
        broker=broker,
        actor_name=ACTOR,
        queue_name=settings.delivery_queue,
        priority=0,
        options={"max_retries": 0},
    )
    _runtime = Runtime(settings, in_flight=threads * settings.delivery_batch)
    return broker


def configured() -> bool:
    return _actor is not None


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("control.delivery.actors.configure() was not called")
    return _runtime


def enqueue(delivery_ids: Iterable[uuid.UUID | str], delay_ms: int = 0) -> None:
    """Queue an attempt of each delivery, `delivery_batch` ids per message (blocking; call
    after the creating commit)."""
    if _actor is None or _runtime is None:
        raise RuntimeError("control.delivery.actors.configure() was not called")
    ids = [str(i) for i in delivery_ids]
    size = _runtime.settings.delivery_batch
    for start in range(0, len(ids), size):
        _actor.send_with_options(args=tuple(ids[start : start + size]), delay=delay_ms or None)


async def enqueue_committed(settings: ControlSettings, delivery_ids: list[uuid.UUID]) -> None:
    """Queue deliveries an API request has just committed, off the event loop. Never raises:
    a lost message is not lost work, the delivery is pending and due, so the reconciler sends
    it once it is overdue."""
    if not delivery_ids:
        return
    try:
        if not configured():
            configure(settings)
        await asyncio.to_thread(enqueue, delivery_ids)
    except Exception:
        log.exception("could not enqueue %d deliveries; the reconciler will", len(delivery_ids))


async def deliver(*delivery_ids: str) -> None:
    """Claim each delivery, then hand the claimed ones to attempts that run on their own.

    The message is acknowledged once every delivery is claimed (or skipped, failed, or put
    back): from then on a claimed delivery is safe without the message -- if this process
    dies, its claim runs out and the reconciler sends it again. So a message never waits
    for a receiver, and a slow receiver holds no thread: what it holds is at most its cap
    of requests and a few seconds' worth of waiting attempts (`engine.crowded`); the rest
    of its deliveries are put back, due when a slot is expected. Admission waits while the
    process has `in_flight` attempts already: that is the back-pressure on the broker.
    """
    rt = runtime()
    sessions, http = rt.resources()
    assert rt.room is not None
    sql = statements.for_engine(repository.bind(sessions))
    ids = [uuid.UUID(i) for i in delivery_ids]
    claims = await asyncio.gather(
        *(engine.begin(sql, rt.settings, i) for i in ids), return_exceptions=True
    )
    for delivery_id, claim in zip(ids, claims, strict=True):
        if isinstance(claim, BaseException):
            # A claim that failed half-way runs out; the reconciler sends it again.
            log.error("delivery %s: claim failed", delivery_id, exc_info=claim)
            continue
        if isinstance(claim, engine.AttemptOutcome):
            _note(rt, claim)
            continue
        delay = engine.crowded(rt.settings, claim)
        if delay is not None:
            try:
                _note(rt, await engine.defer(sql, delivery_id, claim, delay))
            except Exception:  # it stays claimed; its lease runs out, the reconciler re-sends
                log.exception("delivery %s: could not put it back", delivery_id)
            continue
        await rt.room.acquire()
        task = asyncio.create_task(_attempt(rt, sql, http, delivery_id, claim))
        rt.attempts.add(task)
        task.add_done_callback(rt.attempts.discard)


async def _attempt(
    rt: Runtime,
    sql: statements.Statements,
    http: aiohttp.ClientSession,
    delivery_id: uuid.UUID,
    claim: engine.Claim,
) -> None:
    assert rt.room is not None
    try:
        _note(rt, await engine.finish(sql, http, rt.settings, delivery_id, claim))
    except Exception:
        # Its claim runs out and the reconciler sends it again.
        log.exception("delivery %s: attempt crashed", delivery_id)
    finally:
        rt.room.release()


def _note(rt: Runtime, outcome: engine.AttemptOutcome) -> None:
    """Queue the next attempt of a retrying or deferred delivery; log the final failures."""
    if outcome.status in ("retrying", "deferred") and outcome.next_attempt_at is not None:
        wait = outcome.next_attempt_at - dt.datetime.now(dt.UTC)
        # Tenths of a second, rounded up: deliveries due within 0.1 s of each other share a
        # message, and none arrives before it is due.
        delay_ms = 100 * max(1, math.ceil(wait.total_seconds() * 10))
        assert rt.later is not None
        task = asyncio.create_task(rt.later((outcome.delivery_id, delay_ms)))
        rt.attempts.add(task)
        task.add_done_callback(rt.attempts.discard)
    elif outcome.status in ("failed", "dead"):
        log.info("delivery %s %s: %s", outcome.delivery_id, outcome.status, outcome.error)


async def _enqueue_later(_: None, items: list[tuple[uuid.UUID, int]]) -> list[None]:
    """One message per delay among the retries and deferrals gathered meanwhile. If an
    enqueue is lost, the reconciler sends the attempt once it is overdue."""
    by_delay: dict[int, list[uuid.UUID]] = {}
    for delivery_id, delay_ms in items:
        by_delay.setdefault(delay_ms, []).append(delivery_id)
    for delay_ms, ids in by_delay.items():
        try:
            await asyncio.to_thread(enqueue, ids, delay_ms)
        except Exception:
            log.exception("could not enqueue %d deliveries; the reconciler will", len(ids))
    return [None] * len(items)
