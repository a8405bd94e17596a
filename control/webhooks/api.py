"""HTTP handlers of the webhooks API: endpoints, secrets, test-sends, deliveries, replay.

Creating an endpoint goes through the idempotency layer like every creating POST, but the
layer stores the response body it is given, and a stored secret is a leaked secret: as for
API keys (control/keys/api.py), the stored body has `secret: null`, and only the first,
non-replayed answer is rebuilt here with the plaintext, which lives nowhere else.
"""

from __future__ import annotations

import logging
import uuid

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from control.context import authorize
from control.delivery import actors, engine, guard
from control.http import decode, json_bytes, json_response, read_json, read_query
from control.idempotency import service as idempotency
from control.openapi import Operation
from control.webhooks import service
from control.webhooks.schemas import (
    CreateWebhook,
    DeliveryOut,
    DeliveryPage,
    Health,
    ListDeliveries,
    ListWebhooks,
    Recover,
    Recovered,
    RotateSecret,
    SecretRotated,
    TestSendResult,
    UpdateWebhook,
    WebhookCreated,
    WebhookOut,
    WebhookPage,
)

log = logging.getLogger("ricochet.control")
READ, WRITE = "webhooks:read", "webhooks:write"


def _id(request: Request) -> str:
    return str(request.path_params["webhook_id"])


