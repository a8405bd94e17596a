"""The thin path's management API against real PostgreSQL: happy path and every bad input."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.integration.conftest import Seed


def _problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def test_create_link_answers_201_with_normalised_destination(api: TestClient, seed: Seed) -> None:
    response = api.post(
        "/api/v1/links",
        json={"destination": "Brand.com/launch", "slug": "Launch-Q2"},
        headers=seed.alice.auth,
    )

    assert response.status_code == 201, response.text
    link = response.json()
    assert link["destination"] == "https://brand.com/launch"
    assert link["slug"] == "launch-q2"
    assert link["short_url"] == "http://sho.rt/launch-q2"
    assert link["redirect_status"] == 302
    assert link["clicks"] == 0
    assert response.headers["location"] == f"/api/v1/links/{link['id']}"


def test_created_link_can_be_read_back(api: TestClient, seed: Seed) -> None:
    created = api.post(
        "/api/v1/links", json={"destination": "https://a.example/x"}, headers=seed.alice.auth
    ).json()

    response = api.get(f"/api/v1/links/{created['id']}", headers=seed.alice.auth)

    assert response.status_code == 200
    assert response.json() == created


def test_link_without_slug_gets_a_generated_one(api: TestClient, seed: Seed) -> None:
    slugs = {
        api.post(
            "/api/v1/links", json={"destination": "a.example"}, headers=seed.alice.auth
        ).json()["slug"]
        for _ in range(20)
    }

    assert len(slugs) == 20
    assert all(len(s) >= 7 for s in slugs)


def test_taken_slug_answers_409_slug_taken_with_the_existing_id(
    api: TestClient, seed: Seed
) -> None:
    first = api.post(
        "/api/v1/links", json={"destination": "a.example", "slug": "dup"}, headers=seed.alice.auth
    ).json()

    again = api.post(
        "/api/v1/links", json={"destination": "b.example", "slug": "DUP"}, headers=seed.alice.auth
    )

    body = _problem(again, 409, "slug_taken")
    assert body["link_id"] == first["id"]


def test_slug_taken_by_another_workspace_does_not_reveal_its_id(
    api: TestClient, seed: Seed
) -> None:
    api.post(
        "/api/v1/links",
        json={"destination": "a.example", "slug": "shared"},
        headers=seed.alice.auth,
    )

    response = api.post(
        "/api/v1/links", json={"destination": "b.example", "slug": "shared"}, headers=seed.bob.auth
    )

    assert "link_id" not in _problem(response, 409, "slug_taken")


def test_another_workspaces_link_answers_404(api: TestClient, seed: Seed) -> None:
    created = api.post(
        "/api/v1/links", json={"destination": "a.example"}, headers=seed.alice.auth
    ).json()

    response = api.get(f"/api/v1/links/{created['id']}", headers=seed.bob.auth)

    _problem(response, 404, "link_not_found")


@pytest.mark.parametrize("link_id", ["nope", "00000000-0000-0000-0000-000000000000", "1' OR 1=1"])
def test_unknown_or_malformed_link_id_answers_404(
    api: TestClient, seed: Seed, link_id: str
) -> None:
    _problem(api.get(f"/api/v1/links/{link_id}", headers=seed.alice.auth), 404, "link_not_found")


def test_missing_key_answers_401(api: TestClient, seed: Seed) -> None:
    _problem(api.post("/api/v1/links", json={"destination": "a.example"}), 401, "unauthorized")


@pytest.mark.parametrize(
    "header",
    ["Bearer ric_wrong", "Bearer " + "ric_" + "A" * 38, "Basic dXNlcjpwYXNz", "Bearer"],
)
def test_wrong_key_answers_401(api: TestClient, seed: Seed, header: str) -> None:
    response = api.post(
        "/api/v1/links", json={"destination": "a.example"}, headers={"authorization": header}
    )

    assert response.status_code == 401
    assert response.json()["code"] in {"unauthorized", "invalid_api_key"}


def test_well_formed_but_unknown_key_answers_401(api: TestClient, seed: Seed) -> None:
    from control.keys.format import generate

    response = api.post(
        "/api/v1/links",
        json={"destination": "a.example"},
        headers={"authorization": f"Bearer {generate()}"},
    )

    _problem(response, 401, "invalid_api_key")


def test_key_without_write_scope_answers_403(api: TestClient, seed: Seed, control_settings) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.conftest import resources, run

    async def read_only_key() -> str:
        import uuid

        from control.db import session_factory
        from control.keys import service

        async with (
            resources(control_settings) as (engine, _),
            session_factory(engine).begin() as session,
        ):
            _, key = await service.create(
                session,
                control_settings.secret_key,
                uuid.UUID(seed.alice.workspace_id),
                "ro",
                ["links:read"],
            )
        return key

    key = run(read_only_key())
    response = api.post(
        "/api/v1/links",
        json={"destination": "a.example"},
        headers={"authorization": f"Bearer {key}"},
    )

    body = _problem(response, 403, "insufficient_scope")
    assert body["scope"] == "links:write"


def test_malformed_json_answers_400(api: TestClient, seed: Seed) -> None:
    response = api.post(
        "/api/v1/links",
        content=b'{"destination": ',
        headers={**seed.alice.auth, "content-type": "application/json"},
    )

    _problem(response, 400, "malformed_json")


def test_non_json_body_answers_415(api: TestClient, seed: Seed) -> None:
    response = api.post(
        "/api/v1/links",
        content=b"destination=a.example",
        headers={**seed.alice.auth, "content-type": "application/x-www-form-urlencoded"},
    )

    _problem(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, None),
        ({"destination": 5}, "destination"),
        ({"destination": "a.example", "slug": ["x"]}, "slug"),
        ({"destination": "a.example", "surprise": True}, None),
    ],
)
def test_wrong_shape_answers_422_validation_failed(
    api: TestClient, seed: Seed, body: dict, field: str | None
) -> None:
    problem = _problem(
        api.post("/api/v1/links", json=body, headers=seed.alice.auth), 422, "validation_failed"
    )
    if field:
        assert problem["field"] == field


@pytest.mark.parametrize(
    "destination",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,<b>x</b>",
        "https://a.example/\r\nSet-Cookie: x=1",
        "vbscript:msgbox",
        "http://",
        "file:///etc/passwd",
    ],
)
def test_dangerous_destination_answers_422(api: TestClient, seed: Seed, destination: str) -> None:
    response = api.post("/api/v1/links", json={"destination": destination}, headers=seed.alice.auth)

    _problem(response, 422, "invalid_destination")


@pytest.mark.parametrize(
    ("slug", "code"),
    [
        ("api", "slug_reserved"),
        ("-x", "invalid_slug"),
        ("a b", "invalid_slug"),
        ("é", "invalid_slug"),
    ],
)
def test_bad_slug_answers_422(api: TestClient, seed: Seed, slug: str, code: str) -> None:
    response = api.post(
        "/api/v1/links", json={"destination": "a.example", "slug": slug}, headers=seed.alice.auth
    )

    _problem(response, 422, code)


def test_unknown_route_and_method_answer_problems(api: TestClient, seed: Seed) -> None:
    _problem(api.get("/api/v1/nothing", headers=seed.alice.auth), 404, "route_not_found")
    _problem(api.delete("/api/v1/links", headers=seed.alice.auth), 405, "method_not_allowed")


def test_openapi_lists_the_routes_the_app_serves(api: TestClient) -> None:
    spec = api.get("/api/v1/openapi.json").json()

    from control.app import OPERATIONS

    assert spec["openapi"] == "3.1.0"
    assert set(spec["paths"]) == {op.path for op in OPERATIONS}
    served = {(op.method.lower(), op.path) for op in OPERATIONS}
    documented = {(m, p) for p, item in spec["paths"].items() for m in item}
    assert documented == served


def test_readiness_reports_the_database(api: TestClient) -> None:
    assert api.get("/_/readyz").json() == {"status": "ok"}
