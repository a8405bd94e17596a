"""HTTP handlers: installation tokens (managed with a workspace API key) and the REST-hook
routes Zapier, Make and n8n call with an installation token (`Authorization: Bearer rit_…`).

As for API keys, a created token is in the first answer only: the idempotency layer stores
the body with `token: null` (and a hook's body with `secret: null`).
"""

from __future__ import annotations

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from control import pagination
from control.context import AppContext, authorize, context
from control.destinations.hooks import repository, service, tokens
from control.destinations.hooks.schemas import (
    CreateInstallationToken,
    HookCreated,
    HookOut,
    HookPage,
    InstallationTokenCreated,
    InstallationTokenPage,
    ListHooks,
    ListInstallationTokens,
    Me,
    SampleQuery,
    Samples,
    Subscribe,
)
from control.destinations.hooks.service import Installation
from control.http import json_bytes, json_response, read_json, read_query
from control.idempotency import service as idempotency
from control.openapi import Operation

READ, WRITE = "webhooks:read", "webhooks:write"


async def authorize_installation(request: Request, scope: str) -> tuple[AppContext, Installation]:
    """Authenticate the installation token (its own short transaction), rate-limit, check."""
    ctx = context(request)
    async with ctx.sessions.begin() as session:
        who = await service.authenticate(
            session, ctx.settings.secret_key, request.headers.get("authorization")
        )
    if ctx.limiter is not None:
        request.state.ratelimit = await ctx.limiter.hit(str(who.token_id))
    who.require(scope)
    return ctx, who


# -- installation tokens (workspace API key) -----------------------------------------------


