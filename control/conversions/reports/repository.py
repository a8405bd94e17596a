"""All SQL of the conversion reports.

Outcomes count by when they happened (`event_time` in [start, end)); clicks come from the
hourly rollups (humans only) like the rest of the analytics API, except per A/B variant,
which the rollups do not keep: those are counted from raw clicks of the links concerned.
Every query is bounded to the workspace and, through `links`, to the scope's links.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Collection
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, and_, exists, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from control.analytics.repository import Scope
from control.clicks.models import Click, ClickHourly
from control.conversions.models import Conversion
from control.domains.models import Domain
from control.links.models import Link, link_tags
from control.tags.models import Tag

Ts = TypeVarTuple("Ts")
NAMES = ("lead", "sale", "refund", "cancellation", "reversal")
POSITIVE = ("lead", "sale")


def filtered(scope: Scope) -> bool:
    return any(
        v is not None for v in (scope.link_id, scope.tag_id, scope.space_id, scope.domain_id)
    )


def in_scope(scope: Scope, link_id: Any) -> ColumnElement[bool]:
    """The condition on `links` (joined as Link on `link_id`) the scope asks for."""
    conditions: list[ColumnElement[bool]] = [
        Link.id == link_id,
        Link.workspace_id == scope.workspace_id,
    ]
    if scope.link_id is not None:
        conditions.append(Link.id == scope.link_id)
    if scope.space_id is not None:
        conditions.append(Link.space_id == scope.space_id)
    if scope.domain_id is not None:
        conditions.append(Link.domain_id == scope.domain_id)
    if scope.tag_id is not None:
        conditions.append(
            exists().where(link_tags.c.link_id == Link.id, link_tags.c.tag_id == scope.tag_id)
        )
    return and_(*conditions)


def _outcomes(
    stmt: Select[*Ts],
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    attributed_only: bool,
) -> Select[*Ts]:
    """Outcomes of the workspace in the range; attributed to the scope's links only when
    `attributed_only` (else every outcome, whatever its attribution)."""
    stmt = stmt.select_from(Conversion).where(
        Conversion.workspace_id == scope.workspace_id,
        Conversion.event_time >= start,
        Conversion.event_time < end,
    )
    if attributed_only:
        stmt = stmt.join(Link, in_scope(scope, Conversion.link_id)).where(
            Conversion.attribution == "attributed"
        )
    return stmt


def _type_counts() -> list[Any]:
    return [func.count().filter(Conversion.event_name == name).label(name) for name in NAMES]


def _positives() -> Any:
    return func.count().filter(Conversion.event_name.in_(POSITIVE))


# -- the summary --------------------------------------------------------------------------------


async def summary_counts(
    session: AsyncSession, scope: Scope, start: dt.datetime, end: dt.datetime
) -> list[tuple[str, str, int]]:
    """(event name, attribution, outcomes)."""
    stmt = _outcomes(
        select(Conversion.event_name, Conversion.attribution, func.count()),
        scope,
        start,
        end,
        attributed_only=filtered(scope),
    ).group_by(Conversion.event_name, Conversion.attribution)
    rows = await session.execute(stmt)
    return [(name, status, int(n)) for name, status, n in rows.all()]


async def summary_values(
    session: AsyncSession, scope: Scope, start: dt.datetime, end: dt.datetime
) -> list[tuple[str, str, decimal.Decimal]]:
    """(currency, event name, summed value) of outcomes with a value."""
    stmt = (
        _outcomes(
            select(Conversion.currency, Conversion.event_name, func.sum(Conversion.value)),
            scope,
            start,
            end,
            attributed_only=filtered(scope),
        )
        .where(Conversion.value.is_not(None), Conversion.currency.is_not(None))
        .group_by(Conversion.currency, Conversion.event_name)
    )
    rows = await session.execute(stmt)
    return [
        (str(currency), name, decimal.Decimal(total or 0)) for currency, name, total in rows.all()
    ]


# -- per link -----------------------------------------------------------------------------------


def _clicks_by(key: Any, scope: Scope, start: dt.datetime, end: dt.datetime) -> Any:
    stmt = (
        select(key.label("key"), func.sum(ClickHourly.humans).label("clicks"))
        .select_from(ClickHourly)
        .join(Link, in_scope(scope, ClickHourly.link_id))
        .where(
            ClickHourly.workspace_id == scope.workspace_id,
            ClickHourly.hour >= start,
            ClickHourly.hour < end,
        )
    )
    if key is not ClickHourly.link_id:
        stmt = stmt.join(link_tags, link_tags.c.link_id == ClickHourly.link_id)
    return stmt.group_by(key).subquery()


def _outcomes_by(key: Any, scope: Scope, start: dt.datetime, end: dt.datetime) -> Any:
    stmt = _outcomes(
        select(key.label("key"), _positives().label("positives"), *_type_counts()),
        scope,
        start,
        end,
        attributed_only=True,
    )
    if key is not Conversion.link_id:
        stmt = stmt.join(link_tags, link_tags.c.link_id == Conversion.link_id)
    return stmt.group_by(key).subquery()


def _merged(clicks: Any, outcomes: Any) -> tuple[Any, list[Any]]:
    """clicks FULL JOIN outcomes on their key: (key, [clicks, lead .. reversal, positives])."""
    key = func.coalesce(clicks.c.key, outcomes.c.key).label("key")
    columns = [
        func.coalesce(clicks.c.clicks, 0).label("clicks"),
        *(func.coalesce(outcomes.c[name], 0).label(name) for name in NAMES),
        func.coalesce(outcomes.c.positives, 0).label("positives"),
    ]
    return key, columns


async def link_page(
    session: AsyncSession,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    offset: int,
    limit: int,
) -> list[tuple[Any, ...]]:
    """(link id, slug, domain, deleted, clicks, lead .. reversal) of each link in scope with
    clicks or attributed outcomes in the range: most leads and sales first, then most
    clicks, then by id."""
    clicks = _clicks_by(ClickHourly.link_id, scope, start, end)
    outcomes = _outcomes_by(Conversion.link_id, scope, start, end)
    key, columns = _merged(clicks, outcomes)
    merged = (
        select(key, *columns)
        .select_from(clicks.outerjoin(outcomes, clicks.c.key == outcomes.c.key, full=True))
        .subquery()
    )
    stmt = (
        select(
            Link.id,
            Link.slug,
            Domain.name,
            Link.deleted_at.is_not(None),
            merged.c.clicks,
            *(merged.c[name] for name in NAMES),
        )
        .select_from(merged)
        .join(Link, Link.id == merged.c.key)
        .join(Domain, Domain.id == Link.domain_id)
        .order_by(merged.c.positives.desc(), merged.c.clicks.desc(), Link.id)
        .offset(offset)
        .limit(limit)
    )
    rows = await session.execute(stmt)
    return [tuple(row) for row in rows.all()]


async def tag_page(
    session: AsyncSession,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    offset: int,
    limit: int,
) -> list[tuple[Any, ...]]:
    """(tag id, tag name, clicks, lead .. reversal) per tag of the scope's links, ordered as
    `link_page`."""
    clicks = _clicks_by(link_tags.c.tag_id, scope, start, end)
    outcomes = _outcomes_by(link_tags.c.tag_id, scope, start, end)
    key, columns = _merged(clicks, outcomes)
    merged = (
        select(key, *columns)
        .select_from(clicks.outerjoin(outcomes, clicks.c.key == outcomes.c.key, full=True))
        .subquery()
    )
    stmt = (
        select(Tag.id, Tag.name, merged.c.clicks, *(merged.c[name] for name in NAMES))
        .select_from(merged)
        .join(Tag, and_(Tag.id == merged.c.key, Tag.workspace_id == scope.workspace_id))
        .order_by(merged.c.positives.desc(), merged.c.clicks.desc(), Tag.name)
        .offset(offset)
        .limit(limit)
    )
    rows = await session.execute(stmt)
    return [tuple(row) for row in rows.all()]


async def values_by(
    session: AsyncSession,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    by: str,
    keys: Collection[Any],
) -> list[tuple[Any, str, str, decimal.Decimal]]:
    """(key, currency, event name, summed value) of attributed outcomes, per link (`by`
    "link"), per tag ("tag") or per (link, variant) ("variant"), for these keys only."""
    if not keys:
        return []
    key: Any
    if by == "link":
        key = Conversion.link_id
    elif by == "tag":
        key = link_tags.c.tag_id
    else:
        key = tuple_(Conversion.link_id, Conversion.variant)
    columns: list[Any] = [Conversion.link_id, Conversion.variant] if by == "variant" else [key]
    stmt = _outcomes(
        select(*columns, Conversion.currency, Conversion.event_name, func.sum(Conversion.value)),
        scope,
        start,
        end,
        attributed_only=True,
    ).where(Conversion.value.is_not(None), Conversion.currency.is_not(None), key.in_(list(keys)))
    if by == "tag":
        stmt = stmt.join(link_tags, link_tags.c.link_id == Conversion.link_id)
    rows = await session.execute(
        stmt.group_by(*columns, Conversion.currency, Conversion.event_name)
    )
    out = []
    for row in rows.all():
        found = (row[0], row[1]) if by == "variant" else row[0]
        currency, name, total = row[-3], row[-2], row[-1]
        out.append((found, currency, name, decimal.Decimal(total)))
    return out


# -- per A/B variant ----------------------------------------------------------------------------


async def variant_counts(
    session: AsyncSession, scope: Scope, start: dt.datetime, end: dt.datetime
) -> list[tuple[uuid.UUID, int, list[int]]]:
    """(link id, variant, [lead .. reversal]) of attributed outcomes of A/B clicks."""
    stmt = (
        _outcomes(
            select(Conversion.link_id, Conversion.variant, *_type_counts()),
            scope,
            start,
            end,
            attributed_only=True,
        )
        .where(Conversion.variant >= 0)
        .group_by(Conversion.link_id, Conversion.variant)
    )
    rows = await session.execute(stmt)
    return [(row[0], int(row[1]), [int(n) for n in row[2:]]) for row in rows.all()]


async def variant_clicks(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    link_ids: Collection[uuid.UUID],
    start: dt.datetime,
    end: dt.datetime,
) -> list[tuple[uuid.UUID, int, int]]:
    """(link id, variant, human clicks) from raw clicks: the rollups do not keep variants.
    Only these links' clicks are read (index on link_id, clicked_at)."""
    if not link_ids:
        return []
    stmt = (
        select(Click.link_id, Click.variant, func.count())
        .where(
            Click.workspace_id == workspace_id,
            Click.link_id.in_(list(link_ids)),
            Click.clicked_at >= start,
            Click.clicked_at < end,
            Click.bot.is_(False),
            Click.variant >= 0,
        )
        .group_by(Click.link_id, Click.variant)
    )
    rows = await session.execute(stmt)
    return [(link_id, int(variant), int(n)) for link_id, variant, n in rows.all()]


