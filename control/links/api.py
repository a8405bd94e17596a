"""HTTP handlers of the links API: authorize, decode, call the service, encode."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from control.context import authorize
from control.errors import ApiError
from control.http import decode, json_bytes, json_response, read_json, read_query
from control.idempotency import service as idempotency
from control.keys.scopes import MODERATION
from control.links import create, service
from control.links.schemas import (
    Availability,
    AvailabilityQuery,
    BulkIn,
    BulkOut,
    BulkRequest,
    History,
    LinkIn,
    LinkOut,
    LinkPage,
    LinkPatch,
    LinkQuery,
    RollbackIn,
    TakedownIn,
)
from control.openapi import Operation

ID = {"link_id": "The link's id."}


def _etag(link: LinkOut) -> dict[str, str]:
    return {"etag": f'"{link.version}"'}


def _if_match(request: Request) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    try:
        return int(raw.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise ApiError(
            "invalid_if_match", 'If-Match takes the ETag of the link, e.g. "3".'
        ) from None


async def create_link(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    data = await read_json(request, LinkIn)

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        link = await service.create_one(session, ctx.settings, principal, data)
        return 201, json_bytes(link), f"/api/v1/links/{link.id}"

    return await idempotency.run(ctx, request, principal, work)


async def bulk_create(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    bulk = await read_json(request, BulkIn)
    items: list[LinkIn | ApiError] = []
    for raw in bulk.items:
        try:
            items.append(decode(bytes(raw), LinkIn))
        except ApiError as exc:
            items.append(exc)

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        results = await create.create_many(
            session, ctx.settings, principal, items, service.actor_of(principal)
        )
        counts = {
            s: sum(r.status == s for r in results) for s in ("created", "slug_taken", "invalid")
        }
        body = BulkOut(
            created=counts["created"],
            slug_taken=counts["slug_taken"],
            invalid=counts["invalid"],
            results=results,
        )
        return 200, json_bytes(body), None

    return await idempotency.run(ctx, request, principal, work)


async def list_links(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    query = read_query(request, LinkQuery)
    async with ctx.sessions.begin() as session:
        page = await service.list_links(session, ctx.settings, principal, query)
    return json_response(page)


async def slug_availability(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    query = read_query(request, AvailabilityQuery)
    async with ctx.sessions.begin() as session:
        answer = await service.availability(session, principal, query.slug, query.domain)
    return json_response(answer)


async def get_link(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    async with ctx.sessions.begin() as session:
        link = await service.get(session, ctx.settings, principal, request.path_params["link_id"])
    return json_response(link, headers=_etag(link))


async def update_link(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    patch = await read_json(request, LinkPatch)
    expected = _if_match(request)
    async with ctx.sessions.begin() as session:
        link = await service.update(
            session, ctx.settings, principal, request.path_params["link_id"], patch, expected
        )
    return json_response(link, headers=_etag(link))


async def delete_link(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    async with ctx.sessions.begin() as session:
        await service.delete(session, ctx.settings, principal, request.path_params["link_id"])
    return Response(status_code=204)


async def link_history(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    async with ctx.sessions.begin() as session:
        revisions = await service.history(session, principal, request.path_params["link_id"])
    return json_response(History(data=revisions))


async def rollback_link(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    data = await read_json(request, RollbackIn)

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        link = await service.rollback(
            session, ctx.settings, principal, request.path_params["link_id"], data.revision
        )
        return 200, json_bytes(link), None

    return await idempotency.run(ctx, request, principal, work)


async def take_down(request: Request) -> Response:
    ctx, principal = await authorize(request, MODERATION)
    data = await read_json(request, TakedownIn)

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        link = await service.takedown_by_key(
            session, ctx.settings, principal, request.path_params["link_id"], data.reason.strip()
        )
        return 200, json_bytes(link), None

    return await idempotency.run(ctx, request, principal, work)


async def restore(request: Request) -> Response:
    ctx, principal = await authorize(request, MODERATION)
    async with ctx.sessions.begin() as session:
        link = await service.takedown_by_key(
            session, ctx.settings, principal, request.path_params["link_id"], None
        )
    return json_response(link)


OPERATIONS = [
    Operation(
        "POST",
        "/api/v1/links",
        create_link,
        "Create a short link",
        "links:write",
        body=LinkIn,
        response=LinkOut,
        status=201,
        errors=(400, 409, 415, 422),
    ),
    Operation(
        "GET",
        "/api/v1/links",
        list_links,
        "List links, newest first (filters: tag, space, domain, q, external_id, created range)",
        "links:read",
        response=LinkPage,
        errors=(400, 422),
        query=LinkQuery,
    ),
    Operation(
        "POST",
        "/api/v1/links/bulk",
        bulk_create,
        "Create up to 1,000 links; one result per item, in order",
        "links:write",
        body=BulkRequest,
        response=BulkOut,
        errors=(400, 415, 422),
    ),
    Operation(
        "GET",
        "/api/v1/links/availability",
        slug_availability,
        "Is a slug free on a domain? If not: taken, reserved or invalid",
        "links:read",
        response=Availability,
        errors=(400, 422),
        query=AvailabilityQuery,
    ),
    Operation(
        "GET",
        "/api/v1/links/{link_id}",
        get_link,
        "Get a link with its click count",
        "links:read",
        response=LinkOut,
        errors=(404,),
        params=ID,
    ),
    Operation(
        "PATCH",
        "/api/v1/links/{link_id}",
        update_link,
        "Change a link (If-Match: its ETag, to refuse lost updates)",
        "links:write",
        body=LinkPatch,
        response=LinkOut,
        errors=(404, 409, 412, 415, 422),
        params=ID,
    ),
    Operation(
        "DELETE",
        "/api/v1/links/{link_id}",
        delete_link,
        "Delete a link: it stops redirecting and its slug is freed",
        "links:write",
        status=204,
        errors=(404,),
        params=ID,
    ),
    Operation(
        "GET",
        "/api/v1/links/{link_id}/history",
        link_history,
        "Every revision of a link, with before and after",
        "links:read",
        response=History,
        errors=(404,),
        params=ID,
    ),
    Operation(
        "POST",
        "/api/v1/links/{link_id}/rollback",
        rollback_link,
        "Restore how a link behaved at a revision (itself a new revision)",
        "links:write",
        body=RollbackIn,
        response=LinkOut,
        errors=(404, 415, 422),
        params=ID,
    ),
    Operation(
        "POST",
        "/api/v1/links/{link_id}/takedown",
        take_down,
        "Take a link down (moderation): it answers 410 with the reason",
        MODERATION,
        body=TakedownIn,
        response=LinkOut,
        errors=(404, 415, 422),
        params=ID,
    ),
    Operation(
        "DELETE",
        "/api/v1/links/{link_id}/takedown",
        restore,
        "Lift a takedown",
        MODERATION,
        response=LinkOut,
        errors=(404,),
        params=ID,
    ),
]
