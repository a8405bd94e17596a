"""All SQL for destinations and the API's view of their deliveries."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Mapping

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from control.db import new_id
from control.destinations.models import Destination


async def insert_destination(session: AsyncSession, values: Mapping[str, object]) -> Destination:
    result = await session.execute(
        insert(Destination).values(id=new_id(), **values).returning(Destination)
    )
    return result.scalar_one()


async def get(
    session: AsyncSession, workspace_id: uuid.UUID, destination_id: uuid.UUID
) -> Destination | None:
    result = await session.execute(
        select(Destination).where(
            Destination.id == destination_id, Destination.workspace_id == workspace_id
        )
    )
    return result.scalar_one_or_none()


async def page(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
    kind: str | None = None,
    installation_id: uuid.UUID | None = None,
) -> list[Destination]:
    """Oldest first (UUIDv7 ids: creation order, a stable cursor)."""
    stmt = (
        select(Destination)
        .where(Destination.workspace_id == workspace_id)
        .order_by(Destination.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(Destination.id > after)
    if kind is not None:
        stmt = stmt.where(Destination.kind == kind)
    if installation_id is not None:
        stmt = stmt.where(Destination.installation_id == installation_id)
    return list((await session.execute(stmt)).scalars().all())


async def update_destination(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    destination_id: uuid.UUID,
    values: Mapping[str, object],
) -> Destination | None:
    result = await session.execute(
        update(Destination)
        .where(Destination.id == destination_id, Destination.workspace_id == workspace_id)
        .values(**values, updated_at=func.now())
        .returning(Destination)
        # The caller may hold the row already: refresh it with what was written.
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalar_one_or_none()


async def rotate_secret(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    destination_id: uuid.UUID,
    new_secret_encrypted: str,
    previous_expires_at: dt.datetime | None,
) -> Destination | None:
    """The current secret becomes the previous one (SET sees the row's old values)."""
    result = await session.execute(
        update(Destination)
        .where(
            Destination.id == destination_id,
            Destination.workspace_id == workspace_id,
            Destination.secret_encrypted.is_not(None),
        )
        .values(
            previous_secret_encrypted=(
                Destination.secret_encrypted if previous_expires_at is not None else None
            ),
            previous_secret_expires_at=previous_expires_at,
            secret_encrypted=new_secret_encrypted,
            updated_at=func.now(),
        )
        .returning(Destination)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalar_one_or_none()


async def delete_destination(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    destination_id: uuid.UUID,
    installation_id: uuid.UUID | None = None,
) -> bool:
    stmt = delete(Destination).where(
        Destination.id == destination_id, Destination.workspace_id == workspace_id
    )
    if installation_id is not None:
        stmt = stmt.where(Destination.installation_id == installation_id)
    result = await session.execute(stmt.returning(Destination.id))
    return result.scalar_one_or_none() is not None


async def disable(session: AsyncSession, destination_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(Destination)
        .where(Destination.id == destination_id, Destination.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, updated_at=func.now())
    )


async def disable_installation(
    session: AsyncSession, installation_id: uuid.UUID, reason: str
) -> int:
    result = await session.execute(
        update(Destination)
        .where(Destination.installation_id == installation_id, Destination.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, updated_at=func.now())
        .returning(Destination.id)
    )
    return len(result.all())


async def enabled_in(
    session: AsyncSession, workspace_ids: Collection[uuid.UUID]
) -> list[Destination]:
    """The enabled destinations of these workspaces (fan-out)."""
    result = await session.execute(
        select(Destination)
        .where(Destination.workspace_id.in_(list(workspace_ids)))
        .where(Destination.enabled.is_(True))
    )
    return list(result.scalars().all())


async def subscribed_workspaces(
    conn: AsyncConnection, workspace_ids: Collection[uuid.UUID], event_types: Collection[str]
) -> set[uuid.UUID]:
    """Those of these workspaces with an enabled destination of any of these types."""
    if not workspace_ids or not event_types:
        return set()
    rows = await conn.execute(
        select(Destination.workspace_id)
        .distinct()
        .where(Destination.workspace_id.in_(list(workspace_ids)))
        .where(Destination.enabled.is_(True))
        .where(postgresql.array(list(event_types)).overlap(Destination.event_types))
    )
    return set(rows.scalars())


# -- deliveries ------------------------------------------------------------------------
