"""All SQL of the analytics API: counts from the hourly rollups, raw clicks for export.

Every query is bounded to one workspace twice: by the rollup's (or click's) own
`workspace_id`, and by joining `links` on the link id and that same workspace, so a click
row carrying a link of another workspace can never be counted. Deleted links are joined
like live ones: their clicks happened, so they stay in the history.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from control.clicks.models import Click, ClickHourly, ClickHourlyDim
from control.domains.models import Domain
from control.links.models import Link, link_tags
from control.spaces.models import Space
from control.tags.models import Tag

Ts = TypeVarTuple("Ts")


@dataclass(frozen=True)
class Scope:
    """The links that count: every link of the workspace narrowed by each filter given."""

    workspace_id: uuid.UUID
    link_id: uuid.UUID | None = None
    tag_id: uuid.UUID | None = None
    space_id: uuid.UUID | None = None
    domain_id: uuid.UUID | None = None


def _links_where(scope: Scope, link_id: Any) -> ColumnElement[bool]:
    """The condition on `links` (joined as Link on `link_id`) that the scope asks for."""
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


def _hourly(stmt: Select[*Ts], scope: Scope, start: dt.datetime, end: dt.datetime) -> Select[*Ts]:
    return (
        stmt.select_from(ClickHourly)
        .join(Link, _links_where(scope, ClickHourly.link_id))
        .where(
            ClickHourly.workspace_id == scope.workspace_id,
            ClickHourly.hour >= start,
            ClickHourly.hour < end,
        )
    )


# -- resolving the filters ----------------------------------------------------------------


async def link_exists(session: AsyncSession, workspace_id: uuid.UUID, link_id: uuid.UUID) -> bool:
    """A link of the workspace, live or deleted."""
    found = await session.execute(
        select(Link.id).where(Link.id == link_id, Link.workspace_id == workspace_id)
    )
    return found.scalar_one_or_none() is not None


async def tag_id(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> uuid.UUID | None:
    found = await session.execute(
        select(Tag.id).where(Tag.workspace_id == workspace_id, Tag.name == name)
    )
    return found.scalar_one_or_none()


async def space_id(
    session: AsyncSession, workspace_id: uuid.UUID, as_id: uuid.UUID | None, name: str | None
) -> uuid.UUID | None:
    """The space with id `as_id`, else the one named `name` (as the links API resolves it)."""
    choices = []
    if as_id is not None:
        choices.append(Space.id == as_id)
    if name is not None:
        choices.append(Space.name == name)
    if not choices:
        return None
    found = await session.execute(
        select(Space.id)
        .where(Space.workspace_id == workspace_id, or_(*choices))
        .order_by((Space.id == as_id).desc() if as_id is not None else Space.id)
        .limit(1)
    )
    return found.scalar_one_or_none()


async def domain_id(session: AsyncSession, workspace_id: uuid.UUID, host: str) -> uuid.UUID | None:
    """The platform default domain or one of the workspace's own, by name (any status)."""
    found = await session.execute(
        select(Domain.id).where(
            Domain.name == host, or_(Domain.is_default, Domain.workspace_id == workspace_id)
        )
    )
    return found.scalar_one_or_none()


# -- counts ---------------------------------------------------------------------------------


async def timeseries(
    session: AsyncSession, scope: Scope, start: dt.datetime, end: dt.datetime, unit: str
) -> list[tuple[dt.datetime, int, int, int, int]]:
    """(bucket start, humans, bots, human_qr, bot_qr) of each `unit` (hour or day, UTC) with
    any clicks; buckets without any are not returned."""
    bucket = (
        ClickHourly.hour if unit == "hour" else func.date_trunc("day", ClickHourly.hour, "UTC")
    ).label("bucket")
    stmt = _hourly(
        select(
            bucket,
            func.sum(ClickHourly.humans),
            func.sum(ClickHourly.bots),
            func.sum(ClickHourly.human_qr),
            func.sum(ClickHourly.bot_qr),
        ),
        scope,
        start,
        end,
    )
    rows = await session.execute(stmt.group_by(bucket).order_by(bucket))
    return [(t, int(h), int(b), int(hq), int(bq)) for t, h, b, hq, bq in rows.all()]


