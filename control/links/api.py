"""HTTP handlers of the links API: authorize, decode, call the service, encode."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from control.context import authorize
from control.http import json_response, read_json
from control.links import service
from control.links.schemas import CreateLink, LinkOut
from control.openapi import Operation


async def create_link(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    data = await read_json(request, CreateLink)
    async with ctx.sessions.begin() as session:
        link = await service.create(session, ctx.settings, principal, data)
    return json_response(link, 201, {"location": f"/api/v1/links/{link.id}"})


async def get_link(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    async with ctx.sessions.begin() as session:
        link = await service.get(session, ctx.settings, principal, request.path_params["link_id"])
    return json_response(link)


OPERATIONS = [
    Operation(
        "POST",
        "/api/v1/links",
        create_link,
        "Create a short link",
        "links:write",
        body=CreateLink,
        response=LinkOut,
        status=201,
        errors=(400, 409, 415, 422),
    ),
    Operation(
        "GET",
        "/api/v1/links/{link_id}",
        get_link,
        "Get a link with its click count",
        "links:read",
        response=LinkOut,
        errors=(404,),
        params={"link_id": "The link's id."},
    ),
]
