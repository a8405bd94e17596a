"""The API keys and workspace APIs against real PostgreSQL: secrets shown once, scopes
never widened, revocation immediate, workspaces isolated."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

from control.keys import format as keyformat
from control.keys.scopes import DEFAULT_SCOPES
from control.settings import ControlSettings
from tests.integration.conftest import Seed, resources, run


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    return body


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _create(api: TestClient, auth: dict[str, str], **body: object) -> dict[str, Any]:
    response = api.post("/api/v1/api-keys", json={"name": "ci", **body}, headers=auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# -- create ---------------------------------------------------------------------------------


def test_create_answers_201_with_a_well_formed_key_shown_once(api: TestClient, seed: Seed) -> None:
    response = api.post(
        "/api/v1/api-keys",
        json={"name": "  deploy bot  ", "scopes": ["links:read"]},
        headers=seed.alice.auth,
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert keyformat.well_formed(created["key"])
    assert created["key_redacted"] is False
    assert created["name"] == "deploy bot"
    assert created["scopes"] == ["links:read"]
    assert created["prefix"] == keyformat.display_prefix(created["key"])
    assert created["last_used_at"] is None
    assert created["revoked_at"] is None
    assert response.headers["location"] == f"/api/v1/api-keys/{created['id']}"
    assert response.headers["cache-control"] == "no-store"


def test_scopes_default_to_the_callers_own(api: TestClient, seed: Seed) -> None:
    narrow = _create(api, seed.alice.auth, scopes=["keys:write", "links:read"])

    child = _create(api, _bearer(narrow["key"]))

    assert child["scopes"] == ["keys:write", "links:read"]
    assert _create(api, seed.alice.auth)["scopes"] == list(DEFAULT_SCOPES)


def test_a_new_key_works_within_its_scopes_and_not_outside(api: TestClient, seed: Seed) -> None:
    key = _create(api, seed.alice.auth, scopes=["keys:read"])["key"]

    assert api.get("/api/v1/api-keys", headers=_bearer(key)).status_code == 200
    body = _problem(
        api.post("/api/v1/api-keys", json={"name": "x"}, headers=_bearer(key)),
        403,
        "insufficient_scope",
    )
    assert body["scope"] == "keys:write"
    _problem(api.get("/api/v1/events", headers=_bearer(key)), 403, "insufficient_scope")


def test_write_grants_read_to_the_new_key(api: TestClient, seed: Seed) -> None:
    writer = _create(api, seed.alice.auth, scopes=["keys:write", "links:write"])["key"]

    child = _create(api, _bearer(writer), scopes=["links:read", "keys:read"])

    assert child["scopes"] == ["links:read", "keys:read"]


@pytest.mark.parametrize(
    ("held", "asked", "missing"),
    [
        (list(DEFAULT_SCOPES), ["moderation:write"], ["moderation:write"]),
        (["keys:write"], ["keys:write", "links:write"], ["links:write"]),
        (["keys:write", "links:read"], ["links:write"], ["links:write"]),
    ],
)
def test_granting_scopes_the_caller_lacks_answers_403(
    api: TestClient, seed: Seed, held: list[str], asked: list[str], missing: list[str]
) -> None:
    caller = _create(api, seed.alice.auth, scopes=held)["key"]

    response = api.post(
        "/api/v1/api-keys", json={"name": "x", "scopes": asked}, headers=_bearer(caller)
    )

    assert _problem(response, 403, "scope_escalation")["scopes"] == missing


def test_unknown_scope_answers_422(api: TestClient, seed: Seed) -> None:
    response = api.post(
        "/api/v1/api-keys",
        json={"name": "x", "scopes": ["links:read", "links:admin"]},
        headers=seed.alice.auth,
    )

    body = _problem(response, 422, "unknown_scope")
    assert body["field"] == "scopes"
    assert body["scopes"] == ["links:admin"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "evil\u202etxt"}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": "links:read"}, "scopes"),
        ({"name": "x", "key": "ric_mine"}, "key"),
    ],
)
def test_bad_body_answers_422_validation_failed(
    api: TestClient, seed: Seed, body: dict[str, Any], field: str
) -> None:
    response = api.post("/api/v1/api-keys", json=body, headers=seed.alice.auth)

    assert _problem(response, 422, "validation_failed")["field"] == field


def test_a_name_of_100_characters_is_accepted(api: TestClient, seed: Seed) -> None:
    assert _create(api, seed.alice.auth, name="é" * 100)["name"] == "é" * 100


# -- Idempotency-Key ------------------------------------------------------------------------


def test_idempotent_replay_returns_the_same_key_without_its_secret(
    api: TestClient, seed: Seed
) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "create-ci-key"}
    body = {"name": "ci", "scopes": ["links:read"]}

    first = api.post("/api/v1/api-keys", json=body, headers=headers)
    again = api.post("/api/v1/api-keys", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["cache-control"] == "no-store"
    plaintext = first.json()["key"]
    assert keyformat.well_formed(plaintext)
    replayed = again.json()
    assert replayed["id"] == first.json()["id"]
    assert replayed["key"] is None
    assert replayed["key_redacted"] is True
    assert plaintext not in again.text
    assert again.headers["location"] == first.headers["location"]
    listed = api.get("/api/v1/api-keys", headers=seed.alice.auth).json()["data"]
    assert len(listed) == 2  # the seeded key and one new key, not two


def test_the_stored_idempotent_response_holds_no_secret(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "create-ci-key"}
    created = api.post("/api/v1/api-keys", json={"name": "ci"}, headers=headers).json()

    async def stored_bodies() -> list[bytes]:
        from sqlalchemy import select

        from control.db import session_factory
        from control.idempotency.models import IdempotentResponse

        async with (
            resources(control_settings) as (engine, _),
            session_factory(engine).begin() as session,
        ):
            return list((await session.scalars(select(IdempotentResponse.body))).all())

    [body] = run(stored_bodies())
    assert created["key"].encode() not in body
    assert msgspec.json.decode(body)["id"] == created["id"]


def test_concurrent_replays_reveal_the_secret_once(api: TestClient, seed: Seed) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "raced"}

    def post(_: int) -> dict[str, Any]:
        response = api.post("/api/v1/api-keys", json={"name": "ci"}, headers=headers)
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(post, range(6)))

    assert len({a["id"] for a in answers}) == 1
    [shown] = [a["key"] for a in answers if a["key"] is not None]
    assert (
        api.get("/api/v1/workspace", headers=_bearer(shown)).json()["key"]["id"] == answers[0]["id"]
    )
    assert len(api.get("/api/v1/api-keys", headers=seed.alice.auth).json()["data"]) == 2


def test_idempotency_key_reused_with_another_body_answers_422(api: TestClient, seed: Seed) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "k1"}
    api.post("/api/v1/api-keys", json={"name": "a"}, headers=headers)

    response = api.post("/api/v1/api-keys", json={"name": "b"}, headers=headers)

    _problem(response, 422, "idempotency_key_reused")


# -- list and get ---------------------------------------------------------------------------


def test_list_and_get_never_expose_a_secret(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice.auth, scopes=["links:read"])

    listed = api.get("/api/v1/api-keys", headers=seed.alice.auth)
    got = api.get(f"/api/v1/api-keys/{created['id']}", headers=seed.alice.auth)

    assert listed.status_code == got.status_code == 200
    for response in (listed, got):
        assert created["key"] not in response.text
        assert seed.alice.api_key not in response.text
        assert "key_hash" not in response.text
        assert '"key"' not in response.text
    expected = {k: v for k, v in created.items() if k not in ("key", "key_redacted")}
    assert got.json() == expected
    assert expected in listed.json()["data"]


def test_list_shows_only_the_callers_workspace(api: TestClient, seed: Seed) -> None:
    mine = _create(api, seed.alice.auth)["id"]
    theirs = _create(api, seed.bob.auth)["id"]

    alice = {k["id"] for k in api.get("/api/v1/api-keys", headers=seed.alice.auth).json()["data"]}
    bob = {k["id"] for k in api.get("/api/v1/api-keys", headers=seed.bob.auth).json()["data"]}

    assert mine in alice
    assert theirs not in alice
    assert theirs in bob
    assert mine not in bob
    assert len(alice) == len(bob) == 2


def test_list_pages_with_a_cursor(api: TestClient, seed: Seed) -> None:
    ids = {_create(api, seed.alice.auth, name=f"k{i}")["id"] for i in range(4)}
    seen: list[str] = []
    cursor = None

    for _ in range(5):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/api-keys", params=params, headers=seed.alice.auth).json()
        seen += [k["id"] for k in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)) == 5  # four new keys and the seeded one
    assert ids < set(seen)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "invalid_query"),
        ({"limit": "201"}, "invalid_query"),
        ({"limit": "many"}, "invalid_query"),
        ({"surprise": "1"}, "invalid_query"),
        ({"cursor": "!!"}, "invalid_cursor"),
    ],
)
def test_bad_list_query_answers_400(
    api: TestClient, seed: Seed, params: dict[str, str], code: str
) -> None:
    response = api.get("/api/v1/api-keys", params=params, headers=seed.alice.auth)

    _problem(response, 400, code)


@pytest.mark.parametrize("key_id", ["nope", "00000000-0000-0000-0000-000000000000", "1' OR 1=1"])
def test_unknown_or_malformed_key_id_answers_404(api: TestClient, seed: Seed, key_id: str) -> None:
    _problem(
        api.get(f"/api/v1/api-keys/{key_id}", headers=seed.alice.auth), 404, "api_key_not_found"
    )
    _problem(
        api.delete(f"/api/v1/api-keys/{key_id}", headers=seed.alice.auth), 404, "api_key_not_found"
    )


def test_another_workspaces_key_answers_404_and_stays_active(api: TestClient, seed: Seed) -> None:
    bobs = _create(api, seed.bob.auth)

    _problem(
        api.get(f"/api/v1/api-keys/{bobs['id']}", headers=seed.alice.auth), 404, "api_key_not_found"
    )
    _problem(
        api.delete(f"/api/v1/api-keys/{bobs['id']}", headers=seed.alice.auth),
        404,
        "api_key_not_found",
    )
    assert api.get("/api/v1/workspace", headers=_bearer(bobs["key"])).status_code == 200


def test_last_used_at_is_recorded_when_the_key_is_used(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice.auth, scopes=["keys:read"])
    before = api.get(f"/api/v1/api-keys/{created['id']}", headers=seed.alice.auth).json()
    assert before["last_used_at"] is None

    api.get("/api/v1/workspace", headers=_bearer(created["key"]))

    after = api.get(f"/api/v1/api-keys/{created['id']}", headers=seed.alice.auth).json()
    assert after["last_used_at"] is not None
    assert after["last_used_at"] >= after["created_at"]


# -- revoke ---------------------------------------------------------------------------------


def test_revoked_key_answers_401_and_is_listed_with_revoked_at(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice.auth)
    assert api.get("/api/v1/workspace", headers=_bearer(created["key"])).status_code == 200

    response = api.delete(f"/api/v1/api-keys/{created['id']}", headers=seed.alice.auth)

    assert response.status_code == 204
    assert response.content == b""
    _problem(api.get("/api/v1/workspace", headers=_bearer(created["key"])), 401, "invalid_api_key")
    _problem(api.get("/api/v1/api-keys", headers=_bearer(created["key"])), 401, "invalid_api_key")
    got = api.get(f"/api/v1/api-keys/{created['id']}", headers=seed.alice.auth).json()
    assert got["revoked_at"] is not None
    listed = api.get("/api/v1/api-keys", headers=seed.alice.auth).json()["data"]
    assert got in listed


def test_revoking_twice_answers_204_and_keeps_the_first_time(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice.auth)
    api.delete(f"/api/v1/api-keys/{created['id']}", headers=seed.alice.auth)
    first = api.get(f"/api/v1/api-keys/{created['id']}", headers=seed.alice.auth).json()

    again = api.delete(f"/api/v1/api-keys/{created['id']}", headers=seed.alice.auth)

    assert again.status_code == 204
    later = api.get(f"/api/v1/api-keys/{created['id']}", headers=seed.alice.auth).json()
    assert later["revoked_at"] == first["revoked_at"]


def test_a_key_may_revoke_itself(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice.auth, scopes=["keys:write"])

    response = api.delete(f"/api/v1/api-keys/{created['id']}", headers=_bearer(created["key"]))

    assert response.status_code == 204
    _problem(
        api.delete(f"/api/v1/api-keys/{created['id']}", headers=_bearer(created["key"])),
        401,
        "invalid_api_key",
    )


def test_revoking_needs_keys_write(api: TestClient, seed: Seed) -> None:
    reader = _create(api, seed.alice.auth, scopes=["keys:read"])

    response = api.delete(f"/api/v1/api-keys/{reader['id']}", headers=_bearer(reader["key"]))

    assert _problem(response, 403, "insufficient_scope")["scope"] == "keys:write"


def test_missing_key_answers_401_everywhere(api: TestClient, seed: Seed) -> None:
    _problem(api.get("/api/v1/api-keys"), 401, "unauthorized")
    _problem(api.post("/api/v1/api-keys", json={"name": "x"}), 401, "unauthorized")
    _problem(api.get("/api/v1/workspace"), 401, "unauthorized")
    _problem(
        api.get("/api/v1/workspace", headers=_bearer(keyformat.generate())), 401, "invalid_api_key"
    )


# -- workspace ------------------------------------------------------------------------------


def test_workspace_describes_the_workspace_and_the_calling_key(api: TestClient, seed: Seed) -> None:
    key = _create(api, seed.alice.auth, scopes=["links:read"])

    response = api.get("/api/v1/workspace", headers=_bearer(key["key"]))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == seed.alice.workspace_id
    assert body["name"] == "alice"
    assert body["organization_id"]
    assert body["created_at"]
    assert body["key"] == {"id": key["id"], "prefix": key["prefix"], "scopes": ["links:read"]}
    assert key["key"] not in response.text


def test_workspace_needs_no_scope_and_tells_workspaces_apart(api: TestClient, seed: Seed) -> None:
    scopeless_caller = _create(api, seed.alice.auth, scopes=["analytics:read"])["key"]

    alice = api.get("/api/v1/workspace", headers=_bearer(scopeless_caller)).json()
    bob = api.get("/api/v1/workspace", headers=seed.bob.auth).json()

    assert alice["id"] == seed.alice.workspace_id
    assert bob["id"] == seed.bob.workspace_id
    assert alice["organization_id"] != bob["organization_id"]


def test_openapi_documents_the_key_routes(api: TestClient) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]

    assert set(paths["/api/v1/api-keys"]) == {"get", "post"}
    assert set(paths["/api/v1/api-keys/{key_id}"]) == {"get", "delete"}
    assert "redacted" in paths["/api/v1/api-keys"]["post"]["summary"]
    assert "get" in paths["/api/v1/workspace"]
