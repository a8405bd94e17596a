"""Analytics use cases: ranges, scope filters, and answers from the hourly rollups.

Ranges are half-open `[start, end)` in UTC.

- The rollups count per hour, so `timeseries`, `breakdown` and `links` round `start` down
  and `end` up to whole buckets (hours; days for `interval=day`) and answer with the range
  they used. `export` reads raw clicks and uses the times as given.
- Without `start`/`end`: the last 7 UTC days, today included (`interval=hour`: the last 24
  hours, the current one included). `end` alone: the default length before it; `start`
  alone: up to now.
- At most 31 days for `interval=hour`, 731 days (two years) otherwise, measured on the range
  as asked (rounding may add one bucket at each end); `end` must be after `start`. Else 422
  `invalid_range`.

Scope filters (`link_id`, `tag`, `space`, `domain`) select links by what they are now (their
current tags, space and domain); given together, a link must match all of them. Deleted links
count like live ones: their clicks happened. An unknown `link_id` is 404 `link_not_found`
(as is a link of another workspace); an unknown tag or space matches nothing (as in
`GET /api/v1/links`); an unknown domain is 422 `unknown_domain`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control import text
from control.analytics import repository
from control.analytics.repository import Scope
from control.analytics.schemas import (
    Breakdown,
    BreakdownQuery,
    BreakdownRow,
    ExportQuery,
    LinksQuery,
    LinkTotals,
    LinkTotalsPage,
    Point,
    ScopeQuery,
    Timeseries,
    TimeseriesQuery,
)
from control.domains.service import canonical_name
from control.errors import ApiError, Unprocessable
from shared.hosts import normalise_host

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
STEP = {"hour": HOUR, "day": DAY}
MAX_SPAN = {"hour": dt.timedelta(days=31), "day": dt.timedelta(days=731)}
DEFAULT_SPAN = {"hour": dt.timedelta(hours=24), "day": dt.timedelta(days=7)}
NAME_MAX = 64  # of tags and spaces
EXPORT_PAGE = 5000


def _invalid_range(detail: str) -> ApiError:
    return Unprocessable("invalid_range", detail)


# -- ranges ----------------------------------------------------------------------------------


def floor(t: dt.datetime, unit: str) -> dt.datetime:
    t = t.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return t.replace(hour=0) if unit == "day" else t


def ceil(t: dt.datetime, unit: str) -> dt.datetime:
    down = floor(t, unit)
    return down if down == t else down + STEP[unit]


def resolve_range(
    start: dt.datetime | None,
    end: dt.datetime | None,
    now: dt.datetime,
    *,
    default: str = "day",
    limit: str = "day",
    rounding: str | None = "hour",
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC: defaults filled in (the `default` bucket's window, ending after
    the current bucket), checked against `limit`'s maximum, rounded out to `rounding`."""
    try:
        if end is None:
            end = floor(now, default) + STEP[default] if start is None else now
        if start is None:
            start = end - DEFAULT_SPAN[default]
        if end <= start:
            raise _invalid_range("`end` must be after `start`.")
        if end - start > MAX_SPAN[limit]:
            raise _invalid_range(
                f"The range is at most {MAX_SPAN[limit].days} days"
                + (" for interval=hour." if limit == "hour" else ".")
            )
        if rounding is None:
            return start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        return floor(start, rounding), ceil(end, rounding)
    except OverflowError:
        raise _invalid_range("`start` or `end` is too far from today.") from None


# -- scope -------------------------------------------------------------------------------------


async def resolve_scope(
    session: AsyncSession, workspace_id: uuid.UUID, query: ScopeQuery
) -> Scope | None:
    """The links the filters select, or None when they can select none."""
    if query.link_id is not None and not await repository.link_exists(
        session, workspace_id, query.link_id
    ):
        raise ApiError.not_found("link")
    tag_id = space_id = domain_id = None
    if query.tag is not None:
        name = text.lookup_name(query.tag, NAME_MAX)
        tag_id = None if name is None else await repository.tag_id(session, workspace_id, name)
        if tag_id is None:
            return None
    if query.space is not None:
        try:
            as_id: uuid.UUID | None = uuid.UUID(query.space)
        except ValueError:
            as_id = None
        name = text.lookup_name(query.space, NAME_MAX)
        space_id = await repository.space_id(session, workspace_id, as_id, name)
        if space_id is None:
            return None
    if query.domain is not None:
        host = canonical_name(query.domain) or normalise_host(query.domain)
        domain_id = await repository.domain_id(session, workspace_id, host) if host else None
        if domain_id is None:
            raise Unprocessable(
                "unknown_domain",
                f"No domain {query.domain[:100]!r} in this workspace.",
                field="domain",
            )
    return Scope(
        workspace_id,
        link_id=query.link_id,
        tag_id=tag_id,
        space_id=space_id,
        domain_id=domain_id,
    )


# -- answers -----------------------------------------------------------------------------------


