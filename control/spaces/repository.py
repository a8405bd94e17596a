"""All SQL for spaces."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from psycopg.errors import UniqueViolation
from sqlalchemy import ScalarSelect, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control.links.models import Link
from control.spaces.models import Space


class NameTaken(Exception):
    """Another space of the workspace already has the name."""


def _link_count() -> ScalarSelect[int]:
    return (
        select(func.count())
        .select_from(Link)
        .where(
            Link.space_id == Space.id,
            Link.workspace_id == Space.workspace_id,
            Link.deleted_at.is_(None),
        )
        .correlate(Space)
        .scalar_subquery()
    )


async def insert_if_free(
    session: AsyncSession, workspace_id: uuid.UUID, name: str, description: str | None
) -> Space | None:
    """The new space, or None when the name is taken (no error, no savepoint)."""
    result = await session.execute(
        insert(Space)
        .values(workspace_id=workspace_id, name=name, description=description)
        .on_conflict_do_nothing(index_elements=[Space.workspace_id, Space.name])
        .returning(Space)
    )
    return result.scalar_one_or_none()


async def get(
    session: AsyncSession, workspace_id: uuid.UUID, space_id: uuid.UUID
) -> tuple[Space, int] | None:
    result = await session.execute(
        select(Space, _link_count()).where(Space.id == space_id, Space.workspace_id == workspace_id)
    )
    row = result.one_or_none()
    return None if row is None else (row[0], row[1])


async def page(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
    name_contains: str | None,
) -> list[tuple[Space, int]]:
    """Oldest first: ids are UUIDv7, so id order is creation order and a stable cursor."""
    stmt = (
        select(Space, _link_count())
        .where(Space.workspace_id == workspace_id)
        .order_by(Space.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(Space.id > after)
    if name_contains:
        stmt = stmt.where(Space.name.icontains(name_contains, autoescape=True))
    result = await session.execute(stmt)
    return [(space, count) for space, count in result.all()]


async def update_fields(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    space_id: uuid.UUID,
    values: Mapping[str, object],
) -> Space | None:
    """The updated space, None when there is none; raises NameTaken on a rename clash."""
    stmt = (
        update(Space)
        .where(Space.id == space_id, Space.workspace_id == workspace_id)
        .values(**values)
        .returning(Space)
        .execution_options(synchronize_session=False)
    )
    try:
        # A unique violation would abort the whole transaction; the savepoint contains it.
        async with session.begin_nested():
            return (await session.execute(stmt)).scalar_one_or_none()
    except IntegrityError as exc:
        if isinstance(exc.orig, UniqueViolation):
            raise NameTaken from None
        raise


async def delete_one(session: AsyncSession, workspace_id: uuid.UUID, space_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(Space)
        .where(Space.id == space_id, Space.workspace_id == workspace_id)
        .returning(Space.id)
    )
    return result.scalar_one_or_none() is not None


async def by_id(
    session: AsyncSession, workspace_id: uuid.UUID, space_id: uuid.UUID
) -> Space | None:
    result = await session.execute(
        select(Space).where(Space.id == space_id, Space.workspace_id == workspace_id)
    )
    return result.scalar_one_or_none()


async def by_name(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> Space | None:
    result = await session.execute(
        select(Space).where(Space.name == name, Space.workspace_id == workspace_id)
    )
    return result.scalar_one_or_none()


async def names(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    result = await session.execute(select(Space.id, Space.name).where(Space.id.in_(ids)))
    return {space_id: name for space_id, name in result.all()}
