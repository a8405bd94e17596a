"""All SQL of conversion records, secrets and the click look-ups attribution needs.

Reports have their own SQL (control/conversions/reports/repository.py).
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control.clicks.models import Click
from control.conversions.models import Conversion, ConversionSecret
from control.domains.models import Domain
from control.links.models import Link
from control.workspaces.models import Workspace

# -- secrets ---------------------------------------------------------------------------------


async def workspace_and_secret(
    session: AsyncSession, workspace_id: uuid.UUID
) -> tuple[uuid.UUID, ConversionSecret | None] | None:
    """(organization id, the workspace's secret row or None), or None: no such workspace."""
    row = (
        await session.execute(
            select(Workspace.organization_id, ConversionSecret)
            .outerjoin(ConversionSecret, ConversionSecret.workspace_id == Workspace.id)
            .where(Workspace.id == workspace_id)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def get_secret(session: AsyncSession, workspace_id: uuid.UUID) -> ConversionSecret | None:
    return await session.get(ConversionSecret, workspace_id)


async def insert_secret(
    session: AsyncSession, workspace_id: uuid.UUID, encrypted: str
) -> ConversionSecret | None:
    """The new row, or None when the workspace has a secret already."""
    stmt = (
        insert(ConversionSecret)
        .values(workspace_id=workspace_id, secret_encrypted=encrypted)
        .on_conflict_do_nothing(index_elements=[ConversionSecret.workspace_id])
        .returning(ConversionSecret)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def rotate_secret(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    encrypted: str,
    previous_expires_at: dt.datetime | None,
) -> ConversionSecret | None:
    """The current secret becomes the previous one (until `previous_expires_at`; None: not
    accepted at all) and `encrypted` the current one. None when there is no secret."""
    stmt = (
        update(ConversionSecret)
        .where(ConversionSecret.workspace_id == workspace_id)
        .values(
            previous_secret_encrypted=(
                ConversionSecret.secret_encrypted if previous_expires_at is not None else None
            ),
            previous_secret_expires_at=previous_expires_at,
            secret_encrypted=encrypted,
            rotated_at=func.now(),
        )
        .returning(ConversionSecret)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


# -- records ---------------------------------------------------------------------------------


async def by_event_id(
    session: AsyncSession, workspace_id: uuid.UUID, event_id: str
) -> Conversion | None:
    found = await session.execute(
        select(Conversion).where(
            Conversion.workspace_id == workspace_id, Conversion.event_id == event_id
        )
    )
    return found.scalar_one_or_none()


async def insert_conversion(session: AsyncSession, values: dict[str, Any]) -> Conversion | None:
    """The stored row, or None when it would repeat an event_id, or a sale's order_id,
    of the workspace (nothing is written then)."""
    stmt = insert(Conversion).values(**values).on_conflict_do_nothing().returning(Conversion)
    return (await session.execute(stmt)).scalar_one_or_none()


async def sale_for_update(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    order_id: str | None = None,
    event_id: str | None = None,
) -> Conversion | None:
    """The sale with this order_id or event_id, locked: negatives of one sale queue up, so
    what is left to undo is read by one of them at a time."""
    stmt = select(Conversion).where(
        Conversion.workspace_id == workspace_id, Conversion.event_name == "sale"
    )
    if order_id is not None:
        stmt = stmt.where(Conversion.order_id == order_id)
    else:
        stmt = stmt.where(Conversion.event_id == event_id)
    found = await session.execute(stmt.with_for_update())
    return found.scalar_one_or_none()


async def undone_value(session: AsyncSession, sale_id: uuid.UUID) -> decimal.Decimal:
    """The sum of the values of the negatives of a sale."""
    found = await session.execute(
        select(func.coalesce(func.sum(Conversion.value), 0)).where(Conversion.related_id == sale_id)
    )
    return decimal.Decimal(found.scalar_one() or 0)


async def latest_with_click(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    external_id: str,
    event_time: dt.datetime,
    earliest_click: dt.datetime,
) -> Conversion | None:
    """The customer's latest outcome at or before `event_time` that found a click no older
    than `earliest_click` (its own attribution settled or still pending)."""
    found = await session.execute(
        select(Conversion)
        .where(
            Conversion.workspace_id == workspace_id,
            Conversion.external_id == external_id,
            Conversion.click_id.is_not(None),
            Conversion.event_time <= event_time,
            Conversion.clicked_at >= earliest_click,
            Conversion.attribution != "unattributed",
        )
        .order_by(Conversion.event_time.desc(), Conversion.id.desc())
        .limit(1)
    )
    return found.scalar_one_or_none()


async def get(
    session: AsyncSession, workspace_id: uuid.UUID, conversion_id: uuid.UUID
) -> Conversion | None:
    found = await session.execute(
        select(Conversion).where(
            Conversion.workspace_id == workspace_id, Conversion.id == conversion_id
        )
    )
    return found.scalar_one_or_none()


async def event_ids_of(session: AsyncSession, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The event_id of each of these conversions (for related ids in answers)."""
    if not ids:
        return {}
    found = await session.execute(
        select(Conversion.id, Conversion.event_id).where(Conversion.id.in_(list(ids)))
    )
    return {row[0]: row[1] for row in found.all()}


async def page(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    before: uuid.UUID | None,
    limit: int,
    event_name: str | None,
    attribution: str | None,
    link_id: uuid.UUID | None,
) -> list[Conversion]:
    """Newest first (ids are time-ordered), keyset-paged on id."""
    stmt = select(Conversion).where(Conversion.workspace_id == workspace_id)
    if before is not None:
        stmt = stmt.where(Conversion.id < before)
    if event_name is not None:
        stmt = stmt.where(Conversion.event_name == event_name)
    if attribution is not None:
        stmt = stmt.where(Conversion.attribution == attribution)
    if link_id is not None:
        stmt = stmt.where(Conversion.link_id == link_id)
    found = await session.execute(stmt.order_by(Conversion.id.desc()).limit(limit))
    return list(found.scalars().all())


# -- attribution -----------------------------------------------------------------------------


async def clicks(
    session: AsyncSession, wanted: Collection[tuple[dt.datetime, uuid.UUID]]
) -> dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID, int]]:
    """(workspace id, link id, variant) of each stored click among `wanted` (clicked_at, id).

    Filtering on clicked_at first lets PostgreSQL read only those days' partitions.
    """
    if not wanted:
        return {}
    times = sorted({t for t, _ in wanted})
    ids = [i for _, i in wanted]
    found = await session.execute(
        select(Click.id, Click.clicked_at, Click.workspace_id, Click.link_id, Click.variant).where(
            Click.clicked_at.in_(times), Click.id.in_(ids)
        )
    )
    pairs = set(wanted)
    return {
        row.id: (row.workspace_id, row.link_id, row.variant)
        for row in found.all()
        if (row.clicked_at, row.id) in pairs
    }


async def pending_for_update(
    session: AsyncSession, limit: int, after: tuple[dt.datetime, uuid.UUID] | None
) -> list[Conversion]:
    """Pending outcomes after `after`, oldest click first, locked; those another settler
    holds are skipped, so several control processes share the work."""
    stmt = select(Conversion).where(Conversion.attribution == "pending")
    if after is not None:
        stmt = stmt.where(tuple_(Conversion.clicked_at, Conversion.id) > tuple_(*after))
    found = await session.execute(
        stmt.order_by(Conversion.clicked_at, Conversion.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(found.scalars().all())


async def settle(
    session: AsyncSession, conversion_id: uuid.UUID, values: dict[str, Any]
) -> Conversion | None:
    """Settle a pending outcome's attribution; None when it is not pending (any more)."""
    found = await session.execute(
        update(Conversion)
        .where(Conversion.id == conversion_id, Conversion.attribution == "pending")
        .values(**values, attributed_at=func.now())
        .returning(Conversion)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return found.scalar_one_or_none()


async def attribution_of(
    session: AsyncSession, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Conversion]:
    if not ids:
        return {}
    found = await session.execute(
        select(Conversion)
        .where(Conversion.id.in_(list(ids)))
        .execution_options(populate_existing=True)
    )
    return {row.id: row for row in found.scalars().all()}


async def link_names(
    session: AsyncSession, link_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """(slug, domain name) of each link, deleted ones too."""
    if not link_ids:
        return {}
    found = await session.execute(
        select(Link.id, Link.slug, Domain.name)
        .join(Domain, Domain.id == Link.domain_id)
        .where(Link.id.in_(list(link_ids)))
    )
    return {row[0]: (row[1], row[2]) for row in found.all()}


async def organizations(
    session: AsyncSession, workspace_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    if not workspace_ids:
        return {}
    found = await session.execute(
        select(Workspace.id, Workspace.organization_id).where(Workspace.id.in_(workspace_ids))
    )
    return {row[0]: row[1] for row in found.all()}