async def timeseries(
    session: AsyncSession, workspace_id: uuid.UUID, query: TimeseriesQuery, now: dt.datetime
) -> Timeseries:
    unit = query.interval
    start, end = resolve_range(query.start, query.end, now, default=unit, limit=unit, rounding=unit)
    scope = await resolve_scope(session, workspace_id, query)
    found: dict[dt.datetime, tuple[int, int, int, int]] = {}
    if scope is not None:
        for t, humans, bots, human_qr, bot_qr in await repository.timeseries(
            session, scope, start, end, unit
        ):
            found[t.astimezone(dt.UTC)] = (humans, bots, human_qr, bot_qr)
    points = []
    t = start
    while t < end:
        humans, bots, human_qr, bot_qr = found.get(t, (0, 0, 0, 0))
        if query.bots:
            points.append(Point(t=t, clicks=humans + bots, qr_scans=human_qr + bot_qr, bots=bots))
        else:
            points.append(Point(t=t, clicks=humans, qr_scans=human_qr))
        t += STEP[unit]
    return Timeseries(interval=unit, start=start, end=end, points=points)


async def breakdown(
    session: AsyncSession, workspace_id: uuid.UUID, query: BreakdownQuery, now: dt.datetime
) -> Breakdown:
    """Clicks per value of a dimension, most first. `touch` comes from the link totals
    (`link` or `qr`); the others from the per-dimension rollup."""
    start, end = resolve_range(query.start, query.end, now)
    scope = await resolve_scope(session, workspace_id, query)
    rows: list[BreakdownRow] = []
    if scope is not None and query.dimension == "touch":
        humans, bots, human_qr, bot_qr = await repository.totals(session, scope, start, end)
        qr = human_qr + bot_qr if query.bots else human_qr
        link = (humans + bots if query.bots else humans) - qr
        counted = [("link", link), ("qr", qr)]
        counted.sort(key=lambda row: (-row[1], row[0]))
        rows = [BreakdownRow(value=v, clicks=n) for v, n in counted if n > 0][: query.limit]
    elif scope is not None:
        found = await repository.breakdown(
            session, scope, query.dimension, start, end, bots=query.bots, limit=query.limit
        )
        rows = [BreakdownRow(value=v, clicks=n) for v, n in found]
    return Breakdown(dimension=query.dimension, start=start, end=end, rows=rows)


def _encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def _decode_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raw = ""
    if not raw.startswith("o") or not raw[1:].isdigit():
        raise ApiError("invalid_cursor", "The cursor is not one this API returned.", field="cursor")
    return int(raw[1:])


async def links(
    session: AsyncSession, workspace_id: uuid.UUID, query: LinksQuery, now: dt.datetime
) -> LinkTotalsPage:
    """Per-link totals, most human clicks first. The cursor is an offset into that order:
    clicks arriving between two pages can move a link across the boundary."""
    start, end = resolve_range(query.start, query.end, now)
    offset = _decode_offset(query.cursor)
    scope = await resolve_scope(session, workspace_id, query)
    found = (
        []
        if scope is None
        else await repository.link_totals(
            session, scope, start, end, offset=offset, limit=query.limit + 1
        )
    )
    data = [
        LinkTotals(
            link_id=str(link_id),
            slug=slug,
            domain=domain,
            deleted=deleted,
            clicks=humans,
            qr_scans=human_qr,
            bots=bots,
        )
        for link_id, slug, domain, deleted, humans, human_qr, bots in found[: query.limit]
    ]
    more = len(found) > query.limit
    return LinkTotalsPage(
        start=start,
        end=end,
        data=data,
        next_cursor=_encode_offset(offset + query.limit) if more else None,
    )


@dataclass(frozen=True)
class Export:
    """What an export reads: resolved once, then paged through in short transactions."""

    scope: Scope | None
    start: dt.datetime
    end: dt.datetime
    bots: bool


async def plan_export(
    session: AsyncSession, workspace_id: uuid.UUID, query: ExportQuery, now: dt.datetime
) -> Export:
    start, end = resolve_range(query.start, query.end, now, rounding=None)
    scope = await resolve_scope(session, workspace_id, query)
    return Export(scope, start, end, query.bots)


async def export_pages(
    sessions: async_sessionmaker[AsyncSession], plan: Export, page: int | None = None
) -> AsyncGenerator[list[tuple[Any, ...]]]:
    """The clicks of the plan, oldest first, `page` (default `EXPORT_PAGE`) at a time (the
    first may be empty); each page is read in its own transaction, keyset-paged on
    (clicked_at, id), so memory stays constant and no transaction spans the download."""
    page = page or EXPORT_PAGE
    if plan.scope is None:
        yield []
        return
    after: tuple[dt.datetime, uuid.UUID] | None = None
    while True:
        async with sessions.begin() as session:
            rows = await repository.clicks_page(
                session, plan.scope, plan.start, plan.end, bots=plan.bots, after=after, limit=page
            )
        yield rows
        if len(rows) < page:
            return
        after = (rows[-1][1], rows[-1][0])
