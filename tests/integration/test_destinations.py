"""The destinations API against real PostgreSQL: kinds and their settings, secrets never
shown again, validation as problems, filters, templates, presets, previews."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from control.settings import ControlSettings
from tests.integration.conftest import Seed, Tenant, resources, run

URL = "https://receiver.example.com/in"
GA4 = {"measurement_id": "G-TEST123", "api_secret": "ga4-secret-value"}


def _problem(response: Any, status: int, code: str) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    return body


def _create(api: TestClient, tenant: Tenant, **body: Any) -> Any:
    payload = {"kind": "http", "url": URL, "event_types": ["link.clicked"], **body}
    response = api.post("/api/v1/destinations", json=payload, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _stored(settings: ControlSettings, destination_id: str) -> Any:
    from control.db import session_factory
    from control.destinations.models import Destination

    async def go() -> Any:
        async with resources(settings) as (engine, _), session_factory(engine)() as session:
            return (
                await session.execute(
                    select(Destination).where(Destination.id == uuid.UUID(destination_id))
                )
            ).scalar_one()

    return run(go())


def test_http_destination_shows_its_signing_secret_once_and_never_its_headers(
    api: TestClient, control_settings: ControlSettings, seed: Seed
) -> None:
    created = _create(
        api, seed.alice, headers={"Authorization": "Bearer crm-token-123", "X-Team": "growth"}
    )

    assert created["secret"].startswith("whsec_")
    assert created["secret_redacted"] is False
    assert created["signed"] is True
    assert created["header_names"] == ["Authorization", "X-Team"]
    assert "crm-token-123" not in str(created)
    got = api.get(f"/api/v1/destinations/{created['id']}", headers=seed.alice.auth)
    assert got.status_code == 200
    assert "secret" not in got.json()
    assert got.json()["secret_masked"] == f"whsec_…{created['secret'][-4:]}"
    listed = api.get("/api/v1/destinations", headers=seed.alice.auth).text
    assert "crm-token-123" not in listed
    assert created["secret"] not in listed
    row = _stored(control_settings, created["id"])
    assert row.secrets_encrypted is not None
    assert "crm-token-123" not in row.secrets_encrypted  # encrypted at rest
    assert created["secret"] not in (row.secret_encrypted or "")


def test_vendor_destination_keeps_secret_settings_apart(
    api: TestClient, control_settings: ControlSettings, seed: Seed
) -> None:
    body = {"kind": "ga4", "event_types": ["link.clicked", "conversion.recorded"], "config": GA4}
    response = api.post("/api/v1/destinations", json=body, headers=seed.alice.auth)
    assert response.status_code == 201, response.text
    created = response.json()

    assert created["config"] == {"measurement_id": "G-TEST123"}
    assert created["secret_fields"] == ["api_secret"]
    assert created["url"] == (
        "https://www.google-analytics.com/mp/collect?measurement_id=G-TEST123"
    )
    assert created["signed"] is False
    assert created["secret"] is None
    assert "ga4-secret-value" not in response.text
    assert "ga4-secret-value" not in (_stored(control_settings, created["id"]).secrets_encrypted)


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"kind": "ftp"}, 422, "invalid_kind", "kind"),
        ({"kind": "zapier"}, 422, "invalid_kind", "kind"),  # made by POST /api/v1/hooks
        ({"url": None}, 422, "invalid_url", "url"),
        ({"url": "https://10.0.0.1/in"}, 422, "invalid_url", "url"),
        ({"url": "ftp://r.example/in"}, 422, "invalid_url", "url"),
        ({"event_types": ["link.exploded"]}, 422, "unknown_event_type", "event_types"),
        ({"event_types": []}, 422, "validation_failed", "event_types"),
        ({"headers": {"Host": "evil"}}, 422, "invalid_header", "headers.Host"),
        (
            {"headers": {"X-Nim-Signature": "v1=x"}},
            422,
            "invalid_header",
            "headers.X-Nim-Signature",
        ),
        ({"headers": {"X-A": "a\r\nX-B: b"}}, 422, "invalid_header", "headers.X-A"),
        ({"headers": {"bad name": "x"}}, 422, "invalid_header", "headers.bad name"),
        ({"redact": ["data.x[0]"]}, 422, "invalid_redaction", "redact[0]"),
        ({"filters": {"touch_types": ["sms"]}}, 422, "invalid_filter", "filters.touch_types"),
        ({"filters": {"nope": 1}}, 422, "validation_failed", "filters.nope"),
        (
            {"filters": {"conditions": [{"field": "data.utm_campaign", "op": "regex"}]}},
            422,
            "invalid_filter",
            "filters.conditions[0].op",
        ),
        ({"template": {"a": {"b": "join(x"}}}, 422, "invalid_template", "template.a.b"),
        ({"template": {"a": "exec('x')"}}, 422, "invalid_template", "template.a"),
        (
            {"kind": "ga4", "url": None, "config": {"measurement_id": "G-1"}},
            422,
            "invalid_config",
            "config.api_secret",
        ),
        (
            {"kind": "ga4", "url": None, "config": {**GA4, "region": "eu"}},
            422,
            "invalid_config",
            "config.region",
        ),
        (
            {"kind": "ga4", "url": None, "config": {**GA4, "measurement_id": "G 1"}},
            422,
            "invalid_config",
            "config.measurement_id",
        ),
        ({"kind": "ga4", "config": GA4}, 422, "invalid_url", "url"),
        (
            {"kind": "ga4", "url": None, "config": GA4, "headers": {"X-A": "1"}},
            422,
            "invalid_header",
            "headers",
        ),
        (
            {"kind": "slack", "url": None, "config": {"webhook_url": "https://127.0.0.1/x"}},
            422,
            "invalid_config",
            "config.webhook_url",
        ),
        (
            {"kind": "segment", "url": None, "config": {"write_key": "k"}, "template": ["x"]},
            422,
            "invalid_template",
            "template",
        ),
    ],
)
def test_invalid_destinations_are_problems_naming_the_field(
    api: TestClient, seed: Seed, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    payload = {"kind": "http", "url": URL, "event_types": ["link.clicked"], **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    problem = _problem(
        api.post("/api/v1/destinations", json=payload, headers=seed.alice.auth), status, code
    )
    assert problem["field"] == field


def test_a_bad_template_names_the_expression(api: TestClient, seed: Seed) -> None:
    body = {"kind": "http", "url": URL, "event_types": ["link.clicked"]}
    body["template"] = {"events": [{"name": "no_such_function(type)"}]}
    problem = _problem(
        api.post("/api/v1/destinations", json=body, headers=seed.alice.auth),
        422,
        "invalid_template",
    )
    assert problem["field"] == "template.events[0].name"
    assert "no_such_function" in problem["detail"]


def test_list_get_update_delete_and_tenancy(api: TestClient, seed: Seed) -> None:
    first = _create(api, seed.alice, description="CRM")
    second = api.post(
        "/api/v1/destinations",
        json={
            "kind": "segment",
            "event_types": ["link.clicked"],
            "config": {"write_key": "wk_abc"},
        },
        headers=seed.alice.auth,
    ).json()

    page = api.get("/api/v1/destinations?limit=1", headers=seed.alice.auth).json()
    assert [d["id"] for d in page["data"]] == [first["id"]]
    rest = api.get(
        f"/api/v1/destinations?limit=1&cursor={page['next_cursor']}", headers=seed.alice.auth
    ).json()
    assert [d["id"] for d in rest["data"]] == [second["id"]]
    only = api.get("/api/v1/destinations?kind=segment", headers=seed.alice.auth).json()
    assert [d["id"] for d in only["data"]] == [second["id"]]
    # Bob sees none of it.
    assert api.get("/api/v1/destinations", headers=seed.bob.auth).json()["data"] == []
    _problem(
        api.get(f"/api/v1/destinations/{first['id']}", headers=seed.bob.auth),
        404,
        "destination_not_found",
    )
    _problem(
        api.delete(f"/api/v1/destinations/{first['id']}", headers=seed.bob.auth),
        404,
        "destination_not_found",
    )

    patched = api.patch(
        f"/api/v1/destinations/{second['id']}",
        json={
            "config": {"base_url": "https://events.eu1.segmentapis.com"},
            "filters": {"touch_types": ["qr"]},
            "redact": ["data.country"],
            "template": {"event": "'Demo Scan'"},
            "enabled": False,
        },
        headers=seed.alice.auth,
    )
    assert patched.status_code == 200, patched.text
    out = patched.json()
    assert out["config"] == {"base_url": "https://events.eu1.segmentapis.com"}
    assert out["secret_fields"] == ["write_key"]  # kept: not given again
    assert out["url"] == "https://events.eu1.segmentapis.com/v1/track"
    assert out["filters"] == {"touch_types": ["qr"]}
    assert out["redact"] == ["data.country"]
    assert out["template"] == {"event": "'Demo Scan'"}
    assert out["enabled"] is False
    reverted = api.patch(
        f"/api/v1/destinations/{second['id']}",
        json={"template": None, "config": {"base_url": None}},
        headers=seed.alice.auth,
    ).json()
    assert reverted["template"] is None
    assert reverted["config"] == {}
    _problem(
        api.patch(
            f"/api/v1/destinations/{second['id']}",
            json={"config": {"write_key": None}},
            headers=seed.alice.auth,
        ),
        422,
        "invalid_config",
    )

    assert (
        api.delete(f"/api/v1/destinations/{first['id']}", headers=seed.alice.auth).status_code
        == 204
    )
    _problem(
        api.get(f"/api/v1/destinations/{first['id']}", headers=seed.alice.auth),
        404,
        "destination_not_found",
    )


def test_headers_are_replaced_whole(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice, headers={"X-One": "1"})
    out = api.patch(
        f"/api/v1/destinations/{created['id']}",
        json={"headers": {"X-Two": "2"}},
        headers=seed.alice.auth,
    ).json()
    assert out["header_names"] == ["X-Two"]


def test_scopes_are_those_of_webhooks(
    api: TestClient, control_settings: ControlSettings, seed: Seed
) -> None:
    from control.db import session_factory
    from control.keys import service

    async def key(scopes: list[str]) -> dict[str, str]:
        async with (
            resources(control_settings) as (engine, _),
            session_factory(engine).begin() as session,
        ):
            _, plaintext = await service.create(
                session,
                control_settings.secret_key,
                uuid.UUID(seed.alice.workspace_id),
                "k",
                scopes,
            )
        return {"authorization": f"Bearer {plaintext}"}

    reader = run(key(["webhooks:read"]))
    links = run(key(["links:write"]))
    assert api.get("/api/v1/destinations", headers=reader).status_code == 200
    body = {"kind": "http", "url": URL, "event_types": ["link.clicked"]}
    _problem(api.post("/api/v1/destinations", json=body, headers=reader), 403, "insufficient_scope")
    _problem(api.get("/api/v1/destinations", headers=links), 403, "insufficient_scope")


def test_idempotent_create_replays_without_the_secret(api: TestClient, seed: Seed) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "dest-1"}
    body = {"kind": "http", "url": URL, "event_types": ["link.clicked"]}
    first = api.post("/api/v1/destinations", json=body, headers=headers)
    again = api.post("/api/v1/destinations", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["secret"].startswith("whsec_")
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["secret"] is None
    assert again.json()["secret_redacted"] is True
    assert len(api.get("/api/v1/destinations", headers=seed.alice.auth).json()["data"]) == 1


def test_rotating_the_signing_secret(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice)
    rotated = api.post(
        f"/api/v1/destinations/{created['id']}/rotate-secret",
        json={"overlap_s": 60},
        headers=seed.alice.auth,
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != created["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    slack = api.post(
        "/api/v1/destinations",
        json={
            "kind": "slack",
            "event_types": ["link.clicked"],
            "config": {"webhook_url": "https://hooks.slack.com/services/T/B/xyz"},
        },
        headers=seed.alice.auth,
    ).json()
    assert slack["url"] is None  # the webhook URL is the secret
    assert "xyz" not in str(slack)
    _problem(
        api.post(f"/api/v1/destinations/{slack['id']}/rotate-secret", headers=seed.alice.auth),
        409,
        "not_signed",
    )


def test_presets_show_each_kind_and_its_default_mapping(api: TestClient, seed: Seed) -> None:
    response = api.get("/api/v1/destinations/presets", headers=seed.alice.auth)
    assert response.status_code == 200
    kinds = {p["kind"]: p for p in response.json()["data"]}
    assert set(kinds) == {"http", "segment", "ga4", "meta_capi", "slack", "zapier", "make", "n8n"}
    assert kinds["segment"]["url"] == "https://api.segment.io/v1/track"
    assert kinds["segment"]["secret_fields"] == ["write_key"]
    assert kinds["ga4"]["template"]["events"][0]["params"]["campaign"]
    assert kinds["http"]["template"] is None
    assert kinds["http"]["signed"] is True


def test_preview_maps_a_sample_and_says_whether_filters_pass(api: TestClient, seed: Seed) -> None:
    created = api.post(
        "/api/v1/destinations",
        json={
            "kind": "ga4",
            "event_types": ["link.clicked"],
            "config": GA4,
            "filters": {"touch_types": ["qr"]},
            "redact": ["data.country"],
        },
        headers=seed.alice.auth,
    ).json()
    response = api.post(
        f"/api/v1/destinations/{created['id']}/preview",
        json={"event_type": "link.clicked"},
        headers=seed.alice.auth,
    )
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["passes_filters"] is False  # a click, not a scan
    assert out["event"]["type"] == "link.clicked"
    assert out["body"]["events"][0]["name"] == "short_link_click"
    assert "country" not in out["body"]["events"][0]["params"]
    assert "ga4-secret-value" not in response.text
    scan = api.post(
        f"/api/v1/destinations/{created['id']}/preview",
        json={"event_type": "link.qr_scanned"},
        headers=seed.alice.auth,
    ).json()
    # A scan passes the filter but the destination is subscribed to clicks only.
    assert scan["passes_filters"] is False
    _problem(
        api.post(
            f"/api/v1/destinations/{created['id']}/preview",
            json={"event_id": "evt_" + uuid.uuid4().hex},
            headers=seed.alice.auth,
        ),
        404,
        "event_not_found",
    )


def test_routes_are_in_the_openapi_document(api: TestClient) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    for path in (
        "/api/v1/destinations",
        "/api/v1/destinations/presets",
        "/api/v1/destinations/{destination_id}/deliveries/{delivery_id}/replay",
        "/api/v1/hooks",
        "/api/v1/hooks/{hook_id}",
        "/api/v1/installation-tokens",
    ):
        assert path in paths, path


def test_decoded_bodies_match_their_schemas(api: TestClient, seed: Seed) -> None:
    from control.destinations.schemas import DestinationCreated

    created = _create(
        api, seed.alice, filters={"conditions": [{"field": "data.x", "op": "exists"}]}
    )
    out = msgspec.convert(created, DestinationCreated)
    assert out.filters.conditions is not None
    assert out.filters.conditions[0].op == "exists"
