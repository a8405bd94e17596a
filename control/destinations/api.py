"""HTTP handlers of the destinations API: destinations, presets, test-sends, previews,
deliveries, replay, recovery and health.

Destinations are event delivery, as webhooks are (seed 001 calls them click webhooks), so
the same scopes guard both: `webhooks:read` and `webhooks:write`. As for webhook endpoints,
a created signing secret is in the first answer only: the idempotency layer stores the body
with `secret: null` (control/webhooks/api.py says why).
"""

from __future__ import annotations

import logging
import uuid
from typing import TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from control.context import authorize
from control.delivery import actors, engine, guard
from control.destinations import deliveries, service
from control.destinations.schemas import (
    CreateDestination,
    DestinationCreated,
    DestinationDeliveryOut,
    DestinationDeliveryPage,
    DestinationOut,
    DestinationPage,
    ListDestinations,
    PresetList,
    Preview,
    PreviewOut,
    TestSend,
    UpdateDestination,
)
from control.http import decode, json_bytes, json_response, read_json, read_query
from control.idempotency import service as idempotency
from control.openapi import Operation
from control.webhooks import service as webhooks
from control.webhooks.schemas import (
    Health,
    ListDeliveries,
    Recover,
    Recovered,
    RotateSecret,
    SecretRotated,
    TestSendResult,
)

READ, WRITE = "webhooks:read", "webhooks:write"
log = logging.getLogger("ricochet.control")
T = TypeVar("T")


def _id(request: Request) -> str:
    return str(request.path_params["destination_id"])


async def _optional_json(request: Request, type_: type[T]) -> T:
    """A body that may be left out entirely (then all defaults)."""
    raw = await request.body()
    return await read_json(request, type_) if raw.strip() else decode(b"{}", type_)


