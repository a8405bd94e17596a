"""All SQL for API keys."""

from __future__ import annotations

import uuid

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control.keys.models import ApiKey
from control.workspaces.models import Workspace


async def insert(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    name: str,
    prefix: str,
    key_hash: bytes,
    scopes: list[str],
) -> ApiKey:
    key = ApiKey(
        workspace_id=workspace_id, name=name, prefix=prefix, key_hash=key_hash, scopes=scopes
    )
    session.add(key)
    await session.flush()
    return key


async def find_active(
    session: AsyncSession, key_hash: bytes
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, list[str]] | None:
    """(key id, workspace id, organization id, scopes) of an unrevoked key."""
    row = (
        await session.execute(
            select(ApiKey.id, ApiKey.workspace_id, Workspace.organization_id, ApiKey.scopes)
            .join(Workspace, Workspace.id == ApiKey.workspace_id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1], row[2], list(row[3]))


async def touch(session: AsyncSession, key_id: uuid.UUID) -> None:
    # At most one write a minute per key: last use is for humans, not an audit log.
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(
                ApiKey.last_used_at.is_(None),
                ApiKey.last_used_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 1),
            ),
        )
        .values(last_used_at=func.now())
    )


async def page(
    session: AsyncSession, workspace_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> list[ApiKey]:
    """Newest first, revoked keys included; `before` is the last id of the previous page."""
    query = select(ApiKey).where(ApiKey.workspace_id == workspace_id)
    if before is not None:
        query = query.where(ApiKey.id < before)
    result = await session.execute(query.order_by(ApiKey.id.desc()).limit(limit))
    return list(result.scalars())


async def get(session: AsyncSession, workspace_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    result = await session.execute(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.workspace_id == workspace_id)
    )
    return result.scalar_one_or_none()


async def revoke(session: AsyncSession, workspace_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    """False when the workspace has no such key; revoking twice keeps the first time."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.workspace_id == workspace_id)
        .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
        .returning(ApiKey.id)
    )
    return result.first() is not None