async def totals(
    session: AsyncSession, scope: Scope, start: dt.datetime, end: dt.datetime
) -> tuple[int, int, int, int]:
    """(humans, bots, human_qr, bot_qr) over the range."""
    stmt = _hourly(
        select(
            func.coalesce(func.sum(ClickHourly.humans), 0),
            func.coalesce(func.sum(ClickHourly.bots), 0),
            func.coalesce(func.sum(ClickHourly.human_qr), 0),
            func.coalesce(func.sum(ClickHourly.bot_qr), 0),
        ),
        scope,
        start,
        end,
    )
    h, b, hq, bq = (await session.execute(stmt)).one()
    return int(h), int(b), int(hq), int(bq)


async def breakdown(
    session: AsyncSession,
    scope: Scope,
    dimension: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    bots: bool,
    limit: int,
) -> list[tuple[str, int]]:
    """(value, clicks) of one rollup dimension, most clicks first; values with none left
    out."""
    counted = ClickHourlyDim.humans + ClickHourlyDim.bots if bots else ClickHourlyDim.humans
    clicks = func.sum(counted).label("clicks")
    stmt = (
        select(ClickHourlyDim.value, clicks)
        .select_from(ClickHourlyDim)
        .join(Link, _links_where(scope, ClickHourlyDim.link_id))
        .where(
            ClickHourlyDim.workspace_id == scope.workspace_id,
            ClickHourlyDim.dimension == dimension,
            ClickHourlyDim.hour >= start,
            ClickHourlyDim.hour < end,
        )
        .group_by(ClickHourlyDim.value)
        .having(func.sum(counted) > 0)
        .order_by(clicks.desc(), ClickHourlyDim.value)
        .limit(limit)
    )
    rows = await session.execute(stmt)
    return [(value, int(n)) for value, n in rows.all()]


async def link_totals(
    session: AsyncSession,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    offset: int,
    limit: int,
) -> list[tuple[uuid.UUID, str, str, bool, int, int, int]]:
    """(link id, slug, domain, deleted, human clicks, human QR scans, bots) of each link
    with clicks in the range: most human clicks first, then most bots, then by id."""
    humans = func.sum(ClickHourly.humans).label("humans")
    bots = func.sum(ClickHourly.bots).label("bots")
    stmt = (
        _hourly(
            select(
                Link.id,
                Link.slug,
                Domain.name,
                Link.deleted_at.is_not(None),
                humans,
                func.sum(ClickHourly.human_qr),
                bots,
            ),
            scope,
            start,
            end,
        )
        .join(Domain, Domain.id == Link.domain_id)
        .group_by(Link.id, Link.slug, Domain.name, Link.deleted_at)
        .order_by(humans.desc(), bots.desc(), Link.id)
        .offset(offset)
        .limit(limit)
    )
    rows = await session.execute(stmt)
    return [
        (link_id, slug, domain, bool(deleted), int(h), int(hq), int(b))
        for link_id, slug, domain, deleted, h, hq, b in rows.all()
    ]


# -- raw clicks -------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "id",
    "clicked_at",
    "link_id",
    "slug",
    "touch",
    "country",
    "device",
    "browser",
    "os",
    "referrer_host",
    "social",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "bot",
)


async def clicks_page(
    session: AsyncSession,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    bots: bool,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    """Up to `limit` clicks in the range after `after`, by (clicked_at, id): the values of
    `EXPORT_COLUMNS`, in that order (`slug` is the link's slug now)."""
    stmt = (
        select(
            Click.id,
            Click.clicked_at,
            Click.link_id,
            Link.slug,
            Click.touch,
            Click.country,
            Click.device,
            Click.browser,
            Click.os,
            Click.referrer_host,
            Click.social,
            Click.utm_source,
            Click.utm_medium,
            Click.utm_campaign,
            Click.bot,
        )
        .select_from(Click)
        .join(Link, _links_where(scope, Click.link_id))
        .where(
            Click.workspace_id == scope.workspace_id,
            Click.clicked_at >= start,
            Click.clicked_at < end,
        )
        .order_by(Click.clicked_at, Click.id)
        .limit(limit)
    )
    if not bots:
        stmt = stmt.where(Click.bot.is_(False))
    if after is not None:
        stmt = stmt.where(tuple_(Click.clicked_at, Click.id) > tuple_(*after))
    rows = await session.execute(stmt)
    return [tuple(row) for row in rows.all()]
