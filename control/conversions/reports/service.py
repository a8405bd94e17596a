"""Conversion reports: counts by type, value by currency, attribution rate, per link, tag
and A/B variant, and the CSV export. Ranges and scope filters work as in the analytics API
(control/analytics/service.py): rounded out to whole hours, default the last 7 days, at
most two years; `link_id`, `tag`, `space`, `domain` select links by what they are now.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import uuid
from collections import defaultdict
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control.analytics import repository as clicks_repository
from control.analytics import service as analytics
from control.analytics.repository import Scope
from control.conversions.reports import repository
from control.conversions.reports.repository import NAMES, POSITIVE
from control.conversions.reports.schemas import (
    AttributionCounts,
    ConversionExportQuery,
    ConversionSummary,
    CurrencyValue,
    LinkConversions,
    LinkConversionsPage,
    PagedReportQuery,
    ReportQuery,
    TagConversions,
    TagConversionsPage,
    TypeCounts,
    VariantConversions,
    VariantConversionsReport,
)
from control.errors import ApiError

EXPORT_PAGE = 5000
ZERO = decimal.Decimal(0)
# Value columns of CurrencyValue by event name.
_VALUE_FIELD = {
    "lead": "leads",
    "sale": "sales",
    "refund": "refunds",
    "cancellation": "cancellations",
    "reversal": "reversals",
}


def rate(positives: int, clicks: int) -> float | None:
    return round(positives / clicks, 4) if clicks else None


def money(value: decimal.Decimal) -> str:
    return format(value, "f")


def currency_values(sums: Iterable[tuple[str, str, decimal.Decimal]]) -> list[CurrencyValue]:
    """(currency, event name, sum) rows as one entry per currency, net = sales - negatives,
    currencies in alphabetical order."""
    by_currency: dict[str, dict[str, decimal.Decimal]] = defaultdict(dict)
    for currency, name, total in sums:
        by_currency[currency][name] = by_currency[currency].get(name, ZERO) + total
    out = []
    for currency in sorted(by_currency):
        got = by_currency[currency]
        net = got.get("sale", ZERO) - sum(
            (got.get(n, ZERO) for n in ("refund", "cancellation", "reversal")), ZERO
        )
        fields = {_VALUE_FIELD[n]: money(got.get(n, ZERO)) for n in NAMES}
        out.append(CurrencyValue(currency=currency, net=money(net), **fields))
    return out


def counts(values: Iterable[int]) -> TypeCounts:
    return TypeCounts(**dict(zip(NAMES, values, strict=True)))


def _positives(c: TypeCounts) -> int:
    return sum(getattr(c, name) for name in POSITIVE)


async def _setup(
    session: AsyncSession, workspace_id: uuid.UUID, query: ReportQuery, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime, Scope | None]:
    start, end = analytics.resolve_range(query.start, query.end, now)
    return start, end, await analytics.resolve_scope(session, workspace_id, query)


# -- summary -------------------------------------------------------------------------------------


async def summary(
    session: AsyncSession, workspace_id: uuid.UUID, query: ReportQuery, now: dt.datetime
) -> ConversionSummary:
    start, end, scope = await _setup(session, workspace_id, query, now)
    by_name: dict[str, int] = defaultdict(int)
    by_status: dict[str, int] = defaultdict(int)
    positives_attributed = clicks = 0
    values: list[CurrencyValue] = []
    if scope is not None:
        for name, status, n in await repository.summary_counts(session, scope, start, end):
            by_name[name] += n
            by_status[status] += n
            if status == "attributed" and name in POSITIVE:
                positives_attributed += n
        values = currency_values(await repository.summary_values(session, scope, start, end))
        clicks = (await clicks_repository.totals(session, scope, start, end))[0]
    return ConversionSummary(
        start=start,
        end=end,
        clicks=clicks,
        conversions=TypeCounts(**by_name),
        attribution=AttributionCounts(**by_status),
        attribution_rate=rate(positives_attributed, clicks),
        values=values,
    )


# -- per link and per tag ------------------------------------------------------------------------


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


def _grouped(
    rows: list[tuple[Any, str, str, decimal.Decimal]],
) -> dict[Any, list[tuple[str, str, decimal.Decimal]]]:
    out: dict[Any, list[tuple[str, str, decimal.Decimal]]] = defaultdict(list)
    for key, currency, name, total in rows:
        out[key].append((currency, name, total))
    return out


async def links(
    session: AsyncSession, workspace_id: uuid.UUID, query: PagedReportQuery, now: dt.datetime
) -> LinkConversionsPage:
    """Links with clicks or attributed outcomes in the range, most leads and sales first.
    The cursor is an offset into that order."""
    start, end, scope = await _setup(session, workspace_id, query, now)
    offset = _decode_offset(query.cursor)
    found: list[tuple[Any, ...]] = []
    sums: dict[Any, list[tuple[str, str, decimal.Decimal]]] = {}
    if scope is not None:
        found = await repository.link_page(
            session, scope, start, end, offset=offset, limit=query.limit + 1
        )
        keys = [row[0] for row in found[: query.limit]]
        sums = _grouped(
            await repository.values_by(session, scope, start, end, by="link", keys=keys)
        )
    data = []
    for link_id, slug, domain, deleted, clicks, *numbers in found[: query.limit]:
        c = counts(int(n) for n in numbers)
        data.append(
            LinkConversions(
                link_id=str(link_id),
                slug=slug,
                domain=domain,
                deleted=bool(deleted),
                clicks=int(clicks),
                conversions=c,
                attribution_rate=rate(_positives(c), int(clicks)),
                values=currency_values(sums.get(link_id, [])),
            )
        )
    more = len(found) > query.limit
    return LinkConversionsPage(
        start=start,
        end=end,
        data=data,
        next_cursor=_encode_offset(offset + query.limit) if more else None,
    )


async def tags(
    session: AsyncSession, workspace_id: uuid.UUID, query: PagedReportQuery, now: dt.datetime
) -> TagConversionsPage:
    """Per tag of the scope's links (a link counts under each of its tags now)."""
    start, end, scope = await _setup(session, workspace_id, query, now)
    offset = _decode_offset(query.cursor)
    found: list[tuple[Any, ...]] = []
    sums: dict[Any, list[tuple[str, str, decimal.Decimal]]] = {}
    if scope is not None:
        found = await repository.tag_page(
            session, scope, start, end, offset=offset, limit=query.limit + 1
        )
        keys = [row[0] for row in found[: query.limit]]
        sums = _grouped(await repository.values_by(session, scope, start, end, by="tag", keys=keys))
    data = []
    for tag_id, name, clicks, *numbers in found[: query.limit]:
        c = counts(int(n) for n in numbers)
        data.append(
            TagConversions(
                tag=name,
                clicks=int(clicks),
                conversions=c,
                attribution_rate=rate(_positives(c), int(clicks)),
                values=currency_values(sums.get(tag_id, [])),
            )
        )
    more = len(found) > query.limit
    return TagConversionsPage(
        start=start,
        end=end,
        data=data,
        next_cursor=_encode_offset(offset + query.limit) if more else None,
    )


