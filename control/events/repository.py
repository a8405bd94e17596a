"""All SQL for stored events."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from control.db import table
from control.events.models import Event


async def add_many(
    session: AsyncSession | AsyncConnection,
    rows: list[tuple[uuid.UUID, uuid.UUID, str, dt.datetime, dict[str, Any]]],
) -> None:
    if rows:
        await session.execute(
            insert(table(Event)).returning(Event.id),  # batched: see outbox.add_many
            [
                {"id": i, "workspace_id": w, "type": t, "created_at": c, "envelope": e}
                for i, w, t, c, e in rows
            ],
        )


async def page(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    types: list[str],
    before: uuid.UUID | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first; `before` is the last id of the previous page."""
    query = select(Event.envelope).where(Event.workspace_id == workspace_id)
    if types:
        query = query.where(Event.type.in_(types))
    if before is not None:
        query = query.where(Event.id < before)
    rows = await session.execute(query.order_by(Event.id.desc()).limit(limit))
    return [r[0] for r in rows]


async def get(
    session: AsyncSession, workspace_id: uuid.UUID, event_id: uuid.UUID
) -> dict[str, Any] | None:
    row = await session.execute(
        select(Event.envelope).where(Event.id == event_id, Event.workspace_id == workspace_id)
    )
    return row.scalar_one_or_none()


PURGE_CHUNK = 10_000  # rows per DELETE: short transactions, no long lock on a busy table


async def purge_before(conn: AsyncConnection, cutoff: dt.datetime) -> int:
    """Delete one chunk of events older than `cutoff`; returns how many (loop until < chunk).
    Event ids are UUIDv7, ordered by time: the primary key finds them without a scan."""
    floor = uuid.UUID(int=int(cutoff.timestamp() * 1000) << 80)
    oldest = select(Event.id).where(Event.id < floor).limit(PURGE_CHUNK).scalar_subquery()
    result = await conn.execute(delete(Event).where(Event.id.in_(oldest)))
    return result.rowcount or 0