async def links_info(
    session: AsyncSession, workspace_id: uuid.UUID, link_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str, dict[str, Any]]]:
    """(slug, domain, routing) of each of these links of the workspace."""
    if not link_ids:
        return {}
    rows = await session.execute(
        select(Link.id, Link.slug, Domain.name, Link.routing)
        .join(Domain, Domain.id == Link.domain_id)
        .where(Link.workspace_id == workspace_id, Link.id.in_(list(link_ids)))
    )
    return {row[0]: (row[1], row[2], dict(row[3] or {})) for row in rows.all()}


# -- export ---------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "id",
    "event_id",
    "event_name",
    "event_time",
    "received_at",
    "value",
    "currency",
    "order_id",
    "related_order_id",
    "related_event_id",
    "related_conversion_id",
    "attribution",
    "unattributed_reason",
    "attributed_via",
    "link_id",
    "slug",
    "variant",
    "click_id",
    "clicked_at",
    "external_id",
)


async def export_page(
    session: AsyncSession,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    """Up to `limit` outcomes after `after` by (event_time, id): the values of
    `EXPORT_COLUMNS` in that order (`slug` is the link's slug now)."""
    stmt = (
        _outcomes(
            select(
                Conversion.id,
                Conversion.event_id,
                Conversion.event_name,
                Conversion.event_time,
                Conversion.received_at,
                Conversion.value,
                Conversion.currency,
                Conversion.order_id,
                Conversion.related_order_id,
                Conversion.related_event_id,
                Conversion.related_id,
                Conversion.attribution,
                Conversion.unattributed_reason,
                Conversion.attributed_via,
                Conversion.link_id,
                Link.slug,
                Conversion.variant,
                Conversion.click_id,
                Conversion.clicked_at,
                Conversion.external_id,
            ),
            scope,
            start,
            end,
            attributed_only=filtered(scope),
        )
        .order_by(Conversion.event_time, Conversion.id)
        .limit(limit)
    )
    if not filtered(scope):
        stmt = stmt.outerjoin(
            Link, and_(Link.id == Conversion.link_id, Link.workspace_id == scope.workspace_id)
        )
    if after is not None:
        stmt = stmt.where(tuple_(Conversion.event_time, Conversion.id) > tuple_(*after))
    rows = await session.execute(stmt)
    return [tuple(row) for row in rows.all()]
