"""All SQL for stored idempotent responses."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from control.idempotency.models import IdempotentResponse

KEEP = dt.timedelta(hours=24)


async def find(
    session: AsyncSession, workspace_id: uuid.UUID, key: str
) -> IdempotentResponse | None:
    result = await session.execute(
        select(IdempotentResponse).where(
            IdempotentResponse.workspace_id == workspace_id,
            IdempotentResponse.key == key,
            IdempotentResponse.created_at > func.now() - KEEP,
        )
    )
    return result.scalar_one_or_none()


async def save(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    key: str,
    fingerprint: bytes,
    status: int,
    body: bytes,
    location: str | None,
) -> bool:
    """Store the response; False when another request with this key got there first."""
    stmt = insert(IdempotentResponse).values(
        workspace_id=workspace_id,
        key=key,
        fingerprint=fingerprint,
        status=status,
        body=body,
        location=location,
    )
    # An expired entry may be replaced; a live one may not.
    upsert = stmt.on_conflict_do_update(
        index_elements=[IdempotentResponse.workspace_id, IdempotentResponse.key],
        set_={
            "fingerprint": stmt.excluded.fingerprint,
            "status": stmt.excluded.status,
            "body": stmt.excluded.body,
            "location": stmt.excluded.location,
            "created_at": func.now(),
        },
        where=IdempotentResponse.created_at <= func.now() - KEEP,
    ).returning(IdempotentResponse.key)
    return (await session.execute(upsert)).first() is not None


async def purge_expired(conn: AsyncConnection) -> int:
    result = await conn.execute(
        delete(IdempotentResponse).where(IdempotentResponse.created_at <= func.now() - KEEP)
    )
    return result.rowcount or 0
