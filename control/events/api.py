"""HTTP handlers of the read-only events API: the workspace's stored event envelopes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from control import pagination
from control.context import authorize
from control.errors import ApiError
from control.events import repository
from control.events.envelope import parse_event_id
from control.events.schemas import EventOut, EventPage, ListEvents
from control.http import json_response, read_query
from control.openapi import Operation


async def list_events(request: Request) -> Response:
    ctx, principal = await authorize(request, "webhooks:read")
    query = read_query(request, ListEvents)
    before = pagination.decode(query.cursor)
    async with ctx.sessions.begin() as session:
        envelopes = await repository.page(
            session, principal.workspace_id, types=query.types(), before=before, limit=query.limit
        )
    # As pagination.next_cursor: only a full page may have more. The envelope's id is the
    # row's id, which is what the repository pages on.
    last = parse_event_id(envelopes[-1]["id"]) if len(envelopes) == query.limit else None
    cursor = pagination.encode(last) if last is not None else None
    return json_response({"data": envelopes, "next_cursor": cursor})


async def get_event(request: Request) -> Response:
    ctx, principal = await authorize(request, "webhooks:read")
    event_id = parse_event_id(request.path_params["event_id"])
    if event_id is None:
        raise ApiError.not_found("event")
    async with ctx.sessions.begin() as session:
        envelope = await repository.get(session, principal.workspace_id, event_id)
    if envelope is None:
        raise ApiError.not_found("event")
    return json_response(envelope)


OPERATIONS = [
    Operation(
        "GET",
        "/api/v1/events",
        list_events,
        "List the workspace's events, newest first; filter with repeatable `type`",
        "webhooks:read",
        response=EventPage,
        errors=(400,),
        query=ListEvents,
    ),
    Operation(
        "GET",
        "/api/v1/events/{event_id}",
        get_event,
        "Get an event envelope by its evt_ id",
        "webhooks:read",
        response=EventOut,
        errors=(404,),
        params={"event_id": "The event's id (`evt_…`)."},
    ),
]
