"""The redirect edge ASGI app (served by Granian with `factory=True`).

Invariant: nothing here talks to PostgreSQL or imports `control`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from edge import settings
from edge.cache import LocalCache
from edge.capture import ClickCapture
from edge.resolve import Resolver
from shared.clicks import ClickEvent
from shared.hosts import normalise_host
from shared.ids import uuid7

_NOT_FOUND = PlainTextResponse("Not found\n", 404, headers={"x-robots-tag": "noindex"})


@dataclass(frozen=True)
class EdgeState:
    settings: settings.EdgeSettings
    redis: Redis
    resolver: Resolver
    capture: ClickCapture


async def redirect(request: Request) -> Response:
    state: EdgeState = request.state.edge
    host = normalise_host(request.headers.get("host", ""))
    record = await state.resolver.resolve(host, request.path_params["slug"].lower())
    if record is None:
        return _NOT_FOUND
    # HEAD is what link unfurlers and uptime checks send; only GET is a visit.
    if state.settings.capture and request.method == "GET":
        headers = request.headers
        state.capture.record(
            ClickEvent(
                id=uuid7().hex,
                ts_ms=time.time_ns() // 1_000_000,
                link_id=record.link_id,
                workspace_id=record.workspace_id,
                domain_id=record.domain_id,
                touch="qr" if request.query_params.get("qr") == "1" else "link",
                user_agent=headers.get("user-agent", ""),
                referrer=headers.get("referer", ""),
            )
        )
    return Response(
        status_code=record.status,
        headers={
            "location": record.destination,
            # A cached 302 would hide destination changes and clicks; keep it out of caches.
            "cache-control": "private, no-cache",
            "x-robots-tag": "noindex",
        },
    )


async def livez(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state: EdgeState = request.state.edge
    try:
        await state.redis.ping()
    except Exception as exc:  # readiness reports, it does not crash
        return JSONResponse({"status": "degraded", "redis": str(exc)[:200]}, 503)
    return JSONResponse({"status": "ok", "buffered_clicks": len(state.capture.buffer)})


def create_app(config: settings.EdgeSettings | None = None) -> Starlette:
    cfg = config or settings.load()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, EdgeState]]:
        redis = Redis.from_url(
            cfg.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
        )
        cache = LocalCache(cfg.cache_size, cfg.cache_ttl_s, cfg.negative_ttl_s)
        resolver = Resolver(
            redis, cache, normalise_host(cfg.default_domain), cfg.fallback_to_default_domain
        )
        capture = ClickCapture(
            redis, cfg.click_shards, cfg.capture_batch, cfg.capture_flush_ms, cfg.capture_buffer
        )
        tasks = [
            asyncio.create_task(capture.run()),
            asyncio.create_task(resolver.listen_invalidations()),
        ]
        try:
            yield {"edge": EdgeState(cfg, redis, resolver, capture)}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await capture.drain()
            await redis.aclose()

    return Starlette(
        routes=[
            Route("/_/livez", livez),
            Route("/_/readyz", readyz),
            Route("/{slug}", redirect, methods=["GET", "HEAD"]),
        ],
        lifespan=lifespan,
    )
