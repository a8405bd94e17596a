"""One delivery attempt: claim, sign, send outside any transaction, record the outcome.

A delivery targets a webhook endpoint (the signed envelope) or a destination (its mapped
body, with the destination's URL, custom or vendor auth headers, and a signature when the
destination has a signing secret); everything else is the same for both.

State lives in `deliveries`; the broker only carries ids, so a duplicate or late message is
harmless: an attempt is claimed first (one conditional UPDATE moves `next_attempt_at` forward
by a lease, so a concurrent duplicate finds the delivery not due and skips it), and the
outcome is written only if the attempt count is still the one claimed (the statements are
in control/delivery/repository.py: one statement per step, no ORM on this path, and
concurrent attempts share each statement: control/delivery/statements.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
from cryptography.fernet import InvalidToken
from sqlalchemy import and_, false, func, not_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control.db import new_id
from control.delivery import guard, repository, statements
from control.delivery.models import Delivery
from control.destinations import outbound, presets
from control.settings import ControlSettings
from control.webhooks.secrets import signing_secrets
from shared.signing import REASON_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_header

RETRYABLE = frozenset({408, 409, 425, 429})
TERMINAL = frozenset({"succeeded", "failed", "dead"})
EXCERPT_CHARS = 1000


@dataclass(frozen=True)
class AttemptOutcome:
    delivery_id: uuid.UUID
    # succeeded | retrying | failed | dead, or skipped (not due, done already, or gone), or
    # deferred (its target is crowded: due again at next_attempt_at, no attempt counted)
    status: str
    number: int | None = None  # the attempt's number, when one was made
    status_code: int | None = None
    error: str | None = None
    next_attempt_at: dt.datetime | None = None


def schedule(settings: ControlSettings) -> list[float]:
    """Delays before attempts 2..N, in seconds; N = len + 1 (six by default)."""
    return [float(part) for part in settings.delivery_schedule_s.split(",") if part.strip()]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# A claimed delivery whose target is so busy that it would wait longer than this for a
# request slot is put back, due when a slot is expected, instead of waiting in the worker
# (control/delivery/actors.py): a slow receiver's backlog must not fill a worker.
CROWDED_S = 5.0
DEFER_MAX_S = 300.0


class _Cap:
    """Requests in flight to one target (endpoint or destination), per process and loop,
    with how many attempts wait for a slot and how long a request takes there lately."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.slots = asyncio.Semaphore(size)
        self.waiting = 0
        self.seconds = 0.0  # moving average of request time; 0: none measured yet

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self.slots.release()

    def took(self, seconds: float) -> None:
        self.seconds = seconds if not self.seconds else 0.8 * self.seconds + 0.2 * seconds

    def expected_wait_s(self) -> float:
        """How long one more attempt would wait for a slot, by the recent request time."""
        return (self.waiting + 1) / self.size * self.seconds if self.slots.locked() else 0.0


_caps: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[uuid.UUID, _Cap]]
_caps = weakref.WeakKeyDictionary()


def _cap(settings: ControlSettings, target_id: uuid.UUID) -> _Cap:
    per_loop = _caps.setdefault(asyncio.get_running_loop(), {})
    cap = per_loop.get(target_id)
    if cap is None:
        cap = per_loop[target_id] = _Cap(max(1, settings.delivery_endpoint_concurrency))
    return cap


@dataclass(frozen=True)
class Claim:
    number: int
    url: str
    body: bytes
    reason: str
    secrets: list[str] | tuple[str, ...]  # signing secrets; none: the request is not signed
    headers: dict[str, str] = field(default_factory=dict)  # custom or vendor auth headers
    hidden: tuple[str, ...] = ()  # secret values kept out of recorded errors
    hook_id: uuid.UUID | None = None  # a REST hook: a 410 Gone unsubscribes it
    target_id: uuid.UUID | None = None  # the endpoint or destination (its cap)
    held: dt.datetime | None = None  # the lease this claim set (next_attempt_at)
    claimed: float = 0.0  # monotonic time of the claim


