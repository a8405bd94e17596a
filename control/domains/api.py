"""HTTP handlers of the domains API: authorize, decode, call the service, encode."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from control.context import authorize
from control.domains import service
from control.domains.schemas import CreateDomain, DomainList, DomainOut, ListDomains
from control.http import json_bytes, json_response, read_json, read_query
from control.idempotency import service as idempotency
from control.openapi import Operation


async def create_domain(request: Request) -> Response:
    ctx, principal = await authorize(request, "domains:write")
    data = await read_json(request, CreateDomain)

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        domain = await service.create(session, principal, data.name)
        return 201, json_bytes(domain), f"/api/v1/domains/{domain.id}"

    return await idempotency.run(ctx, request, principal, work)


async def list_domains(request: Request) -> Response:
    ctx, principal = await authorize(request, "domains:read")
    query = read_query(request, ListDomains)
    async with ctx.sessions.begin() as session:
        page = await service.list_page(session, principal, query.cursor, query.limit)
    return json_response(page)


async def get_domain(request: Request) -> Response:
    ctx, principal = await authorize(request, "domains:read")
    async with ctx.sessions.begin() as session:
        domain = await service.get(session, principal, request.path_params["domain_id"])
    return json_response(domain)


async def verify_domain(request: Request) -> Response:
    ctx, principal = await authorize(request, "domains:write")
    domain = await service.verify(
        ctx.sessions, ctx.resolver, principal, request.path_params["domain_id"]
    )
    return json_response(domain)


async def delete_domain(request: Request) -> Response:
    ctx, principal = await authorize(request, "domains:write")
    async with ctx.sessions.begin() as session:
        await service.delete(session, principal, request.path_params["domain_id"])
    return Response(status_code=204)


_ID = {"domain_id": "The domain's id."}

OPERATIONS = [
    Operation(
        "POST",
        "/api/v1/domains",
        create_domain,
        "Add a custom domain (pending until its TXT record is verified)",
        "domains:write",
        body=CreateDomain,
        response=DomainOut,
        status=201,
        errors=(400, 409, 415, 422),
    ),
    Operation(
        "GET",
        "/api/v1/domains",
        list_domains,
        "List the platform default domain and the workspace's custom domains",
        "domains:read",
        response=DomainList,
        errors=(400,),
        query=ListDomains,
    ),
    Operation(
        "GET",
        "/api/v1/domains/{domain_id}",
        get_domain,
        "Get a custom domain",
        "domains:read",
        response=DomainOut,
        errors=(404,),
        params=_ID,
    ),
    Operation(
        "POST",
        "/api/v1/domains/{domain_id}/verify",
        verify_domain,
        "Check the domain's TXT record now and record the outcome",
        "domains:write",
        response=DomainOut,
        errors=(404,),
        params=_ID,
    ),
    Operation(
        "DELETE",
        "/api/v1/domains/{domain_id}",
        delete_domain,
        "Delete a custom domain no live link uses",
        "domains:write",
        status=204,
        errors=(404, 409),
        params=_ID,
    ),
]
