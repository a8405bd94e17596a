"""HTTP handlers of the analytics API (scope `analytics:read`): authorize, decode, call the
service, encode. Ranges, defaults and filters are described in `service`."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from control import csvexport
from control.analytics import service
from control.analytics.repository import EXPORT_COLUMNS
from control.analytics.schemas import (
    Breakdown,
    BreakdownQuery,
    ExportQuery,
    LinksQuery,
    LinkTotalsPage,
    Timeseries,
    TimeseriesQuery,
)
from control.context import authorize
from control.http import json_response, read_query
from control.openapi import Operation

SCOPE = "analytics:read"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def analytics_timeseries(request: Request) -> Response:
    ctx, principal = await authorize(request, SCOPE)
    query = read_query(request, TimeseriesQuery)
    async with ctx.sessions.begin() as session:
        answer = await service.timeseries(session, principal.workspace_id, query, _now())
    return json_response(answer)


async def analytics_breakdown(request: Request) -> Response:
    ctx, principal = await authorize(request, SCOPE)
    query = read_query(request, BreakdownQuery)
    async with ctx.sessions.begin() as session:
        answer = await service.breakdown(session, principal.workspace_id, query, _now())
    return json_response(answer)


async def analytics_links(request: Request) -> Response:
    ctx, principal = await authorize(request, SCOPE)
    query = read_query(request, LinksQuery)
    async with ctx.sessions.begin() as session:
        answer = await service.links(session, principal.workspace_id, query, _now())
    return json_response(answer)


async def analytics_export(request: Request) -> Response:
    ctx, principal = await authorize(request, SCOPE)
    query = read_query(request, ExportQuery)
    async with ctx.sessions.begin() as session:
        plan = await service.plan_export(session, principal.workspace_id, query, _now())
    pages = service.export_pages(ctx.sessions, plan)
    filename = f"clicks-{plan.start:%Y%m%dT%H%M%SZ}-{plan.end:%Y%m%dT%H%M%SZ}.csv"
    return await csvexport.response(pages, EXPORT_COLUMNS, filename)


_FILTERS = "Scope: `link_id`, `tag`, `space`, `domain` (all links of the workspace if none)"
OPERATIONS = [
    Operation(
        "GET",
        "/api/v1/analytics/timeseries",
        analytics_timeseries,
        "Clicks and QR scans per hour or UTC day over [start, end), zero-filled; bots only "
        f"with bots=true. {_FILTERS}",
        SCOPE,
        response=Timeseries,
        errors=(400, 404, 422),
        query=TimeseriesQuery,
    ),
    Operation(
        "GET",
        "/api/v1/analytics/breakdown",
        analytics_breakdown,
        "Clicks per value of one dimension (country, device, browser, os, referrer_host, "
        f"social, utm_*, touch), most first. {_FILTERS}",
        SCOPE,
        response=Breakdown,
        errors=(400, 404, 422),
        query=BreakdownQuery,
    ),
    Operation(
        "GET",
        "/api/v1/analytics/links",
        analytics_links,
        f"Per-link clicks, QR scans and bots over the range, most clicks first. {_FILTERS}",
        SCOPE,
        response=LinkTotalsPage,
        errors=(400, 404, 422),
        query=LinksQuery,
    ),
    Operation(
        "GET",
        "/api/v1/analytics/export",
        analytics_export,
        "Every click in [start, end) as CSV, oldest first, streamed as an attachment (no "
        f"user agents, referrers or addresses: derived fields only). {_FILTERS}",
        SCOPE,
        errors=(400, 404, 422),
        query=ExportQuery,
        media_types=("text/csv",),
    ),
]