# -- per A/B variant ------------------------------------------------------------------------------


def _variant_destination(routing: dict[str, Any], index: int) -> str | None:
    variants = routing.get("variants")
    if isinstance(variants, list) and 0 <= index < len(variants):
        entry = variants[index]
        if isinstance(entry, dict) and isinstance(entry.get("destination"), str):
            return str(entry["destination"])
    return None


async def variants(
    session: AsyncSession, workspace_id: uuid.UUID, query: ReportQuery, now: dt.datetime
) -> VariantConversionsReport:
    """Per (link, variant) of A/B-routed clicks: the links with attributed outcomes from a
    variant in the range (and the `link_id` asked for), every variant with clicks listed."""
    start, end, scope = await _setup(session, workspace_id, query, now)
    if scope is None:
        return VariantConversionsReport(start=start, end=end, data=[])
    outcome_counts = {
        (link_id, variant): numbers
        for link_id, variant, numbers in await repository.variant_counts(session, scope, start, end)
    }
    link_ids = {link_id for link_id, _ in outcome_counts}
    if query.link_id is not None:
        link_ids.add(query.link_id)
    click_counts = {
        (link_id, variant): n
        for link_id, variant, n in await repository.variant_clicks(
            session, workspace_id, link_ids, start, end
        )
    }
    keys = sorted(set(outcome_counts) | set(click_counts), key=lambda k: (str(k[0]), k[1]))
    sums = _grouped(await repository.values_by(session, scope, start, end, by="variant", keys=keys))
    info = await repository.links_info(session, workspace_id, link_ids)
    data = []
    for link_id, variant in keys:
        if link_id not in info:
            continue
        slug, domain, routing = info[link_id]
        c = counts(outcome_counts.get((link_id, variant), [0] * len(NAMES)))
        clicks = click_counts.get((link_id, variant), 0)
        data.append(
            VariantConversions(
                link_id=str(link_id),
                slug=slug,
                domain=domain,
                variant=variant,
                destination=_variant_destination(routing, variant),
                clicks=clicks,
                conversions=c,
                attribution_rate=rate(_positives(c), clicks),
                values=currency_values(sums.get((link_id, variant), [])),
            )
        )
    return VariantConversionsReport(start=start, end=end, data=data)


# -- export ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    scope: Scope | None
    start: dt.datetime
    end: dt.datetime


async def plan_export(
    session: AsyncSession, workspace_id: uuid.UUID, query: ConversionExportQuery, now: dt.datetime
) -> Export:
    start, end = analytics.resolve_range(query.start, query.end, now, rounding=None)
    return Export(await analytics.resolve_scope(session, workspace_id, query), start, end)


async def export_pages(
    sessions: async_sessionmaker[AsyncSession], plan: Export, page: int | None = None
) -> AsyncGenerator[list[tuple[Any, ...]]]:
    """The plan's outcomes by (event_time, id), a page per short transaction (the first
    may be empty), keyset-paged so memory stays flat and no transaction spans the download."""
    page = page or EXPORT_PAGE
    if plan.scope is None:
        yield []
        return
    after: tuple[dt.datetime, uuid.UUID] | None = None
    while True:
        async with sessions.begin() as session:
            rows = await repository.export_page(
                session, plan.scope, plan.start, plan.end, after=after, limit=page
            )
        yield rows
        if len(rows) < page:
            return
        after = (rows[-1][3], rows[-1][0])
