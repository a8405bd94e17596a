"""Creating deliveries in bulk: one `INSERT ... SELECT FROM unnest(...)` per chunk.

Fan-out and recoveries create thousands of deliveries at a time. A multi-row VALUES list
costs one bind parameter per cell, which SQLAlchemy builds and psycopg converts afresh for
every chunk (a recovery of 5,000 spent most of its 9 s there); here each column is one
array parameter and the statement text never changes.

A row is a dict with `id, workspace_id, event_id, event_type, reason, body, status`,
`endpoint_id` or `destination_id`, and optionally `last_error`; it is due now (its
`next_attempt_at` is the database's clock, the reconciler's) when `due` is true.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from control.db import new_id

CHUNK = 5000

_INSERT = """
INSERT INTO deliveries (id, workspace_id, endpoint_id, destination_id, event_id, event_type,
    reason, body, status, last_error, attempts, next_attempt_at)
SELECT v.id, v.workspace_id, v.endpoint_id, v.destination_id, v.event_id, v.event_type,
    v.reason, v.body, v.status, v.last_error, 0, CASE WHEN v.due THEN now() END
FROM unnest(
    CAST(:id AS uuid[]), CAST(:workspace_id AS uuid[]), CAST(:endpoint_id AS uuid[]),
    CAST(:destination_id AS uuid[]), CAST(:event_id AS uuid[]), CAST(:event_type AS text[]),
    CAST(:reason AS text[]), CAST(:body AS bytea[]), CAST(:status AS text[]),
    CAST(:last_error AS text[]), CAST(:due AS boolean[])
) AS v(id, workspace_id, endpoint_id, destination_id, event_id, event_type, reason, body,
       status, last_error, due)
{conflict}
RETURNING id, status
"""
# At most one delivery per event and target for an event's own deliveries (the partial
# unique indexes of Delivery): a relay pass repeated after a crash creates none twice.
_ON_CONFLICT = "ON CONFLICT (event_id, {target}) WHERE reason = 'event' DO NOTHING"
_STATEMENTS = {
    target: text(_INSERT.format(conflict=_ON_CONFLICT.format(target=target) if target else ""))
    for target in ("endpoint_id", "destination_id", "")
}
_KEYS = (
    "id",
    "workspace_id",
    "endpoint_id",
    "destination_id",
    "event_id",
    "event_type",
    "reason",
    "body",
    "status",
    "last_error",
    "due",
)


async def insert(
    session: AsyncSession, rows: Sequence[dict[str, Any]], skip_existing: str | None = None
) -> list[tuple[uuid.UUID, str]]:
    """Insert the rows; with `skip_existing` ("endpoint_id" or "destination_id"), an event
    that has its delivery to that target already is skipped. Answers (id, status) of the
    rows made."""
    statement = _STATEMENTS[skip_existing or ""]
    made: list[tuple[uuid.UUID, str]] = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        params = {key: [row.get(key) for row in chunk] for key in _KEYS}
        result = await session.execute(statement, params)
        made.extend((row[0], row[1]) for row in result)
    return made


async def insert_pending(session: AsyncSession, **row: Any) -> uuid.UUID:
    """One delivery, pending and due now (a test-send); `row` as above, without `id` and
    `status`."""
    pending = {**row, "id": new_id(), "status": "pending", "due": True}
    ((delivery_id, _),) = await insert(session, [pending])
    return delivery_id
