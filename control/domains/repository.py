"""All SQL for domains."""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control.db import new_id
from control.domains.models import Domain
from control.links.models import Link


async def get_default(session: AsyncSession) -> Domain | None:
    result = await session.execute(select(Domain).where(Domain.is_default.is_(True)).limit(1))
    return result.scalar_one_or_none()


async def get(session: AsyncSession, domain_id: uuid.UUID) -> Domain | None:
    return await session.get(Domain, domain_id)


Lock = Literal["update", "no_key_update"]


async def get_owned(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    domain_id: uuid.UUID,
    *,
    lock: Lock | None = None,
) -> Domain | None:
    """A workspace's custom domain, optionally locked until the transaction ends: "update"
    to delete it (waits for links being created on it), "no_key_update" to change its
    columns (serialises writers but lets links be created meanwhile)."""
    query = select(Domain).where(Domain.id == domain_id, Domain.workspace_id == workspace_id)
    if lock is not None:
        query = query.with_for_update(key_share=lock == "no_key_update")
    result = await session.execute(query)
    return result.scalar_one_or_none()


async def find_by_name(session: AsyncSession, name: str) -> Domain | None:
    # KEY SHARE: a link about to point at this domain keeps a concurrent DELETE of the
    # domain waiting (or sees it gone) instead of failing on the foreign key later.
    result = await session.execute(
        select(Domain).where(Domain.name == name).with_for_update(read=True, key_share=True)
    )
    return result.scalar_one_or_none()


async def insert_if_free(
    session: AsyncSession, workspace_id: uuid.UUID, name: str, token: str
) -> Domain | None:
    """The new pending domain, or None when any workspace (or the platform) has the name."""
    result = await session.execute(
        insert(Domain)
        .values(
            id=new_id(),
            workspace_id=workspace_id,
            name=name,
            is_default=False,
            status="pending",
            verification_token=token,
        )
        .on_conflict_do_nothing(index_elements=[Domain.name])
        .returning(Domain)
    )
    return result.scalar_one_or_none()


async def page_owned(
    session: AsyncSession, workspace_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> list[Domain]:
    query = select(Domain).where(Domain.workspace_id == workspace_id)
    if after is not None:
        query = query.where(Domain.id > after)
    result = await session.execute(query.order_by(Domain.id).limit(limit))
    return list(result.scalars())


async def has_live_links(session: AsyncSession, domain_id: uuid.UUID) -> bool:
    result = await session.execute(
        select(exists().where(Link.domain_id == domain_id, Link.deleted_at.is_(None)))
    )
    return bool(result.scalar())


async def delete_with_dead_links(session: AsyncSession, domain_id: uuid.UUID) -> None:
    """Remove the domain; its soft-deleted links go too, since they would otherwise hold the
    foreign key and can never resolve again without the domain anyway."""
    await session.execute(
        delete(Link).where(Link.domain_id == domain_id, Link.deleted_at.is_not(None))
    )
    await session.execute(delete(Domain).where(Domain.id == domain_id))


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