async def create_webhook(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    data = await read_json(request, CreateWebhook)
    issued: list[tuple[WebhookCreated, str]] = []

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        row, plaintext = await service.create(session, ctx.settings, principal.workspace_id, data)
        out = service.to_out(ctx.settings, row)
        redacted = WebhookCreated(**msgspec.structs.asdict(out), secret=None, secret_redacted=True)
        issued.append((redacted, plaintext))
        return 201, json_bytes(redacted), f"/api/v1/webhooks/{row.id}"

    response = await idempotency.run(ctx, request, principal, work)
    # Decide on the header, not on whether `work` ran: a request that lost an
    # Idempotency-Key race ran it too, but its endpoint was rolled back and never exists.
    if not idempotency.replayed(response):
        redacted, plaintext = issued[-1]
        body = msgspec.structs.replace(redacted, secret=plaintext, secret_redacted=False)
        response = json_response(body, 201, {"location": f"/api/v1/webhooks/{body.id}"})
    response.headers["cache-control"] = "no-store"
    return response


async def list_webhooks(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    query = read_query(request, ListWebhooks)
    async with ctx.sessions.begin() as session:
        page = await service.page(session, ctx.settings, principal.workspace_id, query)
    return json_response(page)


async def get_webhook(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    async with ctx.sessions.begin() as session:
        row = await service.get_row(session, principal.workspace_id, _id(request))
    return json_response(service.to_out(ctx.settings, row))


async def update_webhook(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    data = await read_json(request, UpdateWebhook)
    async with ctx.sessions.begin() as session:
        out = await service.update(
            session, ctx.settings, principal.workspace_id, _id(request), data
        )
    return json_response(out)


async def delete_webhook(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    async with ctx.sessions.begin() as session:
        await service.delete(session, principal.workspace_id, _id(request))
    return Response(status_code=204)


async def rotate_webhook_secret(request: Request) -> Response:
    """Not stored by the idempotency layer (it would store the secret): a retried rotation
    rotates again, and the secret it replaced keeps signing for the overlap."""
    ctx, principal = await authorize(request, WRITE)
    raw = await request.body()
    data = await read_json(request, RotateSecret) if raw.strip() else decode(b"{}", RotateSecret)
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


async def test_webhook(request: Request) -> Response:
    """A synthetic nim.webhook.test event, sent once now (X-Nim-Delivery-Reason: test)."""
    ctx, principal = await authorize(request, WRITE)
    async with ctx.sessions.begin() as session:
        delivery_id = await service.create_test_delivery(
            session, principal.organization_id, principal.workspace_id, _id(request)
        )
    async with guard.client(ctx.settings, max_connections=1) as http:
        outcome = await engine.attempt(ctx.sessions, http, ctx.settings, delivery_id)
    async with ctx.sessions.begin() as session:
        result = await service.finish_test(
            session, delivery_id, outcome.status, outcome.status_code, outcome.error
        )
    return json_response(result)


async def replay_delivery(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    created: list[uuid.UUID] = []

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        out = await service.replay(
            session, principal.workspace_id, _id(request), request.path_params["delivery_id"]
        )
        created.append(uuid.UUID(out.id))
        return 201, json_bytes(out), f"/api/v1/webhooks/{out.endpoint_id}/deliveries/{out.id}"

    response = await idempotency.run(ctx, request, principal, work)
    if not idempotency.replayed(response):
        await actors.enqueue_committed(ctx.settings, created[-1:])
    return response


async def recover_webhook(request: Request) -> Response:
    ctx, principal = await authorize(request, WRITE)
    data = await read_json(request, Recover)
    created: list[list[uuid.UUID]] = []

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        ids = await service.recover(session, principal.workspace_id, _id(request), data.since)
        created.append(ids)
        return 200, json_bytes(Recovered(replayed=len(ids))), None

    response = await idempotency.run(ctx, request, principal, work)
    if not idempotency.replayed(response) and created:
        await actors.enqueue_committed(ctx.settings, created[-1])
    return response


async def list_deliveries(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    query = read_query(request, ListDeliveries)
    async with ctx.sessions.begin() as session:
        page = await service.deliveries(session, principal.workspace_id, _id(request), query)
    return json_response(page)


async def get_delivery(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    async with ctx.sessions.begin() as session:
        out = await service.delivery(
            session, principal.workspace_id, _id(request), request.path_params["delivery_id"]
        )
    return json_response(out)


async def webhook_health(request: Request) -> Response:
    ctx, principal = await authorize(request, READ)
    async with ctx.sessions.begin() as session:
        out = await service.health(session, principal.workspace_id, _id(request))
    return json_response(out)


ID = {"webhook_id": "The webhook endpoint's id."}
DELIVERY_ID = {**ID, "delivery_id": "The delivery's id."}

OPERATIONS = [
    Operation(
        "POST",
        "/api/v1/webhooks",
        create_webhook,
        "Subscribe a webhook endpoint to event types. The signing `secret` is returned in "
        "this response only; an Idempotency-Key replay answers with `secret: null` and "
        "`secret_redacted: true`",
        WRITE,
        body=CreateWebhook,
        response=WebhookCreated,
        status=201,
        errors=(400, 415, 422),
    ),
    Operation(
        "GET",
        "/api/v1/webhooks",
        list_webhooks,
        "List webhook endpoints, oldest first (`limit`, `cursor`); secrets masked",
        READ,
        response=WebhookPage,
        errors=(400,),
        query=ListWebhooks,
    ),
    Operation(
        "GET",
        "/api/v1/webhooks/{webhook_id}",
        get_webhook,
        "Get a webhook endpoint (its secret masked: `whsec_…` and the last 4 characters)",
        READ,
        response=WebhookOut,
        errors=(404,),
        params=ID,
    ),
    Operation(
        "PATCH",
        "/api/v1/webhooks/{webhook_id}",
        update_webhook,
        "Change a webhook endpoint's URL, event types, description or enabled flag",
        WRITE,
        body=UpdateWebhook,
        response=WebhookOut,
        errors=(400, 404, 415, 422),
        params=ID,
    ),
    Operation(
        "DELETE",
        "/api/v1/webhooks/{webhook_id}",
        delete_webhook,
        "Delete a webhook endpoint and its delivery history",
        WRITE,
        status=204,
        errors=(404,),
        params=ID,
    ),
    Operation(
        "POST",
        "/api/v1/webhooks/{webhook_id}/rotate-secret",
        rotate_webhook_secret,
        "Rotate the signing secret: the new one is shown once; the previous one keeps "
        "signing (a second `v1=`) for `overlap_s` (default RICOCHET_WEBHOOK_SECRET_OVERLAP_S). "
        "The body is optional",
        WRITE,
        body=RotateSecret,
        response=SecretRotated,
        errors=(400, 404, 415, 422),
        params=ID,
    ),
    Operation(
        "POST",
        "/api/v1/webhooks/{webhook_id}/test",
        test_webhook,
        "Send a synthetic `nim.webhook.test` event now (`X-Nim-Delivery-Reason: test`), one "
        "attempt, and answer with its outcome",
        WRITE,
        response=TestSendResult,
        errors=(404,),
        params=ID,
    ),
    Operation(
        "GET",
        "/api/v1/webhooks/{webhook_id}/deliveries",
        list_deliveries,
        "List an endpoint's deliveries, newest first, each with its attempts",
        READ,
        response=DeliveryPage,
        errors=(400, 404),
        params=ID,
        query=ListDeliveries,
    ),
    Operation(
        "GET",
        "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}",
        get_delivery,
        "Get a delivery with its attempts (status code, latency, response excerpt, error)",
        READ,
        response=DeliveryOut,
        errors=(404,),
        params=DELIVERY_ID,
    ),
    Operation(
        "POST",
        "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
        replay_delivery,
        "Replay a dead or failed delivery: a new delivery (reason `replay`) of the same event "
        "id and bytes, queued now; any other status is 409 `not_replayable`",
        WRITE,
        response=DeliveryOut,
        status=201,
        errors=(404, 409),
        params=DELIVERY_ID,
    ),
    Operation(
        "POST",
        "/api/v1/webhooks/{webhook_id}/recover",
        recover_webhook,
        "Replay every event whose latest delivery to this endpoint since `since` is dead or "
        "failed (test-sends aside): `{replayed: n}`",
        WRITE,
        body=Recover,
        response=Recovered,
        errors=(400, 404, 415, 422),
        params=ID,
    ),
    Operation(
        "GET",
        "/api/v1/webhooks/{webhook_id}/health",
        webhook_health,
        "Delivery health: 24-hour success rate and attempts, deliveries retrying and dead, "
        "last success and failure",
        READ,
        response=Health,
        errors=(404,),
        params=ID,
    ),
]
