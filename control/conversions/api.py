"""HTTP handlers of the Conversion API and of conversion management.

`POST /api/conversions/callback/{workspace_id}` is not authenticated by an API key but by
its signature, verified before the body is even parsed: the timestamp (within
RICOCHET_CONVERSION_TIMESTAMP_TOLERANCE_S), the workspace and its secret, then the HMAC.
An `Idempotency-Key` replays the first response byte for byte (transport retries); the
event_id makes the outcome itself idempotent whatever the key.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from control.context import authorize, context
from control.conversions import errors, repository, secrets, service, verify
from control.conversions.schemas import (
    ConversionEvent,
    ConversionOut,
    ConversionPage,
    ListConversions,
    RotateConversionSecret,
    SecretIssued,
    SecretOut,
)
from control.http import decode, json_bytes, json_response, read_json, read_query
from control.idempotency import service as idempotency
from control.keys.service import Principal
from control.openapi import Operation
from shared import signing

READ, WRITE = "conversions:read", "conversions:write"
MAX_BODY = 64 * 1024
NO_KEY = uuid.UUID(int=0)  # the callback has no API key; its idempotency keys are per workspace


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _signed_body(
    request: Request, tolerance_s: int, now: dt.datetime
) -> tuple[uuid.UUID, uuid.UUID, bytes]:
    """(workspace id, organization id, raw body) of a request whose signature verifies."""
    ts = verify.timestamp(
        request.headers.get(signing.TIMESTAMP_HEADER), now.timestamp(), tolerance_s
    )
    header = request.headers.get(signing.SIGNATURE_HEADER)
    if header is None or not header.strip():
        raise errors.missing_header(signing.SIGNATURE_HEADER)
    try:
        workspace_id = uuid.UUID(request.path_params["workspace_id"])
    except ValueError:
        raise errors.workspace_not_found() from None
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise errors.body_too_large(MAX_BODY)
    ctx = context(request)
    async with ctx.sessions.begin() as session:
        found = await repository.workspace_and_secret(session, workspace_id)
    if found is None:
        raise errors.workspace_not_found()
    organization_id, secret = found
    if secret is None:
        raise errors.secret_not_set()
    body = await request.body()
    if len(body) > MAX_BODY:
        raise errors.body_too_large(MAX_BODY)
    verify.signature(header, secrets.accepted(ctx.settings.secret_key, secret, now), ts, body)
    return workspace_id, organization_id, body


async def conversion_callback(request: Request) -> Response:
    ctx = context(request)
    now = _now()
    workspace_id, organization_id, _ = await _signed_body(
        request, ctx.settings.conversion_timestamp_tolerance_s, now
    )
    event = await read_json(request, ConversionEvent)
    principal = Principal(NO_KEY, workspace_id, organization_id, ())
    created: list[bool] = []

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        new, out = await service.record(
            session, ctx.settings, workspace_id, organization_id, event, now
        )
        created.append(new)
        return 201, json_bytes(out), f"/api/v1/conversions/{out.id}"

    response = await idempotency.run(ctx, request, principal, work)
    # A repeated event_id is answered like an Idempotency-Key replay: the stored outcome.
    if created and not created[-1]:
        response.headers[idempotency.REPLAYED] = "true"
    return response


async def list_conversions(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    query = read_query(request, ListConversions)
    async with ctx.sessions.begin() as session:
        answer = await service.page(session, principal.workspace_id, query)
    return json_response(answer)


async def get_conversion(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    async with ctx.sessions.begin() as session:
        answer = await service.get(
            session, principal.workspace_id, request.path_params["conversion_id"]
        )
    return json_response(answer)


def _issued(out: SecretOut, plaintext: str) -> SecretIssued:
    return SecretIssued(
        secret_masked=out.secret_masked,
        created_at=out.created_at,
        rotated_at=out.rotated_at,
        previous_secret_expires_at=out.previous_secret_expires_at,
        secret=plaintext,
    )


async def create_conversion_secret(request: Request) -> Response:
    """Not stored by the idempotency layer: it would store the secret. A retry after a lost
    answer gets 409 conversion_secret_exists; rotating then issues a usable one."""
    ctx, principal = await authorize(request, WRITE)
    async with ctx.sessions.begin() as session:
        row, plaintext = await service.create_secret(session, ctx.settings, principal.workspace_id)
    body = _issued(service.secret_out(ctx.settings, row), plaintext)
    return json_response(body, 201, {"cache-control": "no-store"})


async def get_conversion_secret(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    async with ctx.sessions.begin() as session:
        row = await service.get_secret(session, principal.workspace_id)
    return json_response(service.secret_out(ctx.settings, row))


async def rotate_conversion_secret(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    raw = await request.body()
    data = (
        await read_json(request, RotateConversionSecret)
        if raw.strip()
        else decode(b"{}", RotateConversionSecret)
    )
    overlap = (
        data.overlap_s if data.overlap_s is not None else ctx.settings.conversion_secret_overlap_s
    )
    async with ctx.sessions.begin() as session:
        row, plaintext = await service.rotate_secret(
            session, ctx.settings, principal.workspace_id, overlap, _now()
        )
    body = _issued(service.secret_out(ctx.settings, row), plaintext)
    return json_response(body, headers={"cache-control": "no-store"})


OPERATIONS = [
    Operation(
        "POST",
        "/api/conversions/callback/{workspace_id}",
        conversion_callback,
        "Record a lead, sale, refund, cancellation or reversal (seed 004). Not an API-key "
        "route: sign it with the workspace's conversion secret, `X-Nim-Timestamp: <unix "
        'seconds>` and `X-Nim-Signature: v1=<hex HMAC-SHA256 of "{timestamp}.{raw body}">`. '
        "201 with the outcome; an event_id recorded before with the same content answers "
        "with the stored outcome and `Idempotent-Replayed: true` (409 `event_id_conflict` "
        "with other content). Honours Idempotency-Key",
        body=ConversionEvent,
        response=ConversionOut,
        status=201,
        security="conversionSignature",
        errors=(401, 403, 404, 409, 413),
        params={"workspace_id": "The workspace's id."},
    ),
    # Before /api/v1/conversions/{conversion_id}, which would take "secret".
    Operation(
        "POST",
        "/api/v1/conversions/secret",
        create_conversion_secret,
        "Generate the workspace's conversion signing secret (separate from API keys). It is "
        "shown in this response only; 409 `conversion_secret_exists` if there is one",
        WRITE,
        response=SecretIssued,
        status=201,
        errors=(409,),
    ),
    Operation(
        "GET",
        "/api/v1/conversions/secret",
        get_conversion_secret,
        "The conversion secret's metadata (masked: `cvsec_…` and its last 4 characters)",
        READ,
        response=SecretOut,
        errors=(404,),
    ),
    Operation(
        "POST",
        "/api/v1/conversions/secret/rotate",
        rotate_conversion_secret,
        "Replace the conversion secret: the new one is shown once; the previous one stays "
        "accepted for `overlap_s` (default RICOCHET_CONVERSION_SECRET_OVERLAP_S; 0 revokes "
        "it at once). The body is optional",
        WRITE,
        body=RotateConversionSecret,
        response=SecretIssued,
        errors=(404,),
    ),
    Operation(
        "GET",
        "/api/v1/conversions",
        list_conversions,
        "Recorded outcomes, newest first, with their attribution (`event_name`, "
        "`attribution`, `link_id` filters; `limit`, `cursor`)",
        READ,
        response=ConversionPage,
        errors=(400,),
        query=ListConversions,
    ),
    Operation(
        "GET",
        "/api/v1/conversions/{conversion_id}",
        get_conversion,
        "One recorded outcome and its attribution",
        READ,
        response=ConversionOut,
        errors=(404,),
        params={"conversion_id": "The conversion's id."},
    ),
]
