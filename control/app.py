"""The control-plane ASGI app (served by Granian with `factory=True`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control import db, settings
from control.analytics import api as analytics_api
from control.context import AppContext, RateLimitHeaders, context
from control.conversions import api as conversions_api
from control.conversions import tasks as conversion_tasks
from control.conversions.reports import api as conversion_reports_api
from control.destinations import api as destinations_api
from control.destinations.hooks import api as hooks_api
from control.domains import api as domains_api
from control.domains.verify import dns_resolver
from control.errors import ApiError
from control.events import api as events_api
from control.http import json_response, on_api_error, on_http_exception, on_unexpected
from control.internal import api as internal_api
from control.keys import api as keys_api
from control.links import api as links_api
from control.links import io_api, qr_api
from control.openapi import document
from control.presets import api as presets_api
from control.ratelimit import KeyLimiter
from control.spaces import api as spaces_api
from control.tags import api as tags_api
from control.webhooks import api as webhooks_api
from control.workspaces import api as workspaces_api

OPERATIONS = [
    # Before the links routes: /api/v1/links/{link_id} would take .../import and .../export.
    *io_api.OPERATIONS,
    *links_api.OPERATIONS,
    *qr_api.OPERATIONS,
    *keys_api.OPERATIONS,
    *workspaces_api.OPERATIONS,
    *events_api.OPERATIONS,
    *domains_api.OPERATIONS,
    *tags_api.OPERATIONS,
    *spaces_api.OPERATIONS,
    *presets_api.OPERATIONS,
    *analytics_api.OPERATIONS,
    *conversion_reports_api.OPERATIONS,
    *webhooks_api.OPERATIONS,
    *destinations_api.OPERATIONS,
    *hooks_api.OPERATIONS,
    *conversions_api.OPERATIONS,
]
log = logging.getLogger("ricochet.control")


async def livez(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    ctx = context(request)
    try:
        async with ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # readiness reports, it does not crash
        return json_response({"status": "unavailable", "database": str(exc)[:200]}, 503)
    return json_response({"status": "ok"})


def create_app(config: settings.ControlSettings | None = None, resolver: Any = None) -> Starlette:
    """`resolver` answers TXT look-ups for domain verification (default: DNS)."""
    cfg = config or settings.load()
    spec = document(OPERATIONS, "Ricochet management API", "1")

    async def openapi(request: Request) -> Response:
        return json_response(spec)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, AppContext]]:
        engine = db.create_engine(cfg.sqlalchemy_url, cfg.db_pool_size)
        limiter = (
            KeyLimiter(cfg.redis_url, cfg.rate_limit_per_minute)
            if cfg.rate_limit_per_minute > 0
            else None
        )
        ctx = AppContext(
            cfg, engine, db.session_factory(engine), limiter, resolver or dns_resolver()
        )
        try:
            # Pending conversion attribution is settled in the background (docs/adr/0008).
            async with conversion_tasks.settling(ctx.sessions, cfg):
                yield {"ctx": ctx}
        finally:
            if limiter is not None:
                await limiter.close()
            await engine.dispose()

    routes = [
        Route("/_/livez", livez),
        Route("/_/readyz", readyz),
        Route("/api/v1/openapi.json", openapi),
        *(op.route() for op in OPERATIONS),
        *internal_api.routes(),  # not in OPERATIONS: kept out of the OpenAPI document
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RateLimitHeaders)],
        lifespan=lifespan,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
    )
