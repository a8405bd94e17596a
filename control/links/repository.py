"""All SQL for links, their tags and their revisions."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from control.clicks.models import LinkStats
from control.db import table
from control.domains.models import Domain
from control.links.models import Link, LinkRevision, link_tags
from control.tags.models import Tag

_LIVE = Link.deleted_at.is_(None)


async def insert_new(session: AsyncSession, rows: list[dict[str, Any]]) -> list[Link]:
    """Insert what does not collide with a live link (slug per domain, external id per
    workspace); colliding rows are skipped, not errors. One statement for all rows."""
    if not rows:
        return []
    # executemany form: SQLAlchemy batches it (insertmanyvalues) from a cached compilation,
    # where .values(rows) would compile a fresh 1,000-row statement every time.
    result = await session.execute(pg_insert(Link).on_conflict_do_nothing().returning(Link), rows)
    return list(result.scalars())


async def live_by_slugs(
    session: AsyncSession, pairs: list[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], tuple[uuid.UUID, uuid.UUID]]:
    """(domain id, slug) -> (link id, workspace id) of live links."""
    if not pairs:
        return {}
    rows = await session.execute(
        select(Link.domain_id, Link.slug, Link.id, Link.workspace_id).where(
            tuple_(Link.domain_id, Link.slug).in_(pairs), _LIVE
        )
    )
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


async def live_by_external_ids(
    session: AsyncSession, workspace_id: uuid.UUID, external_ids: list[str]
) -> dict[str, uuid.UUID]:
    if not external_ids:
        return {}
    rows = await session.execute(
        select(Link.external_id, Link.id).where(
            Link.workspace_id == workspace_id, Link.external_id.in_(external_ids), _LIVE
        )
    )
    return {r[0]: r[1] for r in rows if r[0] is not None}


async def add_tags(session: AsyncSession, pairs: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
    if pairs:
        await session.execute(
            pg_insert(link_tags).on_conflict_do_nothing().returning(link_tags.c.link_id),
            [{"link_id": link, "tag_id": tag} for link, tag in pairs],
        )


async def replace_tags(session: AsyncSession, link_id: uuid.UUID, tag_ids: list[uuid.UUID]) -> None:
    await session.execute(delete(link_tags).where(link_tags.c.link_id == link_id))
    await add_tags(session, [(link_id, t) for t in tag_ids])


async def add_revisions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(table(LinkRevision)).returning(LinkRevision.id), rows)


async def get_live(
    session: AsyncSession, workspace_id: uuid.UUID, link_id: uuid.UUID, *, lock: bool = False
) -> Link | None:
    query = select(Link).where(Link.id == link_id, Link.workspace_id == workspace_id, _LIVE)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_any_live(
    session: AsyncSession, link_id: uuid.UUID, *, lock: bool = False
) -> Link | None:
    """Any workspace's link: for operators only (takedown from the CLI)."""
    query = select(Link).where(Link.id == link_id, _LIVE)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def page(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    before: uuid.UUID | None,
    limit: int,
    tag_ids: list[uuid.UUID],
    space_id: uuid.UUID | None,
    domain_id: uuid.UUID | None,
    text: str | None,
    external_id: str | None,
    created_after: dt.datetime | None,
    created_before: dt.datetime | None,
    archived: str,
) -> list[Link]:
    """Newest first. Tag filters are AND: a link must carry every tag asked for."""
    query = select(Link).where(Link.workspace_id == workspace_id, _LIVE)
    if before is not None:
        query = query.where(Link.id < before)
    for tag_id in tag_ids:
        query = query.where(
            select(link_tags.c.link_id)
            .where(link_tags.c.link_id == Link.id, link_tags.c.tag_id == tag_id)
            .exists()
        )
    if space_id is not None:
        query = query.where(Link.space_id == space_id)
    if domain_id is not None:
        query = query.where(Link.domain_id == domain_id)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                Link.slug.ilike(pattern, escape="\\"),
                Link.destination.ilike(pattern, escape="\\"),
                Link.external_id.ilike(pattern, escape="\\"),
            )
        )
    if external_id is not None:
        query = query.where(Link.external_id == external_id)
    if created_after is not None:
        query = query.where(Link.created_at >= created_after)
    if created_before is not None:
        query = query.where(Link.created_at < created_before)
    if archived == "exclude":
        query = query.where(Link.archived_at.is_(None))
    elif archived == "only":
        query = query.where(Link.archived_at.is_not(None))
    rows = await session.execute(query.order_by(Link.id.desc()).limit(limit))
    return list(rows.scalars())


async def clicks(session: AsyncSession, link_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not link_ids:
        return {}
    rows = await session.execute(
        select(LinkStats.link_id, LinkStats.clicks).where(LinkStats.link_id.in_(link_ids))
    )
    return {r[0]: r[1] for r in rows}


async def domain_names(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Domain.id, Domain.name).where(Domain.id.in_(ids)))
    return {r[0]: r[1] for r in rows}


async def tag_ids_by_name(
    session: AsyncSession, workspace_id: uuid.UUID, names: list[str]
) -> dict[str, uuid.UUID]:
    rows = await session.execute(
        select(Tag.name, Tag.id).where(Tag.workspace_id == workspace_id, Tag.name.in_(names))
    )
    return {r[0]: r[1] for r in rows}


async def revisions(session: AsyncSession, link_id: uuid.UUID) -> list[LinkRevision]:
    rows = await session.execute(
        select(LinkRevision).where(LinkRevision.link_id == link_id).order_by(LinkRevision.revision)
    )
    return list(rows.scalars())


async def revision(session: AsyncSession, link_id: uuid.UUID, number: int) -> LinkRevision | None:
    row = await session.execute(
        select(LinkRevision).where(
            and_(LinkRevision.link_id == link_id, LinkRevision.revision == number)
        )
    )
    return row.scalar_one_or_none()


def touch(link: Link) -> None:
    """Bump the version and updated_at of a link about to be changed (row already locked)."""
    link.version += 1
    link.updated_at = dt.datetime.now(dt.UTC)