async def create_destination(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    data = await read_json(request, CreateDestination)
    issued: list[tuple[DestinationCreated, str | None]] = []

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        row, plaintext = await service.create(session, ctx.settings, principal.workspace_id, data)
        out = service.to_out(ctx.settings, row)
        redacted = DestinationCreated(
            **msgspec.structs.asdict(out), secret=None, secret_redacted=plaintext is not None
        )
        issued.append((redacted, plaintext))
        return 201, json_bytes(redacted), f"/api/v1/destinations/{row.id}"

    response = await idempotency.run(ctx, request, principal, work)
    if not idempotency.replayed(response):
        redacted, plaintext = issued[-1]
        body = msgspec.structs.replace(redacted, secret=plaintext, secret_redacted=False)
        response = json_response(body, 201, {"location": f"/api/v1/destinations/{body.id}"})
    response.headers["cache-control"] = "no-store"
    return response


async def list_destinations(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    query = read_query(request, ListDestinations)
    async with ctx.sessions.begin() as session:
        page = await service.page(session, ctx.settings, principal.workspace_id, query)
    return json_response(page)


async def list_presets(request: Request) -> Response:
    await authorize(request, READ)
    return json_response(service.presets_out())


async def get_destination(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    async with ctx.sessions.begin() as session:
        row = await service.get_row(session, principal.workspace_id, _id(request))
    return json_response(service.to_out(ctx.settings, row))


async def update_destination(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    data = await read_json(request, UpdateDestination)
    async with ctx.sessions.begin() as session:
        out = await service.update(
            session, ctx.settings, principal.workspace_id, _id(request), data
        )
    return json_response(out)


async def delete_destination(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    async with ctx.sessions.begin() as session:
        await service.delete(session, principal.workspace_id, _id(request))
    return Response(status_code=204)


async def rotate_destination_secret(request: Request) -> Response:
    """Not stored by the idempotency layer (it would store the secret), as for webhooks."""
    ctx, principal = await authorize(request, WRITE)
    data = await _optional_json(request, RotateSecret)
    overlap = (
        data.overlap_s if data.overlap_s is not None else ctx.settings.webhook_secret_overlap_s
    )
    async with ctx.sessions.begin() as session:
        row, plaintext = await service.rotate(
            session, ctx.settings, principal.workspace_id, _id(request), overlap
        )
    body = SecretRotated(
        id=str(row.id), secret=plaintext, previous_secret_expires_at=row.previous_secret_expires_at
    )
    return json_response(body, headers={"cache-control": "no-store"})


async def test_destination(request: Request) -> Response:
    """A synthetic event mapped like a real one, sent once now (X-Nim-Delivery-Reason: test)."""
    ctx, principal = await authorize(request, WRITE)
    data = await _optional_json(request, TestSend)
    async with ctx.sessions.begin() as session:
        delivery_id = await deliveries.create_test_delivery(
            session,
            principal.organization_id,
            principal.workspace_id,
            _id(request),
            data.event_type,
        )
    async with guard.client(ctx.settings, max_connections=1) as http:
        outcome = await engine.attempt(ctx.sessions, http, ctx.settings, delivery_id)
    async with ctx.sessions.begin() as session:
        result = await webhooks.finish_test(
            session, delivery_id, outcome.status, outcome.status_code, outcome.error
        )
    return json_response(result)


async def preview_destination(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    data = await _optional_json(request, Preview)
    async with ctx.sessions.begin() as session:
        out = await deliveries.preview(
            session, principal.organization_id, principal.workspace_id, _id(request), data
        )
    return json_response(out)


async def replay_destination_delivery(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    created: list[uuid.UUID] = []

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        out = await deliveries.replay(
            session, principal.workspace_id, _id(request), request.path_params["delivery_id"]
        )
        created.append(uuid.UUID(out.id))
        location = f"/api/v1/destinations/{out.destination_id}/deliveries/{out.id}"
        return 201, json_bytes(out), location

    response = await idempotency.run(ctx, request, principal, work)
    if not idempotency.replayed(response):
        await actors.enqueue_committed(ctx.settings, created[-1:])
    return response


async def recover_destination(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    data = await read_json(request, Recover)
    created: list[list[uuid.UUID]] = []

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        ids = await deliveries.recover(session, principal.workspace_id, _id(request), data.since)
        created.append(ids)
        return 200, json_bytes(Recovered(replayed=len(ids))), None

    response = await idempotency.run(ctx, request, principal, work)
    if not idempotency.replayed(response) and created:
        await actors.enqueue_committed(ctx.settings, created[-1])
    return response


async def list_destination_deliveries(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    query = read_query(request, ListDeliveries)
    async with ctx.sessions.begin() as session:
        page = await deliveries.page(session, principal.workspace_id, _id(request), query)
    return json_response(page)


async def get_destination_delivery(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    async with ctx.sessions.begin() as session:
        out = await deliveries.delivery(
            session, principal.workspace_id, _id(request), request.path_params["delivery_id"]
        )
    return json_response(out)


async def destination_health(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    async with ctx.sessions.begin() as session:
        out = await deliveries.health(session, principal.workspace_id, _id(request))
    return json_response(out)


ID = {"destination_id": "The destination's id."}
DELIVERY_ID = {**ID, "delivery_id": "The delivery's id."}
BASE = "/api/v1/destinations"

OPERATIONS = [
    Operation(
        "POST",
        BASE,
        create_destination,
        "Create a destination for click, scan and conversion events: generic `http` (custom "
        "headers, optional template), `segment`, `ga4`, `meta_capi` or `slack` (default "
        "mapping, overridable). Signed kinds return their signing `secret` in this response "
        "only",
        WRITE,
        body=CreateDestination,
        response=DestinationCreated,
        status=201,
        errors=(400, 415, 422),
    ),
    Operation(
        "GET",
        BASE,
        list_destinations,
        "List destinations, oldest first (`limit`, `cursor`, `kind`); secrets never shown",
        READ,
        response=DestinationPage,
        errors=(400,),
        query=ListDestinations,
    ),
    # Before /{destination_id}, which would take "presets" for an id.
    Operation(
        "GET",
        f"{BASE}/presets",
        list_presets,
        "Destination kinds: their settings, default URL and default mapping (a template)",
        READ,
        response=PresetList,
    ),
    Operation(
        "GET",
        f"{BASE}/{{destination_id}}",
        get_destination,
        "Get a destination (secret settings and header values are never shown)",
        READ,
        response=DestinationOut,
        errors=(404,),
        params=ID,
    ),
    Operation(
        "PATCH",
        f"{BASE}/{{destination_id}}",
        update_destination,
        "Change a destination: event types, filters, redaction, template, settings, "
        "headers, URL, description or enabled flag",
        WRITE,
        body=UpdateDestination,
        response=DestinationOut,
        errors=(400, 404, 415, 422),
        params=ID,
    ),
    Operation(
        "DELETE",
        f"{BASE}/{{destination_id}}",
        delete_destination,
        "Delete a destination and its delivery history",
        WRITE,
        status=204,
        errors=(404,),
        params=ID,
    ),
    Operation(
        "POST",
        f"{BASE}/{{destination_id}}/rotate-secret",
        rotate_destination_secret,
        "Rotate a signed destination's signing secret (shown once); the previous one keeps "
        "signing for `overlap_s`. 409 `not_signed` for kinds that are not signed",
        WRITE,
        body=RotateSecret,
        response=SecretRotated,
        errors=(400, 404, 409, 415, 422),
        params=ID,
    ),
    Operation(
        "POST",
        f"{BASE}/{{destination_id}}/test",
        test_destination,
        "Send a synthetic event now (`nim.webhook.test`, or a sample of `event_type` through "
        "the mapping), one attempt, and answer with its outcome. The body is optional",
        WRITE,
        body=TestSend,
        response=TestSendResult,
        errors=(404, 422),
        params=ID,
    ),
    Operation(
        "POST",
        f"{BASE}/{{destination_id}}/preview",
        preview_destination,
        "Map a stored event (`event_id`) or a sample (`event_type`) as this destination "
        "would, and say whether its filters let it through; nothing is sent",
        READ,
        body=Preview,
        response=PreviewOut,
        errors=(404, 422),
        params=ID,
    ),
    Operation(
        "GET",
        f"{BASE}/{{destination_id}}/deliveries",
        list_destination_deliveries,
        "List a destination's deliveries, newest first, each with its attempts",
        READ,
        response=DestinationDeliveryPage,
        errors=(400, 404),
        params=ID,
        query=ListDeliveries,
    ),
    Operation(
        "GET",
        f"{BASE}/{{destination_id}}/deliveries/{{delivery_id}}",
        get_destination_delivery,
        "Get a destination delivery with its attempts",
        READ,
        response=DestinationDeliveryOut,
        errors=(404,),
        params=DELIVERY_ID,
    ),
    Operation(
        "POST",
        f"{BASE}/{{destination_id}}/deliveries/{{delivery_id}}/replay",
        replay_destination_delivery,
        "Replay a dead or failed delivery: the same event id and bytes, queued now (a "
        "delivery whose mapping failed is mapped again)",
        WRITE,
        response=DestinationDeliveryOut,
        status=201,
        errors=(404, 409, 422),
        params=DELIVERY_ID,
    ),
    Operation(
        "POST",
        f"{BASE}/{{destination_id}}/recover",
        recover_destination,
        "Replay every event whose latest delivery to this destination since `since` is dead "
        "or failed: `{replayed: n}`",
        WRITE,
        body=Recover,
        response=Recovered,
        errors=(400, 404, 415, 422),
        params=ID,
    ),
    Operation(
        "GET",
        f"{BASE}/{{destination_id}}/health",
        destination_health,
        "Delivery health: 24-hour success rate and attempts, retrying and dead, last "
        "success and failure",
        READ,
        response=Health,
        errors=(404,),
        params=ID,
    ),
]
