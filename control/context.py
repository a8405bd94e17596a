"""Per-process resources, created in the lifespan and handed to handlers as typed state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control.keys import service as keys
from control.keys.service import Principal
from control.ratelimit import KeyLimiter
from control.settings import ControlSettings


@dataclass(frozen=True)
class AppContext:
    settings: ControlSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    limiter: KeyLimiter | None = None
    # Looks up TXT records for domain verification; tests pass their own.
    resolver: Any = None


def context(request: Request) -> AppContext:
    ctx: AppContext = request.state.ctx
    return ctx


async def authorize(request: Request, scope: str) -> tuple[AppContext, Principal]:
    """Authenticate the bearer key (in its own short transaction), rate-limit, check `scope`."""
    ctx = context(request)
    async with ctx.sessions.begin() as session:
        principal = await keys.authenticate(
            session, ctx.settings.secret_key, request.headers.get("authorization")
        )
    if ctx.limiter is not None:
        request.state.ratelimit = await ctx.limiter.hit(str(principal.key_id))
    principal.require(scope)
    return ctx, principal


class RateLimitHeaders:
    """Adds the RateLimit headers `authorize` computed to whatever response follows.

    Pure ASGI (no BaseHTTPMiddleware): it only touches the response-start message.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = scope.get("state", {}).get("ratelimit")
                if headers:
                    present = {k for k, _ in message.get("headers", [])}
                    extra = [
                        (k.encode(), v.encode())
                        for k, v in headers.items()
                        if k.encode() not in present
                    ]
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
