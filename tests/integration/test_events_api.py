"""The read-only events API against real PostgreSQL: envelopes as stored, newest first,
filtered by type, paged, and only ever the caller's workspace's.

Events are written with control.events.service.emit directly, so these tests do not depend
on which API calls emit what.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient

from control.events import envelope
from control.settings import ControlSettings
from tests.integration.conftest import Seed, Tenant, resources, run


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def _emit(settings: ControlSettings, tenant: Tenant, types: list[str]) -> list[dict[str, Any]]:
    """Store one event per type, oldest first, each in its own millisecond so that id order
    (UUIDv7) is emission order."""
    from control.db import session_factory
    from control.events import service
    from control.workspaces import repository as workspaces

    async def go() -> list[dict[str, Any]]:
        out = []
        async with resources(settings) as (engine, _):
            sessions = session_factory(engine)
            async with sessions.begin() as session:
                ws = await workspaces.get(session, uuid.UUID(tenant.workspace_id))
            assert ws is not None
            for i, event_type in enumerate(types):
                async with sessions.begin() as session:
                    out.append(
                        await service.emit(session, ws.organization_id, ws.id, event_type, {"n": i})
                    )
                await asyncio.sleep(0.002)
        return out

    return run(go())  # type: ignore[no-any-return]


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["data"]]


def test_list_answers_envelopes_newest_first(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    emitted = _emit(control_settings, seed.alice, [envelope.LINK_CREATED, envelope.LINK_UPDATED])

    response = api.get("/api/v1/events", headers=seed.alice.auth)

    assert response.status_code == 200, response.text
    assert response.json() == {"data": emitted[::-1], "next_cursor": None}
    first = response.json()["data"][1]
    assert first["id"].startswith("evt_")
    assert first["type"] == "link.created"
    assert first["api_version"] == envelope.API_VERSION
    assert first["workspace_id"] == seed.alice.workspace_id
    assert first["data"] == {"n": 0}


def test_an_empty_workspace_lists_no_events(api: TestClient, seed: Seed) -> None:
    assert api.get("/api/v1/events", headers=seed.alice.auth).json() == {
        "data": [],
        "next_cursor": None,
    }


def test_list_filters_by_one_or_more_types(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    emitted = _emit(
        control_settings,
        seed.alice,
        [envelope.LINK_CREATED, envelope.LINK_UPDATED, envelope.LINK_CLICKED, "link.created"],
    )
    ids = [e["id"] for e in emitted]

    one = api.get("/api/v1/events", params={"type": "link.created"}, headers=seed.alice.auth)
    two = api.get(
        "/api/v1/events",
        params=[("type", "link.created"), ("type", "link.clicked")],
        headers=seed.alice.auth,
    )
    none = api.get("/api/v1/events", params={"type": "no.such"}, headers=seed.alice.auth)

    assert _ids(one) == [ids[3], ids[0]]
    assert _ids(two) == [ids[3], ids[2], ids[0]]
    assert _ids(none) == []


def test_list_pages_with_a_cursor_until_the_end(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    emitted = _emit(control_settings, seed.alice, [envelope.LINK_CREATED] * 5)
    seen: list[str] = []
    cursors: list[str | None] = []
    cursor = None

    for _ in range(5):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/v1/events", params=params, headers=seed.alice.auth)
        seen += _ids(response)
        cursor = response.json()["next_cursor"]
        cursors.append(cursor)
        if cursor is None:
            break

    assert seen == [e["id"] for e in reversed(emitted)]
    assert len(cursors) == 3
    assert cursors[-1] is None


def test_paging_keeps_the_type_filter(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    emitted = _emit(
        control_settings,
        seed.alice,
        ["link.created", "link.updated", "link.created", "link.updated", "link.created"],
    )
    created = [e["id"] for e in reversed(emitted) if e["type"] == "link.created"]

    first = api.get(
        "/api/v1/events", params={"type": "link.created", "limit": "2"}, headers=seed.alice.auth
    ).json()
    rest = api.get(
        "/api/v1/events",
        params={"type": "link.created", "limit": "2", "cursor": first["next_cursor"]},
        headers=seed.alice.auth,
    ).json()

    assert [e["id"] for e in first["data"] + rest["data"]] == created
    assert rest["next_cursor"] is None


def test_get_answers_the_stored_envelope(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    [emitted] = _emit(control_settings, seed.alice, [envelope.LINK_CREATED])

    response = api.get(f"/api/v1/events/{emitted['id']}", headers=seed.alice.auth)

    assert response.status_code == 200, response.text
    assert response.json() == emitted


@pytest.mark.parametrize(
    "event_id",
    [
        "nope",
        "evt_",
        "evt_zz",
        "evt_0c6aae9a537e425aa54df9975e40a2af",  # fixed: xdist workers must agree on ids
        "c41fd536-bd69-4f31-8893-6faf12466eb6",
        "1' OR 1=1",
    ],
)
def test_unknown_or_malformed_event_id_answers_404(
    api: TestClient, seed: Seed, event_id: str
) -> None:
    _problem(api.get(f"/api/v1/events/{event_id}", headers=seed.alice.auth), 404, "event_not_found")


def test_workspaces_see_only_their_own_events(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    [alices] = _emit(control_settings, seed.alice, [envelope.LINK_CREATED])
    [bobs] = _emit(control_settings, seed.bob, [envelope.LINK_CREATED])

    assert _ids(api.get("/api/v1/events", headers=seed.alice.auth)) == [alices["id"]]
    assert _ids(api.get("/api/v1/events", headers=seed.bob.auth)) == [bobs["id"]]
    _problem(
        api.get(f"/api/v1/events/{bobs['id']}", headers=seed.alice.auth), 404, "event_not_found"
    )


def test_events_need_webhooks_read(api: TestClient, seed: Seed) -> None:
    key = api.post(
        "/api/v1/api-keys", json={"name": "x", "scopes": ["links:write"]}, headers=seed.alice.auth
    ).json()["key"]
    headers = {"authorization": f"Bearer {key}"}

    body = _problem(api.get("/api/v1/events", headers=headers), 403, "insufficient_scope")
    assert body["scope"] == "webhooks:read"
    _problem(api.get(f"/api/v1/events/evt_{'0' * 32}", headers=headers), 403, "insufficient_scope")
    _problem(api.get("/api/v1/events"), 401, "unauthorized")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "invalid_query"),
        ({"limit": "1000"}, "invalid_query"),
        ({"kind": "link.created"}, "invalid_query"),
        ({"type": ""}, "invalid_query"),
        ([("type", "t")] * 21, "invalid_query"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
    ],
)
def test_bad_list_query_answers_400(api: TestClient, seed: Seed, params: Any, code: str) -> None:
    _problem(api.get("/api/v1/events", params=params, headers=seed.alice.auth), 400, code)
