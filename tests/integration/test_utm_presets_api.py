"""The UTM presets API against real PostgreSQL: CRUD, paging, isolation, scopes, bad input."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.testclient import TestClient

from control.settings import ControlSettings
from tests.integration.conftest import Seed, Tenant, resources, run

UTM = ("source", "medium", "campaign", "term", "content")


def _problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def _create(api: TestClient, tenant: Tenant, name: str, **utm: Any) -> dict:
    body = {"name": name, **(utm or {"source": "newsletter"})}
    response = api.post("/api/v1/utm-presets", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


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


# -- create and read --------------------------------------------------------------------


def test_create_preset_answers_201_with_every_value(api: TestClient, seed: Seed) -> None:
    # Given a name and all five UTM values, some padded
    body = {
        "name": " Spring newsletter ",
        "source": " newsletter ",
        "medium": "email",
        "campaign": "spring-2026",
        "term": "shoes",
        "content": "hero-banner",
    }

    # When the preset is created
    response = api.post("/api/v1/utm-presets", json=body, headers=seed.alice.auth)

    # Then it is stored trimmed, with creation and update times
    assert response.status_code == 201, response.text
    preset = response.json()
    assert {k: preset[k] for k in ("name", *UTM)} == {
        **body,
        "name": "Spring newsletter",
        "source": "newsletter",
    }
    assert preset["created_at"] == preset["updated_at"]
    assert response.headers["location"] == f"/api/v1/utm-presets/{preset['id']}"


def test_values_not_given_are_null(api: TestClient, seed: Seed) -> None:
    preset = _create(api, seed.alice, "only medium", medium="cpc")

    assert {k: preset[k] for k in UTM} == {
        "source": None,
        "medium": "cpc",
        "campaign": None,
        "term": None,
        "content": None,
    }


@pytest.mark.parametrize(
    "utm", [{}, {"source": None}, {"source": "", "medium": "  "}], ids=["none", "null", "blank"]
)
def test_a_preset_without_any_value_answers_422_utm_required(
    api: TestClient, seed: Seed, utm: dict
) -> None:
    response = api.post("/api/v1/utm-presets", json={"name": "x", **utm}, headers=seed.alice.auth)

    _problem(response, 422, "utm_required")


def test_created_preset_can_be_read_back(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice, "ads", source="google", medium="cpc")

    response = api.get(f"/api/v1/utm-presets/{created['id']}", headers=seed.alice.auth)

    assert response.status_code == 200
    assert response.json() == created


def test_existing_name_answers_409_name_taken(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "ads")

    response = api.post(
        "/api/v1/utm-presets", json={"name": "ads", "source": "bing"}, headers=seed.alice.auth
    )

    _problem(response, 409, "name_taken")


def test_the_same_name_is_free_in_another_workspace(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "ads")

    assert _create(api, seed.bob, "ads")["name"] == "ads"


# -- list ---------------------------------------------------------------------------------


def test_list_pages_through_every_preset_once(api: TestClient, seed: Seed) -> None:
    created = [_create(api, seed.alice, f"preset-{i}")["id"] for i in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/utm-presets", params=params, headers=seed.alice.auth).json()
        seen.extend(p["id"] for p in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == created


def test_list_filters_by_name_substring(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "Google Ads")
    _create(api, seed.alice, "Newsletter")

    response = api.get("/api/v1/utm-presets", params={"q": "ADS"}, headers=seed.alice.auth)

    assert [p["name"] for p in response.json()["data"]] == ["Google Ads"]


def test_limit_above_200_answers_400(api: TestClient, seed: Seed) -> None:
    response = api.get("/api/v1/utm-presets", params={"limit": "500"}, headers=seed.alice.auth)

    _problem(response, 400, "invalid_query")


# -- update and delete --------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(api: TestClient, seed: Seed) -> None:
    preset = _create(api, seed.alice, "ads", source="google", medium="cpc")

    response = api.patch(
        f"/api/v1/utm-presets/{preset['id']}",
        json={"name": "Search ads", "campaign": "q3"},
        headers=seed.alice.auth,
    )

    assert response.status_code == 200, response.text
    changed = response.json()
    assert {k: changed[k] for k in ("name", *UTM)} == {
        "name": "Search ads",
        "source": "google",
        "medium": "cpc",
        "campaign": "q3",
        "term": None,
        "content": None,
    }
    assert _time(changed["updated_at"]) > _time(preset["updated_at"])
    assert changed["created_at"] == preset["created_at"]


def test_patch_with_null_removes_a_value(api: TestClient, seed: Seed) -> None:
    preset = _create(api, seed.alice, "ads", source="google", medium="cpc")

    response = api.patch(
        f"/api/v1/utm-presets/{preset['id']}", json={"medium": None}, headers=seed.alice.auth
    )

    assert (response.json()["source"], response.json()["medium"]) == ("google", None)


def test_removing_the_last_value_answers_422_utm_required(api: TestClient, seed: Seed) -> None:
    preset = _create(api, seed.alice, "ads", source="google")

    response = api.patch(
        f"/api/v1/utm-presets/{preset['id']}", json={"source": None}, headers=seed.alice.auth
    )

    _problem(response, 422, "utm_required")
    assert api.get(f"/api/v1/utm-presets/{preset['id']}", headers=seed.alice.auth).json() == preset


def test_replacing_the_last_value_with_another_is_fine(api: TestClient, seed: Seed) -> None:
    preset = _create(api, seed.alice, "ads", source="google")

    response = api.patch(
        f"/api/v1/utm-presets/{preset['id']}",
        json={"source": None, "medium": "cpc"},
        headers=seed.alice.auth,
    )

    assert (response.json()["source"], response.json()["medium"]) == (None, "cpc")


def test_empty_patch_changes_nothing(api: TestClient, seed: Seed) -> None:
    preset = _create(api, seed.alice, "ads")

    response = api.patch(f"/api/v1/utm-presets/{preset['id']}", json={}, headers=seed.alice.auth)

    assert response.json() == preset


def test_rename_to_a_taken_name_answers_409_name_taken(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "taken")
    preset = _create(api, seed.alice, "mine")

    response = api.patch(
        f"/api/v1/utm-presets/{preset['id']}", json={"name": "taken"}, headers=seed.alice.auth
    )

    _problem(response, 409, "name_taken")


def test_delete_answers_204_and_the_preset_is_gone(api: TestClient, seed: Seed) -> None:
    preset = _create(api, seed.alice, "bye")

    response = api.delete(f"/api/v1/utm-presets/{preset['id']}", headers=seed.alice.auth)

    assert response.status_code == 204
    _problem(
        api.get(f"/api/v1/utm-presets/{preset['id']}", headers=seed.alice.auth),
        404,
        "utm_preset_not_found",
    )


def test_deleting_a_preset_detaches_it_from_its_links(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    # Given a link that uses the preset (inserted straight in SQL)
    preset = _create(api, seed.alice, "used")

    async def link_with_preset(session: AsyncSession) -> None:
        await session.execute(
            text(
                "INSERT INTO links (id, workspace_id, domain_id, slug, destination,"
                " redirect_status, version, utm_preset_id)"
                " SELECT :id, :ws, id, 'preset-link', 'https://a.example/', 302, 1, :preset"
                " FROM domains WHERE is_default"
            ),
            {
                "id": uuid.uuid4(),
                "ws": uuid.UUID(seed.alice.workspace_id),
                "preset": uuid.UUID(preset["id"]),
            },
        )

    _in_db(control_settings, link_with_preset)

    # When the preset is deleted
    response = api.delete(f"/api/v1/utm-presets/{preset['id']}", headers=seed.alice.auth)

    # Then the link stays, without a preset
    async def presets_of_links(session: AsyncSession) -> list[Any]:
        return list((await session.execute(text("SELECT utm_preset_id FROM links"))).scalars())

    assert response.status_code == 204
    assert _in_db(control_settings, presets_of_links) == [None]


# -- isolation, ids and scopes ------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_another_workspaces_preset_answers_404(api: TestClient, seed: Seed, method: str) -> None:
    preset = _create(api, seed.alice, "private")

    response = api.request(
        method,
        f"/api/v1/utm-presets/{preset['id']}",
        json={"source": "stolen"},
        headers=seed.bob.auth,
    )

    _problem(response, 404, "utm_preset_not_found")
    assert api.get(f"/api/v1/utm-presets/{preset['id']}", headers=seed.alice.auth).json() == preset


def test_another_workspaces_presets_are_not_listed(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "private")

    assert api.get("/api/v1/utm-presets", headers=seed.bob.auth).json()["data"] == []


@pytest.mark.parametrize("preset_id", ["nope", str(uuid.UUID(int=0)), "%00"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_or_malformed_preset_id_answers_404(
    api: TestClient, seed: Seed, preset_id: str, method: str
) -> None:
    response = api.request(
        method, f"/api/v1/utm-presets/{preset_id}", json={"source": "x"}, headers=seed.alice.auth
    )

    _problem(response, 404, "utm_preset_not_found")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/utm-presets", {"name": "x", "source": "y"}),
        ("PATCH", "/api/v1/utm-presets/{id}", {"source": "y"}),
        ("DELETE", "/api/v1/utm-presets/{id}", None),
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
    preset = _create(api, seed.alice, "guarded")
    read_only = _read_only_key(control_settings, seed.alice)

    response = api.request(method, path.format(id=preset["id"]), json=body, headers=read_only)

    assert _problem(response, 403, "insufficient_scope")["scope"] == "links:write"
    assert api.get(f"/api/v1/utm-presets/{preset['id']}", headers=read_only).json() == preset


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "x"}, "name"),
        ({"name": 1, "source": "x"}, "name"),
        ({"name": "", "source": "x"}, "name"),
        ({"name": "n" * 65, "source": "x"}, "name"),
        ({"name": "x", "source": 7}, "source"),
        ({"name": "x", "medium": ["a"]}, "medium"),
        ({"name": "x", "campaign": "c" * 257}, "campaign"),
        ({"name": "x", "term": "a\r\nb"}, "term"),
        ({"name": "x", "content": "\u200bhidden"}, "content"),
        ({"name": "x", "source": "y", "utm_id": "z"}, "utm_id"),
    ],
)
def test_bad_create_body_answers_422_validation_failed(
    api: TestClient, seed: Seed, body: dict, field: str
) -> None:
    response = api.post("/api/v1/utm-presets", json=body, headers=seed.alice.auth)

    assert _problem(response, 422, "validation_failed")["field"] == field


def test_a_value_of_256_characters_is_accepted(api: TestClient, seed: Seed) -> None:
    assert _create(api, seed.alice, "long", campaign="c" * 256)["campaign"] == "c" * 256


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": None}, "name"), ({"term": 5}, "term"), ({"created_at": "now"}, "created_at")],
)
def test_bad_patch_body_answers_422_validation_failed(
    api: TestClient, seed: Seed, body: dict, field: str
) -> None:
    preset = _create(api, seed.alice, "target")

    response = api.patch(f"/api/v1/utm-presets/{preset['id']}", json=body, headers=seed.alice.auth)

    assert _problem(response, 422, "validation_failed")["field"] == field


# -- idempotency --------------------------------------------------------------------------


def test_a_repeated_idempotency_key_replays_the_first_answer(api: TestClient, seed: Seed) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "preset-1"}
    body = {"name": "once", "source": "x"}
    first = api.post("/api/v1/utm-presets", json=body, headers=headers)

    again = api.post("/api/v1/utm-presets", json=body, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(api.get("/api/v1/utm-presets", headers=seed.alice.auth).json()["data"]) == 1


def test_an_idempotency_key_reused_with_another_body_answers_422(
    api: TestClient, seed: Seed
) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "preset-2"}
    api.post("/api/v1/utm-presets", json={"name": "one", "source": "x"}, headers=headers)

    response = api.post("/api/v1/utm-presets", json={"name": "one", "source": "y"}, headers=headers)

    _problem(response, 422, "idempotency_key_reused")


# -- helpers for the links service --------------------------------------------------------


def test_resolve_finds_a_preset_by_name(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    from control.presets import service

    preset = _create(api, seed.alice, "Ads")

    async def resolve(session: AsyncSession) -> str:
        found = await service.resolve(session, uuid.UUID(seed.alice.workspace_id), " Ads ")
        return str(found.id)

    assert _in_db(control_settings, resolve) == preset["id"]


@pytest.mark.parametrize("name", ["missing", "", "a\x00b", "bobs"])
def test_resolve_refuses_what_is_not_a_preset_of_the_workspace(
    api: TestClient, seed: Seed, control_settings: ControlSettings, name: str
) -> None:
    from control.errors import ApiError
    from control.presets import service

    _create(api, seed.bob, "bobs")

    async def resolve(session: AsyncSession) -> None:
        await service.resolve(session, uuid.UUID(seed.alice.workspace_id), name)

    with pytest.raises(ApiError) as caught:
        _in_db(control_settings, resolve)

    assert caught.value.code == "utm_preset_not_found"


def test_by_ids_maps_ids_to_presets(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    from control.presets import service

    a = _create(api, seed.alice, "A", source="a")
    b = _create(api, seed.alice, "B", source="b")

    async def by_ids(session: AsyncSession) -> dict[str, str | None]:
        found = await service.by_ids(session, [uuid.UUID(a["id"]), uuid.UUID(b["id"])])
        return {str(k): v.source for k, v in found.items()}

    assert _in_db(control_settings, by_ids) == {a["id"]: "a", b["id"]: "b"}
