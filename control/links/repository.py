"""All SQL for links."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control.clicks.models import LinkStats
from control.domains.models import Domain
from control.links.models import Link


async def insert_if_free(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    domain_id: uuid.UUID,
    slug: str,
    destination: str,
    redirect_status: int,
) -> Link | None:
    """Insert unless (domain, slug) is taken, in which case return None (no error, no savepoint)."""
    result = await session.execute(
        insert(Link)
        .values(
            workspace_id=workspace_id,
            domain_id=domain_id,
            slug=slug,
            destination=destination,
            redirect_status=redirect_status,
            version=1,
        )
        .on_conflict_do_nothing(index_elements=[Link.domain_id, Link.slug])
        .returning(Link)
    )
    return result.scalar_one_or_none()


async def find_by_slug(session: AsyncSession, domain_id: uuid.UUID, slug: str) -> Link | None:
    result = await session.execute(
        select(Link).where(Link.domain_id == domain_id, Link.slug == slug)
    )
    return result.scalar_one_or_none()


async def get_with_stats(
    session: AsyncSession, workspace_id: uuid.UUID, link_id: uuid.UUID
) -> tuple[Link, str, int] | None:
    result = await session.execute(
        select(Link, Domain.name, LinkStats.clicks)
        .join(Domain, Domain.id == Link.domain_id)
        .outerjoin(LinkStats, LinkStats.link_id == Link.id)
        .where(Link.id == link_id, Link.workspace_id == workspace_id)
    )
    row = result.one_or_none()
    return None if row is None else (row[0], row[1], row[2] or 0)
