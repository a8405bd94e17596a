"""HTTP handlers of the conversion reports (analytics API, scope `analytics:read`)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from control import csvexport
from control.context import authorize
from control.conversions import token
from control.conversions.reports import service
from control.conversions.reports.repository import EXPORT_COLUMNS
from control.conversions.reports.schemas import (
    ConversionExportQuery,
    ConversionSummary,
    LinkConversionsPage,
    PagedReportQuery,
    ReportQuery,
    TagConversionsPage,
    VariantConversionsReport,
)
from control.http import json_response, read_query
from control.openapi import Operation

SCOPE = "analytics:read"
_CLICK = EXPORT_COLUMNS.index("click_id")
_VARIANT = EXPORT_COLUMNS.index("variant")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def conversions_summary(request: Request) -> Response:
    ctx, principal = await authorize(request, SCOPE)
    query = read_query(request, ReportQuery)
    async with ctx.sessions.begin() as session:
        answer = await service.summary(session, principal.workspace_id, query, _now())
    return json_response(answer)


async def conversions_by_link(request: Request) -> Response:
    ctx, principal = await authorize(request, SCOPE)
    query = read_query(request, PagedReportQuery)
    async with ctx.sessions.begin() as session:
        answer = await service.links(session, principal.workspace_id, query, _now())
    return json_response(answer)


async def conversions_by_tag(request: Request) -> Response:
    ctx, principal = await authorize(request, SCOPE)
    query = read_query(request, PagedReportQuery)
    async with ctx.sessions.begin() as session:
        answer = await service.tags(session, principal.workspace_id, query, _now())
    return json_response(answer)


async def conversions_by_variant(request: Request) -> Response:
    ctx, principal = await authorize(request, SCOPE)
    query = read_query(request, ReportQuery)
    async with ctx.sessions.begin() as session:
        answer = await service.variants(session, principal.workspace_id, query, _now())
    return json_response(answer)


def _row(row: Sequence[Any]) -> list[str]:
    cells = list(row)
    if isinstance(cells[_CLICK], uuid.UUID):
        cells[_CLICK] = token.format_token(cells[_CLICK])
    if cells[_VARIANT] == -1:
        cells[_VARIANT] = None
    return csvexport.cells(cells)


async def conversions_export(request: Request) -> Response:
    ctx, principal = await authorize(request, SCOPE)
    query = read_query(request, ConversionExportQuery)
    async with ctx.sessions.begin() as session:
        plan = await service.plan_export(session, principal.workspace_id, query, _now())
    pages = service.export_pages(ctx.sessions, plan)
    filename = f"conversions-{plan.start:%Y%m%dT%H%M%SZ}-{plan.end:%Y%m%dT%H%M%SZ}.csv"
    return await csvexport.response(pages, EXPORT_COLUMNS, filename, _row)


_SCOPE = (
    "Range by `event_time` over [start, end) (default the last 7 days); scope `link_id`, "
    "`tag`, `space`, `domain` (attributed outcomes of those links only; none: the whole "
    "workspace, unattributed outcomes included)"
)
OPERATIONS = [
    Operation(
        "GET",
        "/api/v1/analytics/conversions",
        conversions_summary,
        "Conversions by type and attribution status, value by currency (net of refunds, "
        f"cancellations and reversals), clicks and attribution rate. {_SCOPE}",
        SCOPE,
        response=ConversionSummary,
        errors=(400, 404, 422),
        query=ReportQuery,
    ),
    Operation(
        "GET",
        "/api/v1/analytics/conversions/links",
        conversions_by_link,
        "Per link: clicks, attributed conversions by type, attribution rate and value by "
        f"currency; most leads and sales first (`limit`, offset `cursor`). {_SCOPE}",
        SCOPE,
        response=LinkConversionsPage,
        errors=(400, 404, 422),
        query=PagedReportQuery,
    ),
    Operation(
        "GET",
        "/api/v1/analytics/conversions/tags",
        conversions_by_tag,
        "Per tag, as per link (a link counts under each of its tags). " + _SCOPE,
        SCOPE,
        response=TagConversionsPage,
        errors=(400, 404, 422),
        query=PagedReportQuery,
    ),
    Operation(
        "GET",
        "/api/v1/analytics/conversions/variants",
        conversions_by_variant,
        "Per A/B variant of the links with attributed conversions from a variant (and the "
        f"`link_id` asked for): clicks, conversions, rate and value. {_SCOPE}",
        SCOPE,
        response=VariantConversionsReport,
        errors=(400, 404, 422),
        query=ReportQuery,
    ),
    Operation(
        "GET",
        "/api/v1/analytics/conversions/export",
        conversions_export,
        "Every outcome in [start, end) as CSV, by event_time, streamed as an attachment "
        "(values as sent, attribution, link, variant, click token). " + _SCOPE,
        SCOPE,
        errors=(400, 404, 422),
        query=ConversionExportQuery,
        media_types=("text/csv",),
    ),
]