async def attempt(
    sessions: async_sessionmaker[AsyncSession],
    http: aiohttp.ClientSession,
    settings: ControlSettings,
    delivery_id: uuid.UUID,
) -> AttemptOutcome:
    sql = statements.for_engine(repository.bind(sessions))
    claim = await begin(sql, settings, delivery_id)
    if isinstance(claim, AttemptOutcome):
        return claim
    return await finish(sql, http, settings, delivery_id, claim)


async def finish(
    sql: statements.Statements,
    http: aiohttp.ClientSession,
    settings: ControlSettings,
    delivery_id: uuid.UUID,
    claim: Claim,
) -> AttemptOutcome:
    """Send a claimed delivery under its target's cap and record the outcome."""
    assert claim.target_id is not None
    cap = _cap(settings, claim.target_id)
    # The cap bounds the requests in flight to one receiver. Claims come first, in batches,
    # so a slot is only ever held for a request; a claim that waited for a slot longer
    # than half the lease margin is renewed before sending, so a live attempt never runs
    # past its lease (if the lease ran out meanwhile and another attempt took the delivery,
    # this one stands down).
    async with cap.slot():
        waited = time.monotonic() - claim.claimed > settings.delivery_lease_margin_s / 2
        if waited and not await _renew(sql, settings, delivery_id, claim):
            return AttemptOutcome(delivery_id, "skipped", error="claim lost while waiting")
        sent = await _send(http, settings, claim)
        cap.took(sent.latency_ms / 1000)
    return await _record(sql, settings, delivery_id, claim, sent)


def crowded(settings: ControlSettings, claim: Claim) -> float | None:
    """Seconds until a slot of the claim's target is expected, when that is more than
    CROWDED_S; None when the attempt should go ahead and wait."""
    assert claim.target_id is not None
    wait = _cap(settings, claim.target_id).expected_wait_s()
    return min(wait, DEFER_MAX_S) if wait > CROWDED_S else None


async def defer(
    sql: statements.Statements, delivery_id: uuid.UUID, claim: Claim, delay_s: float
) -> AttemptOutcome:
    """Give the claim back, due in `delay_s` (no attempt counted)."""
    assert claim.held is not None
    now = _now()
    due = now + dt.timedelta(seconds=delay_s)
    async with repository.connection(sql.db) as conn:
        moved = await repository.extend(conn, delivery_id, claim.number - 1, claim.held, due, now)
    if not moved:
        return AttemptOutcome(delivery_id, "skipped", error="claim lost")
    return AttemptOutcome(delivery_id, "deferred", next_attempt_at=due)


def _lease_s(settings: ControlSettings) -> float:
    # The lease: a duplicate message finds the delivery not due until the attempt ends
    # (or, if this worker dies mid-attempt, the reconciler sends it again later).
    # guard.post ends an attempt at its deadline, so the claim outlives a live attempt.
    return guard.attempt_deadline_s(settings) + settings.delivery_lease_margin_s


async def _renew(
    sql: statements.Statements, settings: ControlSettings, delivery_id: uuid.UUID, claim: Claim
) -> bool:
    assert claim.held is not None
    now = _now()
    async with repository.connection(sql.db) as conn:
        return await repository.extend(
            conn,
            delivery_id,
            claim.number - 1,
            claim.held,
            now + dt.timedelta(seconds=_lease_s(settings)),
            now,
        )


