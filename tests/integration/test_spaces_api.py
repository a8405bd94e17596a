"""The spaces API against real PostgreSQL: CRUD, paging, isolation, scopes and bad input."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.testclient import TestClient

from control.settings import ControlSettings
from tests.integration.conftest import Seed, Tenant, resources, run


def _problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def _create(api: TestClient, tenant: Tenant, name: str, **extra: Any) -> dict:
    response = api.post("/api/v1/spaces", json={"name": name, **extra}, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _in_db(settings: ControlSettings, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    from control.db import session_factory

    async def go() -> Any:
        async with resources(settings) as (engine, _), session_factory(engine).begin() as session:
            return await work(session)

    return run(go())


def _read_only_key(settings: ControlSettings, tenant: Tenant) -> dict[str, str]:
    from control.keys import service

    async def create(session: AsyncSession) -> str:
        _, key = await service.create(
            session, settings.secret_key, uuid.UUID(tenant.workspace_id), "ro", ["links:read"]
        )
        return key

    return {"authorization": f"Bearer {_in_db(settings, create)}"}


def _link_in(
    settings: ControlSettings, tenant: Tenant, space_id: str, deleted: bool = False
) -> uuid.UUID:
    """A link row straight in SQL: the links API is not what is under test here."""
    link_id = uuid.uuid4()

    async def insert(session: AsyncSession) -> None:
        await session.execute(
            text(
                "INSERT INTO links (id, workspace_id, domain_id, slug, destination,"
                " redirect_status, version, space_id, deleted_at)"
                " SELECT :id, :ws, id, :slug, 'https://a.example/', 302, 1, :space,"
                " CASE WHEN :deleted THEN now() END FROM domains WHERE is_default"
            ),
            {
                "id": link_id,
                "ws": uuid.UUID(tenant.workspace_id),
                "slug": link_id.hex[:12],
                "space": uuid.UUID(space_id),
                "deleted": deleted,
            },
        )

    _in_db(settings, insert)
    return link_id


# -- create and read --------------------------------------------------------------------


def test_create_space_answers_201_with_the_space(api: TestClient, seed: Seed) -> None:
    # Given a name and a description, both padded
    body = {"name": " Marketing ", "description": "  Campaign links.\nOwned by growth. "}

    # When the space is created
    response = api.post("/api/v1/spaces", json=body, headers=seed.alice.auth)

    # Then both are stored trimmed, with no links yet
    assert response.status_code == 201, response.text
    space = response.json()
    assert space["name"] == "Marketing"
    assert space["description"] == "Campaign links.\nOwned by growth."
    assert space["link_count"] == 0
    assert set(space) == {"id", "name", "description", "link_count", "created_at"}
    assert response.headers["location"] == f"/api/v1/spaces/{space['id']}"


@pytest.mark.parametrize("description", [None, "", "   "])
def test_a_missing_or_blank_description_is_null(
    api: TestClient, seed: Seed, description: str | None
) -> None:
    assert _create(api, seed.alice, "plain", description=description)["description"] is None


def test_created_space_can_be_read_back(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice, "sales", description="Deals")

    response = api.get(f"/api/v1/spaces/{created['id']}", headers=seed.alice.auth)

    assert response.status_code == 200
    assert response.json() == created


def test_existing_name_answers_409_name_taken(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "ops")

    response = api.post("/api/v1/spaces", json={"name": "ops "}, headers=seed.alice.auth)

    _problem(response, 409, "name_taken")


def test_the_same_name_is_free_in_another_workspace(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "ops")

    assert _create(api, seed.bob, "ops")["name"] == "ops"


# -- list ---------------------------------------------------------------------------------


def test_list_pages_through_every_space_once(api: TestClient, seed: Seed) -> None:
    # Given more spaces than one page holds
    created = [_create(api, seed.alice, f"space-{i}")["id"] for i in range(5)]

    # When the pages are followed until next_cursor is null
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/spaces", params=params, headers=seed.alice.auth).json()
        assert len(page["data"]) <= 2
        seen.extend(s["id"] for s in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    # Then every space is seen exactly once, oldest first
    assert seen == created


def test_list_filters_by_name_substring(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "Brand EMEA")
    _create(api, seed.alice, "Brand US")
    _create(api, seed.alice, "Support")

    response = api.get("/api/v1/spaces", params={"q": "brand"}, headers=seed.alice.auth)

    assert [s["name"] for s in response.json()["data"]] == ["Brand EMEA", "Brand US"]


@pytest.mark.parametrize(
    ("params", "code"),
    [({"limit": "0"}, "invalid_query"), ({"cursor": "%%%"}, "invalid_cursor")],
)
def test_bad_list_parameters_answer_400(
    api: TestClient, seed: Seed, params: dict[str, str], code: str
) -> None:
    _problem(api.get("/api/v1/spaces", params=params, headers=seed.alice.auth), 400, code)


# -- update and delete --------------------------------------------------------------------


def test_patch_renames_and_describes(api: TestClient, seed: Seed) -> None:
    space = _create(api, seed.alice, "old")

    response = api.patch(
        f"/api/v1/spaces/{space['id']}",
        json={"name": "new", "description": "Now described"},
        headers=seed.alice.auth,
    )

    assert response.status_code == 200, response.text
    assert response.json() == {**space, "name": "new", "description": "Now described"}


def test_patch_with_null_description_removes_it(api: TestClient, seed: Seed) -> None:
    space = _create(api, seed.alice, "keep", description="Gone soon")

    response = api.patch(
        f"/api/v1/spaces/{space['id']}", json={"description": None}, headers=seed.alice.auth
    )

    assert response.json() == {**space, "description": None}


def test_patch_without_description_keeps_it(api: TestClient, seed: Seed) -> None:
    space = _create(api, seed.alice, "keep", description="Stays")

    response = api.patch(
        f"/api/v1/spaces/{space['id']}", json={"name": "renamed"}, headers=seed.alice.auth
    )

    assert response.json()["description"] == "Stays"


def test_rename_to_a_taken_name_answers_409_name_taken(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "taken")
    space = _create(api, seed.alice, "mine")

    response = api.patch(
        f"/api/v1/spaces/{space['id']}", json={"name": "taken"}, headers=seed.alice.auth
    )

    _problem(response, 409, "name_taken")
    assert api.get(f"/api/v1/spaces/{space['id']}", headers=seed.alice.auth).json() == space


def test_delete_answers_204_and_the_space_is_gone(api: TestClient, seed: Seed) -> None:
    space = _create(api, seed.alice, "bye")

    response = api.delete(f"/api/v1/spaces/{space['id']}", headers=seed.alice.auth)

    assert response.status_code == 204
    _problem(
        api.get(f"/api/v1/spaces/{space['id']}", headers=seed.alice.auth), 404, "space_not_found"
    )


# -- links --------------------------------------------------------------------------------


def test_link_count_counts_live_links_only(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    space = _create(api, seed.alice, "counted")
    for deleted in (False, True):
        _link_in(control_settings, seed.alice, space["id"], deleted)

    one = api.get(f"/api/v1/spaces/{space['id']}", headers=seed.alice.auth).json()
    listed = api.get("/api/v1/spaces", headers=seed.alice.auth).json()["data"]

    assert one["link_count"] == 1
    assert [s["link_count"] for s in listed] == [1]


def test_deleting_a_space_keeps_its_links_outside_any_space(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    space = _create(api, seed.alice, "temporary")
    link_id = _link_in(control_settings, seed.alice, space["id"])

    api.delete(f"/api/v1/spaces/{space['id']}", headers=seed.alice.auth)

    async def space_of_link(session: AsyncSession) -> Any:
        result = await session.execute(
            text("SELECT space_id FROM links WHERE id = :id"), {"id": link_id}
        )
        return result.one()

    assert tuple(_in_db(control_settings, space_of_link)) == (None,)


# -- isolation, ids and scopes ------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_another_workspaces_space_answers_404(api: TestClient, seed: Seed, method: str) -> None:
    space = _create(api, seed.alice, "private")

    response = api.request(
        method, f"/api/v1/spaces/{space['id']}", json={"name": "stolen"}, headers=seed.bob.auth
    )

    _problem(response, 404, "space_not_found")
    assert api.get(f"/api/v1/spaces/{space['id']}", headers=seed.alice.auth).json() == space


def test_another_workspaces_spaces_are_not_listed(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "private")

    assert api.get("/api/v1/spaces", headers=seed.bob.auth).json() == {
        "data": [],
        "next_cursor": None,
    }


@pytest.mark.parametrize("space_id", ["nope", str(uuid.UUID(int=0)), "1' OR 1=1"])
def test_unknown_or_malformed_space_id_answers_404(
    api: TestClient, seed: Seed, space_id: str
) -> None:
    response = api.get(f"/api/v1/spaces/{space_id}", headers=seed.alice.auth)

    _problem(response, 404, "space_not_found")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/spaces", {"name": "x"}),
        ("PATCH", "/api/v1/spaces/{id}", {"name": "x"}),
        ("DELETE", "/api/v1/spaces/{id}", None),
    ],
)
def test_key_without_write_scope_answers_403(
    api: TestClient,
    seed: Seed,
    control_settings: ControlSettings,
    method: str,
    path: str,
    body: dict | None,
) -> None:
    space = _create(api, seed.alice, "guarded")
    read_only = _read_only_key(control_settings, seed.alice)

    response = api.request(method, path.format(id=space["id"]), json=body, headers=read_only)

    assert _problem(response, 403, "insufficient_scope")["scope"] == "links:write"
    assert api.get(f"/api/v1/spaces/{space['id']}", headers=read_only).json() == space


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ["x"]}, "name"),
        ({"name": "x", "owner": "me"}, "owner"),
        ({"name": ""}, "name"),
        ({"name": "a" * 65}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"name": "x", "description": 5}, "description"),
        ({"name": "x", "description": "d" * 501}, "description"),
        ({"name": "x", "description": "bell\x07"}, "description"),
    ],
)
def test_bad_create_body_answers_422_validation_failed(
    api: TestClient, seed: Seed, body: dict, field: str
) -> None:
    response = api.post("/api/v1/spaces", json=body, headers=seed.alice.auth)

    assert _problem(response, 422, "validation_failed")["field"] == field


def test_a_description_of_500_characters_is_accepted(api: TestClient, seed: Seed) -> None:
    assert len(_create(api, seed.alice, "long", description="d" * 500)["description"]) == 500


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": None}, "name"), ({"name": " "}, "name"), ({"link_count": 3}, "link_count")],
)
def test_bad_patch_body_answers_422_validation_failed(
    api: TestClient, seed: Seed, body: dict, field: str
) -> None:
    space = _create(api, seed.alice, "target")

    response = api.patch(f"/api/v1/spaces/{space['id']}", json=body, headers=seed.alice.auth)

    assert _problem(response, 422, "validation_failed")["field"] == field


# -- idempotency --------------------------------------------------------------------------


def test_a_repeated_idempotency_key_replays_the_first_answer(api: TestClient, seed: Seed) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "space-1"}
    first = api.post("/api/v1/spaces", json={"name": "once"}, headers=headers)

    again = api.post("/api/v1/spaces", json={"name": "once"}, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(api.get("/api/v1/spaces", headers=seed.alice.auth).json()["data"]) == 1


def test_an_idempotency_key_reused_with_another_body_answers_422(
    api: TestClient, seed: Seed
) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "space-2"}
    api.post("/api/v1/spaces", json={"name": "one"}, headers=headers)

    response = api.post("/api/v1/spaces", json={"name": "two"}, headers=headers)

    _problem(response, 422, "idempotency_key_reused")


# -- helpers for the links service --------------------------------------------------------


@pytest.mark.parametrize("by", ["id", "name"])
def test_resolve_finds_a_space_by_id_or_name(
    api: TestClient, seed: Seed, control_settings: ControlSettings, by: str
) -> None:
    from control.spaces import service

    space = _create(api, seed.alice, "Growth")

    async def resolve(session: AsyncSession) -> str:
        found = await service.resolve(session, uuid.UUID(seed.alice.workspace_id), space[by])
        return str(found.id)

    assert _in_db(control_settings, resolve) == space["id"]


@pytest.mark.parametrize("ref", ["unknown", str(uuid.UUID(int=1)), "a\x00b", "", "bobs"])
def test_resolve_refuses_what_is_not_a_space_of_the_workspace(
    api: TestClient, seed: Seed, control_settings: ControlSettings, ref: str
) -> None:
    from control.errors import ApiError
    from control.spaces import service

    bobs = _create(api, seed.bob, "bobs")

    async def resolve(session: AsyncSession) -> None:
        wanted = bobs["id"] if ref == "bobs" else ref
        await service.resolve(session, uuid.UUID(seed.alice.workspace_id), wanted)

    with pytest.raises(ApiError) as caught:
        _in_db(control_settings, resolve)

    assert caught.value.code == "space_not_found"


def test_names_maps_ids_to_names(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    from control.spaces import service

    a = _create(api, seed.alice, "A")
    b = _create(api, seed.alice, "B")

    async def names(session: AsyncSession) -> dict[uuid.UUID, str]:
        return await service.names(session, [uuid.UUID(a["id"]), uuid.UUID(b["id"])])

    assert _in_db(control_settings, names) == {uuid.UUID(a["id"]): "A", uuid.UUID(b["id"]): "B"}
