"""HTTP handlers of the UTM presets API: authorize, decode, call the service, encode."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from control.context import authorize
from control.http import json_bytes, json_response, read_json, read_query
from control.idempotency import service as idempotency
from control.openapi import Operation
from control.presets import service
from control.presets.schemas import (
    CreateUtmPreset,
    ListUtmPresets,
    UpdateUtmPreset,
    UtmPresetOut,
    UtmPresetPage,
)

ID = {"preset_id": "The UTM preset's id."}


async def create_utm_preset(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    data = await read_json(request, CreateUtmPreset)

    async def work(session: AsyncSession) -> tuple[int, bytes, str | None]:
        preset = await service.create(session, principal.workspace_id, data)
        return 201, json_bytes(preset), f"/api/v1/utm-presets/{preset.id}"

    return await idempotency.run(ctx, request, principal, work)


async def list_utm_presets(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    query = read_query(request, ListUtmPresets)
    async with ctx.sessions.begin() as session:
        page = await service.page(session, principal.workspace_id, query)
    return json_response(page)


async def get_utm_preset(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:read")
    async with ctx.sessions.begin() as session:
        preset = await service.get(
            session, principal.workspace_id, request.path_params["preset_id"]
        )
    return json_response(preset)


async def update_utm_preset(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    data = await read_json(request, UpdateUtmPreset)
    async with ctx.sessions.begin() as session:
        preset = await service.update(
            session, principal.workspace_id, request.path_params["preset_id"], data
        )
    return json_response(preset)


async def delete_utm_preset(request: Request) -> Response:
    ctx, principal = await authorize(request, "links:write")
    async with ctx.sessions.begin() as session:
        await service.delete(session, principal.workspace_id, request.path_params["preset_id"])
    return Response(status_code=204)


OPERATIONS = [
    Operation(
        "POST",
        "/api/v1/utm-presets",
        create_utm_preset,
        "Create a UTM preset",
        "links:write",
        body=CreateUtmPreset,
        response=UtmPresetOut,
        status=201,
        errors=(400, 409, 415, 422),
    ),
    Operation(
        "GET",
        "/api/v1/utm-presets",
        list_utm_presets,
        "List UTM presets, oldest first (`limit`, `cursor`, `q`)",
        "links:read",
        response=UtmPresetPage,
        errors=(400,),
        query=ListUtmPresets,
    ),
    Operation(
        "GET",
        "/api/v1/utm-presets/{preset_id}",
        get_utm_preset,
        "Get a UTM preset",
        "links:read",
        response=UtmPresetOut,
        errors=(404,),
        params=ID,
    ),
    Operation(
        "PATCH",
        "/api/v1/utm-presets/{preset_id}",
        update_utm_preset,
        "Change a UTM preset; null removes a value, one must remain",
        "links:write",
        body=UpdateUtmPreset,
        response=UtmPresetOut,
        errors=(400, 404, 409, 415, 422),
        params=ID,
    ),
    Operation(
        "DELETE",
        "/api/v1/utm-presets/{preset_id}",
        delete_utm_preset,
        "Delete a UTM preset (links keep their own UTM values)",
        "links:write",
        status=204,
        errors=(404,),
        params=ID,
    ),
]
