"""All SQL for installation tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control.db import new_id
from control.destinations.models import Destination, InstallationToken
from control.workspaces.models import Workspace


async def insert_token(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    platform: str,
    name: str,
    prefix: str,
    token_hash: bytes,
    scopes: list[str],
) -> InstallationToken:
    result = await session.execute(
        insert(InstallationToken)
        .values(
            id=new_id(),
            workspace_id=workspace_id,
            platform=platform,
            name=name,
            prefix=prefix,
            token_hash=token_hash,
            scopes=scopes,
        )
        .returning(InstallationToken)
    )
    return result.scalar_one()


@dataclass(frozen=True)
class Active:
    token_id: uuid.UUID
    workspace_id: uuid.UUID
    organization_id: uuid.UUID
    platform: str
    scopes: tuple[str, ...]


async def find_active(session: AsyncSession, token_hash: bytes) -> Active | None:
    row = (
        await session.execute(
            select(
                InstallationToken.id,
                InstallationToken.workspace_id,
                Workspace.organization_id,
                InstallationToken.platform,
                InstallationToken.scopes,
            )
            .join(Workspace, Workspace.id == InstallationToken.workspace_id)
            .where(
                InstallationToken.token_hash == token_hash,
                InstallationToken.revoked_at.is_(None),
            )
        )
    ).one_or_none()
    return None if row is None else Active(row[0], row[1], row[2], row[3], tuple(row[4]))


async def touch(session: AsyncSession, token_id: uuid.UUID) -> None:
    # At most one write a minute per token: last use is for humans, not an audit log.
    await session.execute(
        update(InstallationToken)
        .where(
            InstallationToken.id == token_id,
            or_(
                InstallationToken.last_used_at.is_(None),
                InstallationToken.last_used_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 1),
            ),
        )
        .values(last_used_at=func.now())
    )


async def page(
    session: AsyncSession, workspace_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> list[InstallationToken]:
    """Newest first, revoked tokens included."""
    query = select(InstallationToken).where(InstallationToken.workspace_id == workspace_id)
    if before is not None:
        query = query.where(InstallationToken.id < before)
    result = await session.execute(query.order_by(InstallationToken.id.desc()).limit(limit))
    return list(result.scalars())


async def get(
    session: AsyncSession, workspace_id: uuid.UUID, token_id: uuid.UUID
) -> InstallationToken | None:
    result = await session.execute(
        select(InstallationToken).where(
            InstallationToken.id == token_id, InstallationToken.workspace_id == workspace_id
        )
    )
    return result.scalar_one_or_none()


async def revoke(session: AsyncSession, workspace_id: uuid.UUID, token_id: uuid.UUID) -> bool:
    """False when the workspace has no such token; revoking twice keeps the first time."""
    result = await session.execute(
        update(InstallationToken)
        .where(InstallationToken.id == token_id, InstallationToken.workspace_id == workspace_id)
        .values(revoked_at=func.coalesce(InstallationToken.revoked_at, func.now()))
        .returning(InstallationToken.id)
    )
    return result.first() is not None


async def hook_count(session: AsyncSession, token_id: uuid.UUID) -> int:
    """How many hooks the token has, with the token locked until the transaction ends so
    concurrent subscribes count one after the other."""
    await session.execute(
        select(InstallationToken.id)
        .where(InstallationToken.id == token_id)
        .with_for_update(key_share=True)
    )
    result = await session.execute(
        select(func.count()).where(Destination.installation_id == token_id)
    )
    return int(result.scalar_one())
