"""The delivery actor: a thin shell around `engine.attempt`, on Dramatiq's asyncio loop.

A message carries up to `delivery_batch` delivery ids (docs/adr/0011-batched-delivery.md):
the broker's per-message costs (fetch, ack, a thread hand-off) are paid once per batch,
and the attempts of a batch run concurrently, their statements shared.

Dramatiq's AsyncIO middleware runs every async actor on one event loop thread per worker
process, so the database engine, HTTP client and per-endpoint semaphores are shared there.
Dramatiq retries are off (max_retries=0): the engine decides when to try again and the
actor enqueues that attempt with a delay.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import uuid
from collections.abc import Iterable

import aiohttp
import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware.asyncio import AsyncIO
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from control.db import create_engine, session_factory
from control.delivery import engine, guard
from control.delivery.broker import make_broker
from control.settings import ControlSettings

QUEUE = "deliveries"  # the default of RICOCHET_DELIVERY_QUEUE
ACTOR = "deliver"
# How long an idle worker waits between looks at the broker (Dramatiq's worker_timeout; its
# default, 1 s, made every scheduled retry and a first attempt after a lull up to 1 s late).
POLL_MS = 100
log = logging.getLogger("ricochet.delivery")


class Runtime:
    """Per-process resources, made lazily on the loop that uses them."""

    def __init__(self, settings: ControlSettings) -> None:
        self.settings = settings
        self.db: AsyncEngine | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        self.http: aiohttp.ClientSession | None = None

    def resources(self) -> tuple[async_sessionmaker[AsyncSession], aiohttp.ClientSession]:
        if self.sessions is None or self.http is None:
            self.db = create_engine(self.settings.sqlalchemy_url, self.settings.db_pool_size)
            self.sessions = session_factory(self.db)
            self.http = guard.client(self.settings)
        return self.sessions, self.http

    async def aclose(self) -> None:
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


def configure(settings: ControlSettings, broker: dramatiq.Broker | None = None) -> dramatiq.Broker:
    """Make `broker` (default: from settings) the process's broker and declare the actor."""
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
    _runtime = Runtime(settings)
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
    """Attempt each delivery, concurrently (each under its target's cap), then queue the
    next attempt of those to be retried, one message per retry time."""
    rt = runtime()
    sessions, http = rt.resources()
    outcomes = await asyncio.gather(
        *(engine.attempt(sessions, http, rt.settings, uuid.UUID(i)) for i in delivery_ids),
        return_exceptions=True,
    )
    retries: dict[int, list[uuid.UUID]] = {}  # delay in ms -> ids
    for delivery_id, outcome in zip(delivery_ids, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            # Its claim runs out and the reconciler sends it again.
            log.error("delivery %s: attempt crashed", delivery_id, exc_info=outcome)
        elif outcome.status == "retrying" and outcome.next_attempt_at is not None:
            wait = outcome.next_attempt_at - dt.datetime.now(dt.UTC)
            # Tenths of a second, rounded up: retries due within 0.1 s of each other share
            # a message, and none arrives before it is due.
            delay_ms = 100 * max(1, math.ceil(wait.total_seconds() * 10))
            retries.setdefault(delay_ms, []).append(outcome.delivery_id)
        elif outcome.status in ("failed", "dead"):
            log.info("delivery %s %s: %s", delivery_id, outcome.status, outcome.error)
    for delay_ms, ids in retries.items():
        # If this enqueue is lost, the reconciler sends the attempt once it is overdue.
        await asyncio.to_thread(enqueue, ids, delay_ms)
