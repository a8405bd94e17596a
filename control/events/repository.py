"""All SQL for stored events."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import insert, select
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
