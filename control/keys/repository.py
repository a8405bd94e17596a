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