async def create_installation_token(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    data = await read_json(request, CreateInstallationToken)
    issued: list[tuple[InstallationTokenCreated, str]] = []

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        row, plaintext = await service.create_token(
            session, ctx.settings.secret_key, principal.workspace_id, data
        )
        out = service.to_out(row)
        redacted = InstallationTokenCreated(
            **msgspec.structs.asdict(out), token=None, token_redacted=True
        )
        issued.append((redacted, plaintext))
        return 201, json_bytes(redacted), f"/api/v1/installation-tokens/{row.id}"

    response = await idempotency.run(ctx, request, principal, work)
    if not idempotency.replayed(response):
        redacted, plaintext = issued[-1]
        body = msgspec.structs.replace(redacted, token=plaintext, token_redacted=False)
        response = json_response(body, 201, {"location": f"/api/v1/installation-tokens/{body.id}"})
    response.headers["cache-control"] = "no-store"
    return response


async def list_installation_tokens(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    query = read_query(request, ListInstallationTokens)
    async with ctx.sessions.begin() as session:
        rows = await repository.page(
            session,
            principal.workspace_id,
            before=pagination.decode(query.cursor),
            limit=query.limit,
        )
    return json_response(
        InstallationTokenPage(
            data=[service.to_out(r) for r in rows],
            next_cursor=pagination.next_cursor([r.id for r in rows], query.limit),
        )
    )


async def revoke_installation_token(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    async with ctx.sessions.begin() as session:
        await service.revoke_token(session, principal.workspace_id, request.path_params["token_id"])
    return Response(status_code=204)


# -- REST hooks (installation token) ------------------------------------------------------


async def hooks_me(request: Request) -> Response:
    ctx, who = await authorize_installation(request, tokens.READ)
    async with ctx.sessions.begin() as session:
        row = await repository.get(session, who.workspace_id, who.token_id)
    assert row is not None  # it authenticated a moment ago
    return json_response(
        Me(
            installation_id=str(who.token_id),
            workspace_id=str(who.workspace_id),
            platform=who.platform,
            name=row.name,
            scopes=list(who.scopes),
        )
    )


async def hook_samples(request: Request) -> Response:
    ctx, who = await authorize_installation(request, tokens.READ)
    query = read_query(request, SampleQuery)
    async with ctx.sessions.begin() as session:
        out = await service.sample_events(session, who, query.event, query.limit)
    return json_response(out)


async def subscribe_hook(request: Request) -> Response:
    ctx, who = await authorize_installation(request, tokens.WRITE)
    data = await read_json(request, Subscribe)
    issued: list[HookCreated] = []

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        out = await service.subscribe(session, ctx.settings, who, data)
        issued.append(out)
        redacted = msgspec.structs.replace(out, secret=None)
        return 201, json_bytes(redacted), f"/api/v1/hooks/{out.id}"

    response = await idempotency.run(ctx, request, who.principal(), work)
    if not idempotency.replayed(response):
        response = json_response(issued[-1], 201, {"location": f"/api/v1/hooks/{issued[-1].id}"})
    response.headers["cache-control"] = "no-store"
    return response


async def list_hooks(request: Request) -> Response:
    ctx, who = await authorize_installation(request, tokens.READ)
    query = read_query(request, ListHooks)
    async with ctx.sessions.begin() as session:
        page = await service.hooks(session, who, query)
    return json_response(page)


async def get_hook(request: Request) -> Response:
    ctx, who = await authorize_installation(request, tokens.READ)
    async with ctx.sessions.begin() as session:
        out = await service.hook(session, who, request.path_params["hook_id"])
    return json_response(out)


async def unsubscribe_hook(request: Request) -> Response:
    ctx, who = await authorize_installation(request, tokens.WRITE)
    async with ctx.sessions.begin() as session:
        await service.unsubscribe(session, who, request.path_params["hook_id"])
    return Response(status_code=204)


TOKEN_ID = {"token_id": "The installation token's id."}
HOOK_ID = {"hook_id": "The hook's id, as the subscribe answered."}
BY_TOKEN = "Called with an installation token (`Bearer rit_…`), not an API key. "  # noqa: S105

OPERATIONS = [
    Operation(
        "POST",
        "/api/v1/installation-tokens",
        create_installation_token,
        "Create an installation token for Zapier, Make or n8n: it can only manage its own "
        "REST hooks and read sample events. The `token` is in this response only",
        WRITE,
        body=CreateInstallationToken,
        response=InstallationTokenCreated,
        status=201,
        errors=(400, 415, 422),
    ),
    Operation(
        "GET",
        "/api/v1/installation-tokens",
        list_installation_tokens,
        "List installation tokens, newest first, revoked ones included",
        READ,
        response=InstallationTokenPage,
        errors=(400,),
        query=ListInstallationTokens,
    ),
    Operation(
        "DELETE",
        "/api/v1/installation-tokens/{token_id}",
        revoke_installation_token,
        "Revoke an installation token: it answers 401 from then on and its hooks stop "
        "(disabled, history kept)",
        WRITE,
        status=204,
        errors=(404,),
        params=TOKEN_ID,
    ),
    # /me and /samples before /{hook_id}, which would take them for ids.
    Operation(
        "GET",
        "/api/v1/hooks/me",
        hooks_me,
        BY_TOKEN + "Who this token is (to test a connection)",
        tokens.READ,
        security="installationToken",
        response=Me,
    ),
    Operation(
        "GET",
        "/api/v1/hooks/samples",
        hook_samples,
        BY_TOKEN + "Recent events of a type as hooks receive them, newest first, or one "
        "synthetic sample (Zapier's perform list)",
        tokens.READ,
        security="installationToken",
        response=Samples,
        errors=(400, 422),
        query=SampleQuery,
    ),
    Operation(
        "POST",
        "/api/v1/hooks",
        subscribe_hook,
        BY_TOKEN + "Subscribe: events of type `event` are POSTed, signed, to `target_url` "
        "until unsubscribed; answers the hook `id` and its signing `secret` (shown once). A "
        "410 Gone from the target disables the hook",
        tokens.WRITE,
        security="installationToken",
        body=Subscribe,
        response=HookCreated,
        status=201,
        errors=(400, 409, 415, 422),
    ),
    Operation(
        "GET",
        "/api/v1/hooks",
        list_hooks,
        BY_TOKEN + "List this installation's hooks, oldest first",
        tokens.READ,
        security="installationToken",
        response=HookPage,
        errors=(400,),
        query=ListHooks,
    ),
    Operation(
        "GET",
        "/api/v1/hooks/{hook_id}",
        get_hook,
        BY_TOKEN + "Get one of this installation's hooks",
        tokens.READ,
        security="installationToken",
        response=HookOut,
        errors=(404,),
        params=HOOK_ID,
    ),
    Operation(
        "DELETE",
        "/api/v1/hooks/{hook_id}",
        unsubscribe_hook,
        BY_TOKEN + "Unsubscribe: the hook and its delivery history are removed",
        tokens.WRITE,
        security="installationToken",
        status=204,
        errors=(404,),
        params=HOOK_ID,
    ),
]
