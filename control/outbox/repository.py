"""All SQL for the transactional outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from control.db import table
from control.outbox.models import OutboxMessage, ProjectionWatermark

NOTIFY_CHANNEL = "ricochet_outbox"


async def add(session: AsyncSession, topic: str, payload: dict[str, Any]) -> None:
    """Queue a message in the caller's transaction; it exists only if that transaction commits."""
    await session.execute(insert(OutboxMessage).values(topic=topic, payload=payload))


async def add_many(
    session: AsyncSession | AsyncConnection, topic: str, payloads: list[dict[str, Any]]
) -> None:
    if payloads:
        await session.execute(
            # Core table + RETURNING: SQLAlchemy batches rows into multi-row INSERTs
            # (insertmanyvalues) without the ORM's per-object bookkeeping.
            insert(table(OutboxMessage)).returning(OutboxMessage.id),
            [{"topic": topic, "payload": p} for p in payloads],
        )


async def next_batch(conn: AsyncConnection, limit: int) -> list[tuple[int, str, dict[str, Any]]]:
    rows = await conn.execute(
        select(OutboxMessage.id, OutboxMessage.topic, OutboxMessage.payload)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def remove(conn: AsyncConnection, ids: list[int]) -> None:
    await conn.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))


async def projection_seq(conn: AsyncConnection) -> int:
    """The relay's projection watermark (0 before the first batch)."""
    seq = await conn.scalar(select(ProjectionWatermark.seq).where(ProjectionWatermark.id == 1))
    return int(seq or 0)


async def set_projection_seq(conn: AsyncConnection, seq: int) -> None:
    """Raise the watermark to `seq` (never lowers it: a slower, older leader cannot undo it)."""
    stmt = pg_insert(ProjectionWatermark).values(id=1, seq=seq)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[ProjectionWatermark.id],
            set_={"seq": stmt.excluded.seq},
            where=ProjectionWatermark.seq < stmt.excluded.seq,
        )
    )


async def wake_relay(conn: AsyncConnection) -> None:
    """Wake the relay's leader as a commit would (it LISTENs on the outbox channel)."""
    await conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))
