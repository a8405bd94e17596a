"""The redirect edge: a raw ASGI fast path for `GET /<slug>`, Starlette for the rest.

The fast path does only what a redirect needs — read a few headers, resolve from the
worker's cache, decide, append the click, answer — which keeps it close to a bare ASGI app.
Password POSTs and the operational endpoints go through Starlette routes.
Invariant: nothing here talks to PostgreSQL or imports `control`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from edge import behaviour, pages, password, settings, unlock, visitor
from edge.cache import LocalCache
from edge.capture import ClickCapture
from edge.ids import ClickIds
from edge.metrics import Counters, Exporter
from edge.resolve import ControlCap, ControlClient, Resolver, Unavailable
from edge.spool import Spool
from shared.clicks import ClickEvent
from shared.hosts import normalise_host, valid_host
from shared.records import LinkRecord
from shared.slugs import slug_shaped

log = logging.getLogger("ricochet.edge")
SHUTDOWN_WAIT_S = 2.0
VISITOR_COOKIE = "ric_vid"
_REDIRECT_HEADERS = [
    # A cached redirect would hide destination changes and clicks; an indexed one would
    # put the short link in search results.
    (b"cache-control", b"private, no-store"),
    (b"x-robots-tag", b"noindex, nofollow"),
    (b"content-length", b"0"),
]
_HTML = (b"content-type", b"text/html; charset=utf-8")


@dataclass
class EdgeState:
    settings: settings.EdgeSettings
    redis: Redis
    resolver: Resolver
    capture: ClickCapture
    countries: visitor.Countries
    attempts: password.Attempts
    counters: Counters
    exporter: Exporter
    ids: ClickIds
    secret: bytes
    control: ControlClient | None


class Visit:
    """The few request facts a redirect needs, read from the raw ASGI scope in one pass."""

    __slots__ = (
        "cookie",
        "country",
        "forwarded_for",
        "forwarded_proto",
        "host",
        "peer",
        "query",
        "referer",
        "scheme",
        "user_agent",
    )

    def __init__(self, scope: Scope, country_header: bytes | None) -> None:
        self.host = self.user_agent = self.referer = self.cookie = ""
        self.country: str | None = None
        self.forwarded_for: str | None = None
        self.forwarded_proto: str | None = None
        for name, value in scope["headers"]:
            if name == b"host":
                self.host = value.decode("latin-1")
            elif name == b"user-agent":
                self.user_agent = value.decode("latin-1")
            elif name == b"referer":
                self.referer = value.decode("latin-1")
            elif name == b"cookie":
                self.cookie = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                self.forwarded_for = value.decode("latin-1")
            elif name == b"x-forwarded-proto":
                self.forwarded_proto = value.decode("latin-1")
            elif name == country_header:
                self.country = value.decode("latin-1")
        client = scope.get("client")
        self.peer: str | None = client[0] if client else None
        self.query: bytes = scope.get("query_string", b"")
        self.scheme: str = scope.get("scheme", "http")

    def cookie_value(self, name: str) -> str | None:
        if not self.cookie:
            return None
        for part in self.cookie.split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None


class Edge:
    """The ASGI application Granian serves."""

    def __init__(self, cfg: settings.EdgeSettings) -> None:
        self.cfg = cfg
        self.state: EdgeState | None = None
        self.country_header = cfg.country_header.lower().encode() if cfg.country_header else None
        self._hosts: dict[str, str] = {}
        self.starlette = Starlette(
            routes=[
                Route("/_/livez", livez),
                Route("/_/readyz", readyz),
                Route("/_/metrics", metrics),
                Route("/{slug}", unlock.password_post, methods=["POST"]),
            ],
            lifespan=self.lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if (
                (method == "GET" or method == "HEAD")
                and path.count("/") == 1
                and len(path) > 1
                and path[1] != "_"
            ):
                await self.redirect(scope, send, path[1:], method == "GET")
                return
        await self.starlette(scope, receive, send)

    async def redirect(self, scope: Scope, send: Send, raw_slug: str, is_get: bool) -> None:
        st = self.state
        assert st is not None
        visit = Visit(scope, self.country_header)
        domain = self._hosts.get(visit.host)
        if domain is None:
            host = normalise_host(visit.host)
            if not valid_host(host):  # no Host at all, or one no domain can have
                st.counters.bad_requests += 1
                await _page(send, 400, pages.BAD_REQUEST, is_get)
                return
            domain = st.resolver.domain(host)
            if len(self._hosts) < 1024:  # a site serves few host names; never grow unbounded
                self._hosts[visit.host] = domain
        if not slug_shaped(raw_slug):  # `/.env`, `/wp-login.php`: no link is called that
            st.counters.not_found += 1
            await _page(send, 404, pages.NOT_FOUND, is_get)
            return
        slug = raw_slug.lower()
        try:
            record = await st.resolver.lookup(domain, slug)
        except Unavailable:
            st.counters.unavailable += 1
            await _page(send, 503, pages.UNAVAILABLE, is_get, [(b"retry-after", b"2")])
            return
        if record is None:
            st.counters.not_found += 1
            await _page(send, 404, pages.NOT_FOUND, is_get)
            return
        if record.taken_down:
            st.counters.gone += 1
            await _page(send, 410, pages.TAKEN_DOWN, is_get)
            return
        if behaviour.expired(record, time.time_ns() // 1_000_000):
            st.counters.gone += 1
            if record.expired_url:
                await _redirect(send, 302, record.expired_url, [])
            else:
                await _page(send, 410, pages.EXPIRED, is_get)
            return
        if record.password_hash and not password.cookie_valid(
            st.secret, record, visit.cookie_value(password.cookie_name(record))
        ):
            st.counters.password_prompts += 1
            await _page(send, 200, pages.password_form(scope["path"]), is_get)
            return
        await self.answer(st, send, record, visit, is_get)

    async def answer(
        self, st: EdgeState, send: Send, record: LinkRecord, visit: Visit, is_get: bool
    ) -> None:
        extra: list[tuple[bytes, bytes]] = []
        # Without trusted proxies, nothing more per request: the socket peer comes from the
        # server, already an address (ingest copes with the odd malformed one anyway).
        cidrs = self.cfg.trusted_proxies
        trusted = visitor.proxies(cidrs) if cidrs else None
        ip = trusted.client(visit.peer, visit.forwarded_for) if trusted else visit.peer
        visitor_id = ""
        if record.variants:
            visitor_id = visit.cookie_value(VISITOR_COOKIE) or ""
            if not visitor_id:
                visitor_id = secrets.token_hex(8)
                https = visitor.is_https(visit.scheme, visit.peer, visit.forwarded_proto, trusted)
                extra.append(
                    (
                        b"set-cookie",
                        f"{VISITOR_COOKIE}={visitor_id}; Max-Age=31536000; "
                        f"Path=/; HttpOnly; SameSite=Lax{'; Secure' if https else ''}".encode(),
                    )
                )
        country = visitor.header_country(visit.country) if self.country_header else ""
        if record.countries and not country:
            country = st.countries.lookup(ip)  # loads the GeoIP table on first need
        forwarded, qr = behaviour.forwarded_params(visit.query)
        platform = visitor.platform(visit.user_agent) if record.devices else "desktop"
        choice = behaviour.choose(record, country, platform, visitor_id)
        click_id = st.ids.new()
        location, tracked = behaviour.finish(choice.url, record, forwarded, click_id)
        if is_get and self.cfg.capture:
            utm = record.utm or {}
            st.capture.record(
                ClickEvent(
                    id=click_id,
                    ts_ms=time.time_ns() // 1_000_000,
                    link_id=record.link_id,
                    workspace_id=record.workspace_id,
                    domain_id=record.domain_id,
                    touch="qr" if qr else "link",
                    user_agent=visit.user_agent[:512],
                    referrer=visit.referer[:1024],
                    country=country,
                    ip=ip or "",
                    variant=choice.variant,
                    utm_source=utm.get("source", ""),
                    utm_medium=utm.get("medium", ""),
                    utm_campaign=utm.get("campaign", ""),
                    tracked=tracked,
                )
            )
        st.counters.redirects += 1
        await _redirect(send, record.status, location, extra)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[dict[str, Any]]:
        cfg = self.cfg
        redis = Redis.from_url(
            cfg.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
        )
        counters = Counters()
        control = (
            ControlClient(cfg.control_url, cfg.internal_token, cfg.resolve_timeout_s)
            if cfg.control_url and cfg.internal_token
            else None
        )
        cache = LocalCache(
            cfg.cache_size, cfg.cache_ttl_s, cfg.negative_ttl_s, cfg.negative_cache_size
        )
        default = normalise_host(cfg.default_domain)
        resolver = Resolver(
            redis,
            cache,
            counters,
            {alias: default for alias in cfg.aliases() if alias != default},
            control,
            ControlCap(cfg.control_lookups_per_s, cfg.control_lookup_concurrency),
        )
        spool = Spool(cfg.spool_dir, f"{socket.gethostname()}-{os.getpid()}")
        capture = ClickCapture(
            redis,
            spool,
            counters,
            shards=cfg.click_shards,
            batch=cfg.capture_batch,
            flush_ms=cfg.capture_flush_ms,
            limit=cfg.capture_buffer,
        )
        if cfg.edge_secret is None:
            log.warning("RICOCHET_EDGE_SECRET is not set: password cookies hold per worker only")
        state = EdgeState(
            settings=cfg,
            redis=redis,
            resolver=resolver,
            capture=capture,
            countries=visitor.Countries(),
            attempts=password.Attempts(redis, cfg.password_attempts),
            counters=counters,
            exporter=Exporter(counters),
            ids=ClickIds(),
            secret=(cfg.edge_secret or secrets.token_hex(32)).encode(),
            control=control,
        )
        self.state = state
        # Everything made so far lives as long as the worker: keep it out of every later
        # collection, so a full one walks only what requests left behind.
        gc.collect()
        gc.freeze()
        tasks = [
            asyncio.create_task(capture.run()),
            asyncio.create_task(resolver.listen_invalidations()),
            asyncio.create_task(_sync_metrics(state)),
        ]
        try:
            yield {"edge": state}
        finally:
            capture.stopping = resolver.stopping = True
            for task in tasks:
                task.cancel()
            # Bounded, so a task that swallowed its cancel cannot hang shutdown; the buffer
            # is drained below whatever the tasks do.
            _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_S)
            if stuck:
                log.warning("shutdown: %d background tasks did not stop in time", len(stuck))
            await capture.drain()
            state.exporter.sync(len(capture.buffer), len(cache))
            state.exporter.worker_exit()
            if control is not None:
                await control.aclose()
            await redis.aclose()


async def _sync_metrics(st: EdgeState) -> None:
    while True:
        await asyncio.sleep(1.0)
        st.exporter.sync(len(st.capture.buffer), len(st.resolver.cache))


async def _redirect(
    send: Send, status: int, location: str, extra: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"location", location.encode()), *_REDIRECT_HEADERS, *extra],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _page(
    send: Send,
    status: int,
    body: bytes,
    is_get: bool,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        _HTML,
        (b"cache-control", b"private, no-store"),
        (b"x-robots-tag", b"noindex, nofollow"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body if is_get else b""})


def _state(request: Request) -> EdgeState:
    state: EdgeState = request.state.edge
    return state


async def livez(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    st = _state(request)
    body: dict[str, Any] = {
        "buffered_clicks": len(st.capture.buffer),
        "invalidations": st.resolver.subscribed,
        "spooling": st.capture.redis_down,
    }
    try:
        await st.redis.ping()
    except Exception as exc:  # readiness reports, it does not crash
        return JSONResponse({"status": "degraded", "redis": str(exc)[:200], **body}, 503)
    return JSONResponse({"status": "ok", **body})


async def metrics(request: Request) -> Response:
    st = _state(request)
    st.exporter.sync(len(st.capture.buffer), len(st.resolver.cache))
    return Response(st.exporter.render(), media_type="text/plain; version=0.0.4")


def create_app(config: settings.EdgeSettings | None = None) -> Edge:
    return Edge(config or settings.load())
