"""The delivery engine's SQL: one statement per step of an attempt, on the driver connection.

An attempt is the hot path of webhook delivery, so each step is a single autocommitted
statement sent straight through psycopg (prepared by the server after a few uses): a look
at the target (for the per-endpoint cap), the claim (a conditional UPDATE that returns
everything the request needs), and the record (the attempt row and the delivery's new state
in one statement, applied only if the attempt count is still the one claimed). The ORM's
per-object work, BEGIN/COMMIT round trips and a connection check-out per step cost several
times the request itself; correctness rests on the WHERE clauses, which PostgreSQL
re-checks on the locked row when two attempts race.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from control.destinations.models import Destination
from control.webhooks.models import WebhookEndpoint

Conn = psycopg.AsyncConnection[tuple[Any, ...]]


def bind(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine behind a session factory (the engine's callers hand it sessions)."""
    return cast(AsyncEngine, sessions.kw["bind"])


@contextlib.asynccontextmanager
async def connection(db: AsyncEngine) -> AsyncIterator[Conn]:
    """A pooled connection in autocommit (reset when it goes back to the pool)."""
    async with db.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        raw = await conn.get_raw_connection()
        yield cast(Conn, raw.driver_connection)


# Due: not finished, and next_attempt_at reached (a message may come EARLY_S before it).
# The lease moves next_attempt_at past the attempt's deadline, so a duplicate message
# finds the delivery not due; PostgreSQL re-evaluates the WHERE on the row a concurrent
# claim just updated, so of two racing claims exactly one wins.
CLAIM = """
WITH claimed AS (
    UPDATE deliveries SET next_attempt_at = %(lease_until)s, updated_at = %(now)s
    WHERE id = ANY(%(ids)s::uuid[]) AND status IN ('pending', 'retrying')
      AND (next_attempt_at IS NULL OR next_attempt_at <= %(due_by)s)
    RETURNING id, attempts, body, reason, endpoint_id, destination_id, next_attempt_at
)
SELECT c.id, c.next_attempt_at, c.attempts, c.body, c.reason, c.endpoint_id, c.destination_id,
       e.url, e.enabled, e.secret_encrypted, e.previous_secret_encrypted,
       e.previous_secret_expires_at,
       d.kind, d.url, d.enabled, d.config, d.secrets_encrypted, d.secret_encrypted,
       d.previous_secret_encrypted, d.previous_secret_expires_at
FROM claimed c
LEFT JOIN webhook_endpoints e ON e.id = c.endpoint_id
LEFT JOIN destinations d ON d.id = c.destination_id
"""

STATES = "SELECT id, status FROM deliveries WHERE id = ANY(%s::uuid[])"

# A claim held while waiting for the endpoint's cap, renewed before sending: only if it is
# still this claim (the lease did not run out and another attempt take the delivery).
EXTEND = """
UPDATE deliveries SET next_attempt_at = %(lease_until)s, updated_at = %(now)s
WHERE id = %(id)s AND next_attempt_at = %(held)s AND attempts = %(attempts)s
  AND status IN ('pending', 'retrying')
RETURNING id
"""

FAIL = """
UPDATE deliveries SET status = 'failed', last_error = %(error)s, next_attempt_at = NULL,
    updated_at = %(now)s
WHERE id = %(id)s AND attempts = %(attempts)s AND status IN ('pending', 'retrying')
"""

# Each attempt row and its delivery's state together, only where no other attempt was
# recorded since the claim; a REST hook answered 410 Gone is disabled in the same statement.
# One row per delivery (the caller never puts a delivery twice in one statement).
RECORD = """
WITH v AS (
    SELECT * FROM unnest(
        %(id)s::uuid[], %(attempt_id)s::uuid[], %(number)s::smallint[], %(status)s::text[],
        %(next_at)s::timestamptz[], %(status_code)s::smallint[], %(error)s::text[],
        %(now)s::timestamptz[], %(latency_ms)s::integer[], %(excerpt)s::text[],
        %(gone)s::uuid[]
    ) AS v(id, attempt_id, number, status, next_at, status_code, error, at, latency_ms,
           excerpt, gone)
), d AS (
    UPDATE deliveries SET attempts = v.number, status = v.status,
        next_attempt_at = v.next_at, last_status_code = v.status_code,
        last_error = v.error, updated_at = v.at
    FROM v
    WHERE deliveries.id = v.id AND deliveries.attempts = v.number - 1
    RETURNING deliveries.id
), a AS (
    INSERT INTO delivery_attempts
        (id, delivery_id, number, attempted_at, status_code, latency_ms, response_excerpt, error)
    SELECT v.attempt_id, v.id, v.number, v.at, v.status_code, v.latency_ms, v.excerpt, v.error
    FROM v JOIN d ON d.id = v.id
    RETURNING delivery_id
), gone AS (
    UPDATE destinations SET enabled = false, disabled_reason = 'the target answered 410 Gone',
        updated_at = now()
    WHERE enabled AND id IN (SELECT v.gone FROM v JOIN d ON d.id = v.id)
)
SELECT delivery_id FROM a
"""
RECORD_KEYS = (
    "id", "attempt_id", "number", "status", "next_at", "status_code", "error", "now",
    "latency_ms", "excerpt", "gone",
)  # fmt: skip