async def begin(
    sql: statements.Statements, settings: ControlSettings, delivery_id: uuid.UUID
) -> Claim | AttemptOutcome:
    """Claim the delivery (or say why not: skipped, or failed without a request)."""
    row = await sql.claim((delivery_id, _lease_s(settings)))
    if row is None:
        return AttemptOutcome(delivery_id, "skipped", error="delivery not found")
    if isinstance(row, str):
        why = f"already {row}" if row in TERMINAL else "not due"
        return AttemptOutcome(delivery_id, "skipped", error=why)
    now = _now()
    target = _target(settings, row, now)
    if isinstance(target, str):
        async with repository.connection(sql.db) as conn:
            await repository.fail(conn, delivery_id, row.attempts, target, now)
        return AttemptOutcome(delivery_id, "failed", error=target)
    return dataclasses.replace(
        target,
        number=row.attempts + 1,
        body=row.body,
        target_id=row.target_id,
        held=row.lease_until,
        claimed=time.monotonic(),
    )


def _target(settings: ControlSettings, row: repository.Claimed, now: dt.datetime) -> Claim | str:
    """Where and how to send (number and body are filled in by the caller), or why not."""
    if row.endpoint_id is not None:
        endpoint = row.endpoint
        if endpoint is None or not endpoint.enabled:
            return "endpoint deleted" if endpoint is None else "endpoint disabled"
        try:
            secrets = signing_secrets(settings, endpoint, now)
        except InvalidToken:
            return "endpoint secret cannot be decrypted (the secret key changed): rotate it"
        return Claim(number=0, url=endpoint.url, body=b"", reason=row.reason, secrets=secrets)
    destination = row.destination
    if destination is None or not destination.enabled:
        return "destination deleted" if destination is None else "destination disabled"
    try:
        request = outbound.prepare(settings, destination, now)
    except InvalidToken:
        return "destination secrets cannot be decrypted (the secret key changed): set them again"
    hook = destination.id if destination.kind in presets.HOOK_KINDS else None
    return Claim(
        number=0,
        url=request.url,
        body=b"",
        reason=row.reason,
        secrets=request.signing,
        headers=request.headers,
        hidden=request.hidden,
        hook_id=hook,
    )


def classify(status_code: int | None) -> str:
    """What an answer means (seed 002): "succeeded" on 2xx; "retry" on no answer at all
    (network error, timeout: None), 408, 409, 425, 429 and 5xx; "failed" on any other."""
    if status_code is None or status_code in RETRYABLE or 500 <= status_code <= 599:
        return "retry"
    return "succeeded" if 200 <= status_code <= 299 else "failed"


def _excerpt(body: bytes) -> str:
    return body.decode("utf-8", "replace")[:EXCERPT_CHARS].replace("\x00", "\ufffd")


@dataclass(frozen=True)
class _Sent:
    status_code: int | None
    excerpt: str | None
    error: str | None
    refused: bool
    latency_ms: int


async def _send(http: aiohttp.ClientSession, settings: ControlSettings, claim: Claim) -> _Sent:
    timestamp = int(time.time())
    headers = {
        **claim.headers,
        "content-type": "application/json",
        "user-agent": guard.USER_AGENT,
    }
    if claim.secrets:
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[SIGNATURE_HEADER] = signature_header(list(claim.secrets), timestamp, claim.body)
    if claim.reason in ("test", "replay"):
        headers[REASON_HEADER] = claim.reason
    status_code: int | None = None
    excerpt: str | None = None
    error: str | None = None
    refused = False
    started = time.perf_counter()
    try:
        response = await guard.post(http, settings, claim.url, claim.body, headers)
        status_code = response.status_code
        excerpt = _excerpt(response.body)
    except guard.Refused as exc:
        refused = True
        error = f"destination refused: {exc}"
    except guard.Timeout as exc:
        error = f"timeout: {exc}"[:EXCERPT_CHARS]
    except guard.SendError as exc:
        error = f"network error: {exc}"[:EXCERPT_CHARS]
    latency_ms = round((time.perf_counter() - started) * 1000)
    return _Sent(status_code, excerpt, error, refused, latency_ms)


