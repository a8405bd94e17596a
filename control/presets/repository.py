"""All SQL for UTM presets."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from psycopg.errors import UniqueViolation
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control.presets.models import UtmPreset

UTM_FIELDS = ("source", "medium", "campaign", "term", "content")


class NameTaken(Exception):
    """Another preset of the workspace already has the name."""


async def insert_if_free(
    session: AsyncSession, workspace_id: uuid.UUID, name: str, utm: Mapping[str, str | None]
) -> UtmPreset | None:
    """The new preset, or None when the name is taken (no error, no savepoint)."""
    result = await session.execute(
        insert(UtmPreset)
        .values(workspace_id=workspace_id, name=name, **utm)
        .on_conflict_do_nothing(index_elements=[UtmPreset.workspace_id, UtmPreset.name])
        .returning(UtmPreset)
    )
    return result.scalar_one_or_none()


async def get(
    session: AsyncSession, workspace_id: uuid.UUID, preset_id: uuid.UUID
) -> UtmPreset | None:
    result = await session.execute(
        select(UtmPreset).where(UtmPreset.id == preset_id, UtmPreset.workspace_id == workspace_id)
    )
    return result.scalar_one_or_none()


async def page(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
    name_contains: str | None,
) -> list[UtmPreset]:
    """Oldest first: ids are UUIDv7, so id order is creation order and a stable cursor."""
    stmt = (
        select(UtmPreset)
        .where(UtmPreset.workspace_id == workspace_id)
        .order_by(UtmPreset.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(UtmPreset.id > after)
    if name_contains:
        stmt = stmt.where(UtmPreset.name.icontains(name_contains, autoescape=True))
    return list((await session.execute(stmt)).scalars())


async def utm_for_update(
    session: AsyncSession, workspace_id: uuid.UUID, preset_id: uuid.UUID
) -> dict[str, str | None] | None:
    """The preset's UTM values, locked until the transaction ends (None: no such preset)."""
    result = await session.execute(
        select(*(getattr(UtmPreset, f) for f in UTM_FIELDS))
        .where(UtmPreset.id == preset_id, UtmPreset.workspace_id == workspace_id)
        .with_for_update()
    )
    row = result.one_or_none()
    return None if row is None else dict(zip(UTM_FIELDS, row, strict=True))


async def update_fields(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    preset_id: uuid.UUID,
    values: Mapping[str, object],
) -> UtmPreset | None:
    """The updated preset, None when there is none; raises NameTaken on a rename clash."""
    stmt = (
        update(UtmPreset)
        .where(UtmPreset.id == preset_id, UtmPreset.workspace_id == workspace_id)
        .values(**values, updated_at=func.now())
        .returning(UtmPreset)
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


async def delete_one(session: AsyncSession, workspace_id: uuid.UUID, preset_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(UtmPreset)
        .where(UtmPreset.id == preset_id, UtmPreset.workspace_id == workspace_id)
        .returning(UtmPreset.id)
    )
    return result.scalar_one_or_none() is not None


async def by_name(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> UtmPreset | None:
    result = await session.execute(
        select(UtmPreset).where(UtmPreset.name == name, UtmPreset.workspace_id == workspace_id)
    )
    return result.scalar_one_or_none()


async def by_ids(session: AsyncSession, ids: list[uuid.UUID]) -> list[UtmPreset]:
    return list((await session.execute(select(UtmPreset).where(UtmPreset.id.in_(ids)))).scalars())
