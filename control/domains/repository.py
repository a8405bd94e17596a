"""All SQL for domains."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control.domains.models import Domain


async def get_default(session: AsyncSession) -> Domain | None:
    result = await session.execute(select(Domain).where(Domain.is_default.is_(True)).limit(1))
    return result.scalar_one_or_none()


async def get(session: AsyncSession, domain_id: uuid.UUID) -> Domain | None:
    return await session.get(Domain, domain_id)


async def upsert_default(session: AsyncSession, name: str) -> Domain:
    """Make `name` the platform default domain (shared by every workspace)."""
    await session.execute(
        update(Domain)
        .where(Domain.is_default.is_(True), Domain.name != name)
        .values(is_default=False)
    )
    await session.execute(
        insert(Domain)
        .values(id=uuid.uuid4(), name=name, is_default=True, status="verified", workspace_id=None)
        .on_conflict_do_update(index_elements=[Domain.name], set_={"is_default": True})
    )
    result = await session.execute(select(Domain).where(Domain.name == name))
    return result.scalar_one()
