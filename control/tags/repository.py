"""All SQL for tags."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from psycopg.errors import UniqueViolation
from sqlalchemy import ScalarSelect, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control.db import new_id
from control.links.models import Link, link_tags
from control.tags.models import Tag


class NameTaken(Exception):
    """Another tag of the workspace already has the name."""


def _link_count() -> ScalarSelect[int]:
    # Soft-deleted links keep their tag rows until purged; they are not counted.
    return (
        select(func.count())
        .select_from(link_tags.join(Link, Link.id == link_tags.c.link_id))
        .where(
            link_tags.c.tag_id == Tag.id,
            Link.workspace_id == Tag.workspace_id,
            Link.deleted_at.is_(None),
        )
        .correlate(Tag)
        .scalar_subquery()
    )


async def insert_if_free(
    session: AsyncSession, workspace_id: uuid.UUID, name: str, color: str | None
) -> Tag | None:
    """The new tag, or None when the name is taken (no error, no savepoint)."""
    result = await session.execute(
        insert(Tag)
        .values(workspace_id=workspace_id, name=name, color=color)
        .on_conflict_do_nothing(index_elements=[Tag.workspace_id, Tag.name])
        .returning(Tag)
    )
    return result.scalar_one_or_none()


async def get(
    session: AsyncSession, workspace_id: uuid.UUID, tag_id: uuid.UUID
) -> tuple[Tag, int] | None:
    result = await session.execute(
        select(Tag, _link_count()).where(Tag.id == tag_id, Tag.workspace_id == workspace_id)
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
) -> list[tuple[Tag, int]]:
    """Oldest first: ids are UUIDv7, so id order is creation order and a stable cursor."""
    stmt = (
        select(Tag, _link_count())
        .where(Tag.workspace_id == workspace_id)
        .order_by(Tag.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(Tag.id > after)
    if name_contains:
        stmt = stmt.where(Tag.name.icontains(name_contains, autoescape=True))
    result = await session.execute(stmt)
    return [(tag, count) for tag, count in result.all()]


async def update_fields(
    session: AsyncSession, workspace_id: uuid.UUID, tag_id: uuid.UUID, values: Mapping[str, object]
) -> Tag | None:
    """The updated tag, None when there is none; raises NameTaken on a rename clash."""
    stmt = (
        update(Tag)
        .where(Tag.id == tag_id, Tag.workspace_id == workspace_id)
        .values(**values)
        .returning(Tag)
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


async def delete_one(session: AsyncSession, workspace_id: uuid.UUID, tag_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(Tag).where(Tag.id == tag_id, Tag.workspace_id == workspace_id).returning(Tag.id)
    )
    return result.scalar_one_or_none() is not None


async def insert_missing(session: AsyncSession, workspace_id: uuid.UUID, names: list[str]) -> None:
    # Sorted so that concurrent callers take the unique-index locks in one order: no deadlock.
    await session.execute(
        insert(Tag)
        .values(
            [{"id": new_id(), "workspace_id": workspace_id, "name": n} for n in sorted(set(names))]
        )
        .on_conflict_do_nothing(index_elements=[Tag.workspace_id, Tag.name])
    )


async def ids_by_name(
    session: AsyncSession, workspace_id: uuid.UUID, names: list[str]
) -> dict[str, uuid.UUID]:
    # FOR KEY SHARE (read + key_share; key_share alone is FOR NO KEY UPDATE) keeps a
    # concurrent delete from removing a tag the caller is about to reference, without
    # making concurrent taggers wait for each other.
    result = await session.execute(
        select(Tag.name, Tag.id)
        .where(Tag.workspace_id == workspace_id, Tag.name.in_(names))
        .with_for_update(read=True, key_share=True)
    )
    return {name: tag_id for name, tag_id in result.all()}


async def names_by_link(
    session: AsyncSession, link_ids: list[uuid.UUID]
) -> list[tuple[uuid.UUID, str]]:
    result = await session.execute(
        select(link_tags.c.link_id, Tag.name)
        .select_from(link_tags.join(Tag, Tag.id == link_tags.c.tag_id))
        .where(link_tags.c.link_id.in_(link_ids))
    )
    return [(link_id, name) for link_id, name in result.all()]
