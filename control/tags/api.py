"""HTTP handlers of the tags API: authorize, decode, call the service, encode."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from control.context import authorize
from control.http import json_bytes, json_response, read_json, read_query
from control.idempotency import service as idempotency
from control.openapi import Operation
from control.tags import service
from control.tags.schemas import CreateTag, ListTags, TagOut, TagPage, UpdateTag

ID = {"tag_id": "The tag's id."}


async def create_tag(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    data = await read_json(request, CreateTag)

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        tag = await service.create(session, principal.workspace_id, data)
        return 201, json_bytes(tag), f"/api/v1/tags/{tag.id}"

    return await idempotency.run(ctx, request, principal, work)


async def list_tags(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    query = read_query(request, ListTags)
    async with ctx.sessions.begin() as session:
        page = await service.page(session, principal.workspace_id, query)
    return json_response(page)


async def get_tag(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    async with ctx.sessions.begin() as session:
        tag = await service.get(session, principal.workspace_id, request.path_params["tag_id"])
    return json_response(tag)


async def update_tag(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    data = await read_json(request, UpdateTag)
    async with ctx.sessions.begin() as session:
        tag = await service.update(
            session, principal.workspace_id, request.path_params["tag_id"], data
        )
    return json_response(tag)


async def delete_tag(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    async with ctx.sessions.begin() as session:
        await service.delete(session, principal.workspace_id, request.path_params["tag_id"])
    return Response(status_code=204)


OPERATIONS = [
    Operation(
        "POST",
        "/api/v1/tags",
        create_tag,
        "Create a tag",
        "links:write",
        body=CreateTag,
        response=TagOut,
        status=201,
        errors=(400, 409, 415, 422),
    ),
    Operation(
        "GET",
        "/api/v1/tags",
        list_tags,
        "List tags, oldest first (`limit`, `cursor`, `q`)",
        "links:read",
        response=TagPage,
        errors=(400,),
        query=ListTags,
    ),
    Operation(
        "GET",
        "/api/v1/tags/{tag_id}",
        get_tag,
        "Get a tag with its live link count",
        "links:read",
        response=TagOut,
        errors=(404,),
        params=ID,
    ),
    Operation(
        "PATCH",
        "/api/v1/tags/{tag_id}",
        update_tag,
        "Rename or recolour a tag",
        "links:write",
        body=UpdateTag,
        response=TagOut,
        errors=(400, 404, 409, 415, 422),
        params=ID,
    ),
    Operation(
        "DELETE",
        "/api/v1/tags/{tag_id}",
        delete_tag,
        "Delete a tag (links keep existing, without it)",
        "links:write",
        status=204,
        errors=(404,),
        params=ID,
    ),
]
