"""Per-process resources, created in the lifespan and handed to handlers as typed state."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from control.keys import service as keys
from control.keys.service import Principal
from control.settings import ControlSettings


@dataclass(frozen=True)
class AppContext:
    settings: ControlSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


def context(request: Request) -> AppContext:
    ctx: AppContext = request.state.ctx
    return ctx


async def authorize(request: Request, scope: str) -> tuple[AppContext, Principal]:
    """Authenticate the bearer key (in its own short transaction) and check `scope`."""
    ctx = context(request)
    async with ctx.sessions.begin() as session:
        principal = await keys.authenticate(
            session, ctx.settings.secret_key, request.headers.get("authorization")
        )
    principal.require(scope)
    return ctx, principal