async def _record(
    sql: statements.Statements,
    settings: ControlSettings,
    delivery_id: uuid.UUID,
    claim: Claim,
    sent: _Sent,
) -> AttemptOutcome:
    now = _now()
    delays = schedule(settings)
    next_at: dt.datetime | None = None
    status_code, error = sent.status_code, sent.error
    # A refusal is policy, not a transient fault: retrying cannot help.
    status = "failed" if sent.refused else classify(status_code)
    if status == "retry":
        if claim.number <= len(delays):
            status = "retrying"
            next_at = now + dt.timedelta(seconds=delays[claim.number - 1])
        else:
            status = "dead"
    if status_code is not None and status not in ("succeeded",) and error is None:
        error = f"HTTP {status_code}"
    error = outbound.scrub(error, claim.hidden)
    recorded = await sql.record(
        {
            "id": delivery_id,
            "attempt_id": new_id(),
            "number": claim.number,
            "status": status,
            "next_at": next_at,
            "status_code": status_code,
            "error": error,
            "now": now,
            "latency_ms": sent.latency_ms,
            "excerpt": outbound.scrub(sent.excerpt, claim.hidden),
            # REST hooks: the platform answers 410 Gone once the subscription is gone there.
            "gone": claim.hook_id if status_code == 410 else None,
        }
    )
    if not recorded:
        # Deleted meanwhile, or another attempt was recorded first (a lease outlived).
        return AttemptOutcome(delivery_id, "skipped", error="attempt superseded")
    return AttemptOutcome(delivery_id, status, claim.number, status_code, error, next_at)


OVERDUE_S = 30.0
RECONCILE_BATCH = 1000


async def reconcile(
    sessions: async_sessionmaker[AsyncSession],
    enqueue: Callable[[list[uuid.UUID]], None] | None = None,
    overdue_s: float = OVERDUE_S,
) -> list[uuid.UUID]:
    """Re-enqueue deliveries overdue by more than `overdue_s` (a lost broker message, or a
    dead worker's expired claim, only delays) -- except those merely waiting in the queue.

    A delivery never claimed whose message is still queued behind a backlog looks overdue
    too; re-sending it would only cost a claim. The queue is roughly first in, first out,
    so the newest delivery being attempted now (claimed, lease not run out) marks how far
    the workers have got: a never-claimed delivery created after that mark, less
    `overdue_s` of slack for prefetch and per-endpoint waits, is still ahead of them and is
    left alone. One created before the mark was passed over: its message was lost. With
    nothing being attempted (idle or dead workers, a flushed broker) there is no mark and
    everything overdue is re-sent, as are expired claims and overdue retries.

    Their `next_attempt_at` is moved to now, so each is re-sent at most every `overdue_s`; a
    duplicate message is harmless (see `attempt`). The enqueue happens after the commit.
    """
    frontier = (
        select(func.max(Delivery.created_at))
        .where(Delivery.status == "pending")
        .where(Delivery.next_attempt_at > func.now())  # claimed: fan-out makes them due now
        .scalar_subquery()
    )
    slack = dt.timedelta(seconds=overdue_s)
    queued = and_(
        Delivery.attempts == 0,
        Delivery.updated_at == Delivery.created_at,  # never claimed (a claim sets it)
        Delivery.created_at > frontier - slack,
    )
    due = (
        select(Delivery.id)
        .where(Delivery.status.in_(("pending", "retrying")))
        .where(Delivery.next_attempt_at < func.now() - slack)
        .where(not_(func.coalesce(queued, false())))
        .order_by(Delivery.next_attempt_at)
        .limit(RECONCILE_BATCH)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    async with sessions.begin() as session:
        ids = list(
            (
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(due))
                    .values(next_attempt_at=func.now())
                    .returning(Delivery.id)
                )
            ).scalars()
        )
    if ids:
        if enqueue is None:
            from control.delivery import actors

            enqueue = actors.enqueue
        await asyncio.to_thread(enqueue, ids)
    return ids
