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


TARGET = "SELECT coalesce(endpoint_id, destination_id) FROM deliveries WHERE id = %s"

# Due: not finished, and next_attempt_at reached (a message may come EARLY_S before it).
# The lease moves next_attempt_at past the attempt's deadline, so a duplicate message
# finds the delivery not due; PostgreSQL re-evaluates the WHERE on the row a concurrent
# claim just updated, so of two racing claims exactly one wins.
CLAIM = """
WITH claimed AS (
    UPDATE deliveries SET next_attempt_at = %(lease_until)s, updated_at = %(now)s
    WHERE id = %(id)s AND status IN ('pending', 'retrying')
      AND (next_attempt_at IS NULL OR next_attempt_at <= %(due_by)s)
    RETURNING attempts, body, reason, endpoint_id, destination_id
)
SELECT c.attempts, c.body, c.reason, c.endpoint_id, c.destination_id,
       e.url, e.enabled, e.secret_encrypted, e.previous_secret_encrypted,
       e.previous_secret_expires_at,
       d.kind, d.url, d.enabled, d.config, d.secrets_encrypted, d.secret_encrypted,
       d.previous_secret_encrypted, d.previous_secret_expires_at
FROM claimed c
LEFT JOIN webhook_endpoints e ON e.id = c.endpoint_id
LEFT JOIN destinations d ON d.id = c.destination_id
"""

WHY_NOT = "SELECT status, next_attempt_at FROM deliveries WHERE id = %s"

FAIL = """
UPDATE deliveries SET status = 'failed', last_error = %(error)s, next_attempt_at = NULL,
    updated_at = %(now)s
WHERE id = %(id)s AND attempts = %(attempts)s AND status IN ('pending', 'retrying')
"""

# The attempt row and the delivery's state together, only if no other attempt was recorded
# since the claim; a REST hook answered 410 Gone is disabled in the same statement.
RECORD = """
WITH d AS (
    UPDATE deliveries SET attempts = %(number)s, status = %(status)s,
        next_attempt_at = %(next_at)s, last_status_code = %(status_code)s::smallint,
        last_error = %(error)s::text, updated_at = %(now)s
    WHERE id = %(id)s AND attempts = %(number)s - 1
    RETURNING id
), a AS (
    INSERT INTO delivery_attempts
        (id, delivery_id, number, attempted_at, status_code, latency_ms, response_excerpt, error)
    SELECT %(attempt_id)s, d.id, %(number)s, %(now)s, %(status_code)s::smallint,
        %(latency_ms)s::integer, %(excerpt)s::text, %(error)s::text
    FROM d
    RETURNING delivery_id
), gone AS (
    UPDATE destinations SET enabled = false, disabled_reason = 'the target answered 410 Gone',
        updated_at = now()
    WHERE id = %(gone)s::uuid AND enabled AND EXISTS (SELECT 1 FROM d)
)
SELECT count(*) FROM a
"""


@dataclass(frozen=True)
class Claimed:
    attempts: int
    body: bytes
    reason: str
    endpoint_id: uuid.UUID | None
    destination_id: uuid.UUID | None
    endpoint: WebhookEndpoint | None  # transient: only the columns the request needs
    destination: Destination | None


async def target(conn: Conn, delivery_id: uuid.UUID) -> uuid.UUID | None:
    row = await (await conn.execute(TARGET, (delivery_id,))).fetchone()
    return None if row is None else cast(uuid.UUID | None, row[0])


async def claim(
    conn: Conn,
    delivery_id: uuid.UUID,
    now: dt.datetime,
    due_by: dt.datetime,
    lease_until: dt.datetime,
) -> Claimed | None:
    params = {"id": delivery_id, "now": now, "due_by": due_by, "lease_until": lease_until}
    row = await (await conn.execute(CLAIM, params)).fetchone()
    if row is None:
        return None
    (attempts, body, reason, endpoint_id, destination_id, *e, kind, d_url, d_enabled) = row[:13]
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
        config, sealed, secret, previous, expires = row[13:]
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
        attempts, bytes(body), reason, endpoint_id, destination_id, endpoint, destination
    )


async def why_not(conn: Conn, delivery_id: uuid.UUID) -> tuple[str, dt.datetime | None] | None:
    """A claim that matched nothing: the delivery's status and next attempt, if it exists."""
    row = await (await conn.execute(WHY_NOT, (delivery_id,))).fetchone()
    return None if row is None else (row[0], row[1])


async def fail(
    conn: Conn, delivery_id: uuid.UUID, attempts: int, error: str, now: dt.datetime
) -> None:
    await conn.execute(FAIL, {"id": delivery_id, "attempts": attempts, "error": error, "now": now})


async def record(conn: Conn, **values: Any) -> bool:
    """Record an attempt (see RECORD for the keys); False if another was recorded first."""
    row = await (await conn.execute(RECORD, values)).fetchone()
    return bool(row and row[0])