@dataclass(frozen=True)
class Claimed:
    lease_until: dt.datetime
    attempts: int
    body: bytes
    reason: str
    endpoint_id: uuid.UUID | None
    destination_id: uuid.UUID | None
    endpoint: WebhookEndpoint | None  # transient: only the columns the request needs
    destination: Destination | None

    @property
    def target_id(self) -> uuid.UUID:
        target = self.endpoint_id or self.destination_id
        assert target is not None  # the one_target check constraint
        return target


# What a claim finds: the claimed delivery; or the status of one that is not due or done;
# or None, no such delivery.
ClaimResult = Claimed | str | None


async def claim(
    conn: Conn,
    ids: list[uuid.UUID],
    now: dt.datetime,
    due_by: dt.datetime,
    lease_until: dt.datetime,
) -> list[ClaimResult]:
    """Claim the deliveries that are due; for the others, their status (or None)."""
    params = {"ids": ids, "now": now, "due_by": due_by, "lease_until": lease_until}
    rows = await (await conn.execute(CLAIM, params)).fetchall()
    claimed = {row[0]: _claimed(row) for row in rows}
    missed = [i for i in ids if i not in claimed]
    states: dict[uuid.UUID, str] = {}
    if missed:
        states = dict(await (await conn.execute(STATES, (missed,))).fetchall())
    return [claimed[i] if i in claimed else states.get(i) for i in ids]


def _claimed(row: tuple[Any, ...]) -> Claimed:
    (attempts, body, reason, endpoint_id, destination_id, *e, kind, d_url, d_enabled) = row[2:15]
    endpoint = None
    if endpoint_id is not None and e[1] is not None:
        endpoint = WebhookEndpoint(
            id=endpoint_id,
            url=e[0],
            enabled=e[1],
            secret_encrypted=e[2],
            previous_secret_encrypted=e[3],
            previous_secret_expires_at=e[4],
        )
    destination = None
    if destination_id is not None and kind is not None:
        config, sealed, secret, previous, expires = row[15:]
        destination = Destination(
            id=destination_id,
            kind=kind,
            url=d_url,
            enabled=d_enabled,
            config=config,
            secrets_encrypted=sealed,
            secret_encrypted=secret,
            previous_secret_encrypted=previous,
            previous_secret_expires_at=expires,
        )
    return Claimed(
        row[1], attempts, bytes(body), reason, endpoint_id, destination_id, endpoint, destination
    )


async def extend(
    conn: Conn,
    delivery_id: uuid.UUID,
    attempts: int,
    held: dt.datetime,
    lease_until: dt.datetime,
    now: dt.datetime,
) -> bool:
    """Renew a claim (see EXTEND); False if it is no longer this one."""
    params = {
        "id": delivery_id,
        "attempts": attempts,
        "held": held,
        "lease_until": lease_until,
        "now": now,
    }
    return await (await conn.execute(EXTEND, params)).fetchone() is not None


async def fail(
    conn: Conn, delivery_id: uuid.UUID, attempts: int, error: str, now: dt.datetime
) -> None:
    await conn.execute(FAIL, {"id": delivery_id, "attempts": attempts, "error": error, "now": now})


async def record(conn: Conn, attempts: list[dict[str, Any]]) -> list[bool]:
    """Record attempts (each a dict of RECORD_KEYS, at most one per delivery); for each,
    False if another attempt of its delivery was recorded first."""
    params = {key: [a[key] for a in attempts] for key in RECORD_KEYS}
    rows = await (await conn.execute(RECORD, params)).fetchall()
    done = {row[0] for row in rows}
    return [a["id"] in done for a in attempts]
