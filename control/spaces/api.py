"""HTTP handlers of the spaces API: authorize, decode, call the service, encode."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from control.context import authorize
from control.http import json_bytes, json_response, read_json, read_query
from control.idempotency import service as idempotency
from control.openapi import Operation
from control.spaces import service
from control.spaces.schemas import CreateSpace, ListSpaces, SpaceOut, SpacePage, UpdateSpace

ID = {"space_id": "The space's id."}


async def create_space(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    data = await read_json(request, CreateSpace)

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        space = await service.create(session, principal.workspace_id, data)
        return 201, json_bytes(space), f"/api/v1/spaces/{space.id}"

    return await idempotency.run(ctx, request, principal, work)


async def list_spaces(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    query = read_query(request, ListSpaces)
    async with ctx.sessions.begin() as session:
        page = await service.page(session, principal.workspace_id, query)
    return json_response(page)


async def get_space(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    async with ctx.sessions.begin() as session:
        space = await service.get(session, principal.workspace_id, request.path_params["space_id"])
    return json_response(space)


async def update_space(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    data = await read_json(request, UpdateSpace)
    async with ctx.sessions.begin() as session:
        space = await service.update(
            session, principal.workspace_id, request.path_params["space_id"], data
        )
    return json_response(space)


async def delete_space(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    async with ctx.sessions.begin() as session:
        await service.delete(session, principal.workspace_id, request.path_params["space_id"])
    return Response(status_code=204)


OPERATIONS = [
    Operation(
        "POST",
        "/api/v1/spaces",
        create_space,
        "Create a space",
        "links:write",
        body=CreateSpace,
        response=SpaceOut,
        status=201,
        errors=(400, 409, 415, 422),
    ),
    Operation(
        "GET",
        "/api/v1/spaces",
        list_spaces,
        "List spaces, oldest first (`limit`, `cursor`, `q`)",
        "links:read",
        response=SpacePage,
        errors=(400,),
        query=ListSpaces,
    ),
    Operation(
        "GET",
        "/api/v1/spaces/{space_id}",
        get_space,
        "Get a space with its live link count",
        "links:read",
        response=SpaceOut,
        errors=(404,),
        params=ID,
    ),
    Operation(
        "PATCH",
        "/api/v1/spaces/{space_id}",
        update_space,
        "Rename a space or change its description",
        "links:write",
        body=UpdateSpace,
        response=SpaceOut,
        errors=(400, 404, 409, 415, 422),
        params=ID,
    ),
    Operation(
        "DELETE",
        "/api/v1/spaces/{space_id}",
        delete_space,
        "Delete a space (its links stay, outside any space)",
        "links:write",
        status=204,
        errors=(404,),
        params=ID,
    ),
]
