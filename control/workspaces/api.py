"""HTTP handler of the workspace API: what any valid key may learn about itself."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from control.context import AppContext, context
from control.errors import Unauthorized
from control.http import json_response
from control.keys import repository as keys_repository
from control.keys import service as keys
from control.keys.service import Principal
from control.openapi import Operation
from control.workspaces import repository
from control.workspaces.schemas import CallingKey, WorkspaceOut


async def authenticate(request: Request) -> tuple[AppContext, Principal]:
    """`control.context.authorize` without a scope: any valid key may ask who it is."""
    ctx = context(request)
    async with ctx.sessions.begin() as session:
        principal = await keys.authenticate(
            session, ctx.settings.secret_key, request.headers.get("authorization")
        )
    if ctx.limiter is not None:
        request.state.ratelimit = await ctx.limiter.hit(str(principal.key_id))
    return ctx, principal


async def get_workspace(request: Request) -> Response:
    ctx, principal = await authenticate(request)
    async with ctx.sessions.begin() as session:
        workspace = await repository.get(session, principal.workspace_id)
        key = await keys_repository.get(session, principal.workspace_id, principal.key_id)
    if workspace is None or key is None:
        # Only if the row vanished after authentication, in its own transaction.
        raise Unauthorized.invalid()
    return json_response(
        WorkspaceOut(
            id=str(workspace.id),
            name=workspace.name,
            organization_id=str(workspace.organization_id),
            created_at=workspace.created_at,
            key=CallingKey(id=str(key.id), prefix=key.prefix, scopes=list(key.scopes)),
        )
    )


OPERATIONS = [
    Operation(
        "GET",
        "/api/v1/workspace",
        get_workspace,
        "Get the calling key's workspace and the key itself (any valid key, no scope needed)",
        response=WorkspaceOut,
        errors=(401,),
    ),
]
