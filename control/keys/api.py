"""HTTP handlers of the API keys API.

Creating a key goes through the idempotency layer like every creating POST, but the layer
stores the response body it is given, and a stored secret is a leaked secret. So the work
hands it a body with the key redacted, and only the first, non-replayed answer is rebuilt
here with the plaintext, which lives nowhere but in this request.
"""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from control import pagination, text
from control.context import authorize
from control.errors import ApiError, Forbidden, Unprocessable
from control.http import json_bytes, json_response, read_json, read_query
from control.idempotency import service as idempotency
from control.keys import repository, scopes, service
from control.keys.models import ApiKey
from control.keys.schemas import (
    NAME_MAX,
    ApiKeyCreated,
    ApiKeyOut,
    ApiKeyPage,
    CreateApiKey,
    ListApiKeys,
)
from control.keys.service import Principal
from control.openapi import Operation


def to_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=str(key.id),
        name=key.name,
        prefix=key.prefix,
        scopes=list(key.scopes),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


def clean_name(raw: str) -> str:
    return text.clean_name(raw, what="key", max_len=NAME_MAX, nfc=False)


def grantable_scopes(principal: Principal, asked: list[str] | None) -> list[str]:
    """The new key's scopes: as asked (deduplicated) or the caller's own, never more."""
    if asked is None:
        # Explicit: the key service would otherwise fall back to the defaults, which may
        # exceed what the caller holds.
        return list(principal.scopes)
    wanted = list(dict.fromkeys(asked))
    bad = scopes.unknown(wanted)
    if bad:
        raise Unprocessable(
            "unknown_scope",
            f"Unknown scopes: {', '.join(bad)}. Known: {', '.join(scopes.ALL_SCOPES)}.",
            field="scopes",
            scopes=bad,
        )
    missing = [s for s in wanted if not scopes.grants(principal.scopes, s)]
    if missing:
        raise Forbidden(
            "scope_escalation",
            f"A key can only grant scopes it holds itself; this one lacks {', '.join(missing)}.",
            scopes=missing,
        )
    return wanted


def _key_id(request: Request) -> uuid.UUID:
    return text.parse_id(request.path_params["key_id"], "api_key")


async def create_api_key(request: Request) -> Response:
    ctx, principal = await authorize(request, "keys:write")
    data = await read_json(request, CreateApiKey)
    name = clean_name(data.name)
    wanted = grantable_scopes(principal, data.scopes)
    issued: list[tuple[ApiKeyCreated, str]] = []

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        row, plaintext = await service.create(
            session, ctx.settings.secret_key, principal.workspace_id, name, wanted
        )
        redacted = ApiKeyCreated(**msgspec.structs.asdict(to_out(row)), key=None, key_redacted=True)
        issued.append((redacted, plaintext))
        return 201, json_bytes(redacted), f"/api/v1/api-keys/{row.id}"

    response = await idempotency.run(ctx, request, principal, work)
    # Decide on the header, not on whether `work` ran: a request that lost an
    # Idempotency-Key race ran it too, but its key was rolled back and never exists.
    if not idempotency.replayed(response):
        redacted, plaintext = issued[-1]
        body = msgspec.structs.replace(redacted, key=plaintext, key_redacted=False)
        response = json_response(body, 201, {"location": f"/api/v1/api-keys/{body.id}"})
    response.headers["cache-control"] = "no-store"
    return response


async def list_api_keys(request: Request) -> Response:
    ctx, principal = await authorize(request, "keys:read")
    query = read_query(request, ListApiKeys)
    before = pagination.decode(query.cursor)
    async with ctx.sessions.begin() as session:
        rows = await repository.page(
            session, principal.workspace_id, before=before, limit=query.limit
        )
    return json_response(
        ApiKeyPage(
            data=[to_out(r) for r in rows],
            next_cursor=pagination.next_cursor([r.id for r in rows], query.limit),
        )
    )


async def get_api_key(request: Request) -> Response:
    ctx, principal = await authorize(request, "keys:read")
    key_id = _key_id(request)
    async with ctx.sessions.begin() as session:
        row = await repository.get(session, principal.workspace_id, key_id)
    if row is None:
        raise ApiError.not_found("api_key")
    return json_response(to_out(row))


async def revoke_api_key(request: Request) -> Response:
    ctx, principal = await authorize(request, "keys:write")
    key_id = _key_id(request)
    async with ctx.sessions.begin() as session:
        found = await repository.revoke(session, principal.workspace_id, key_id)
    if not found:
        raise ApiError.not_found("api_key")
    return Response(status_code=204)


_KEY_ID = {"key_id": "The API key's id."}

OPERATIONS = [
    Operation(
        "POST",
        "/api/v1/api-keys",
        create_api_key,
        "Create an API key. The secret `key` is returned in this response only; an "
        "Idempotency-Key replay answers with the same key id but `key: null` and "
        "`key_redacted: true`. Scopes default to, and may not exceed, the calling key's.",
        "keys:write",
        body=CreateApiKey,
        response=ApiKeyCreated,
        status=201,
        errors=(400, 415, 422),
    ),
    Operation(
        "GET",
        "/api/v1/api-keys",
        list_api_keys,
        "List the workspace's API keys, newest first, revoked ones included",
        "keys:read",
        response=ApiKeyPage,
        errors=(400,),
        query=ListApiKeys,
    ),
    Operation(
        "GET",
        "/api/v1/api-keys/{key_id}",
        get_api_key,
        "Get an API key (never its secret)",
        "keys:read",
        response=ApiKeyOut,
        errors=(404,),
        params=_KEY_ID,
    ),
    Operation(
        "DELETE",
        "/api/v1/api-keys/{key_id}",
        revoke_api_key,
        "Revoke an API key (revoking a revoked key succeeds too); it answers 401 from then on",
        "keys:write",
        status=204,
        errors=(404,),
        params=_KEY_ID,
    ),
]
