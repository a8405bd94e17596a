"""REST hooks for Zapier, Make and n8n: installation tokens, subscribe and unsubscribe,
samples, signed deliveries to the target, 410 Gone, revocation. Real PostgreSQL and a real
loopback receiver as the platform's hook URL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

from control.destinations.hooks import service as hooks_service
from control.settings import ControlSettings
from shared.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.integration.conftest import Seed, Tenant
from tests.integration.test_delivery import Receiver, Reply
from tests.integration.test_destinations_delivery import _attempt, _fan, _rows


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver.running() as r:
        yield r


@pytest.fixture
def settings(control_settings: ControlSettings) -> ControlSettings:
    return msgspec.structs.replace(control_settings, allow_private_destinations=True)


@pytest.fixture
def client(settings: ControlSettings) -> Iterator[TestClient]:
    from control.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def _token(client: TestClient, tenant: Tenant, **body: Any) -> tuple[dict[str, str], Any]:
    payload = {"platform": "zapier", "name": "Zapier: growth team", **body}
    response = client.post("/api/v1/installation-tokens", json=payload, headers=tenant.auth)
    assert response.status_code == 201, response.text
    created = response.json()
    return {"authorization": f"Bearer {created['token']}"}, created


def _subscribe(client: TestClient, auth: dict[str, str], **body: Any) -> Any:
    response = client.post("/api/v1/hooks", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def _problem(response: Any, status: int, code: str) -> Any:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    return response.json()


def test_installation_token_is_shown_once_and_names_its_workspace(
    client: TestClient, seed: Seed
) -> None:
    auth, created = _token(client, seed.alice)
    assert created["token"].startswith("rit_")
    assert created["scopes"] == ["hooks:read", "hooks:write"]
    listed = client.get("/api/v1/installation-tokens", headers=seed.alice.auth)
    assert created["token"] not in listed.text
    assert listed.json()["data"][0]["prefix"] == created["token"][:10]

    me = client.get("/api/v1/hooks/me", headers=auth)
    assert me.status_code == 200, me.text
    assert me.json() == {
        "installation_id": created["id"],
        "workspace_id": seed.alice.workspace_id,
        "platform": "zapier",
        "name": "Zapier: growth team",
        "scopes": ["hooks:read", "hooks:write"],
    }


def test_tokens_and_api_keys_do_not_stand_in_for_each_other(client: TestClient, seed: Seed) -> None:
    auth, _ = _token(client, seed.alice)
    _problem(
        client.get("/api/v1/hooks/me", headers=seed.alice.auth), 401, "invalid_installation_token"
    )
    _problem(client.get("/api/v1/links", headers=auth), 401, "invalid_api_key")
    _problem(client.get("/api/v1/hooks/me"), 401, "unauthorized")
    forged = {"authorization": "Bearer rit_" + "A" * 38}
    _problem(client.get("/api/v1/hooks/me", headers=forged), 401, "invalid_installation_token")


def test_subscribe_deliver_signed_then_unsubscribe(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    auth, token = _token(client, seed.alice)
    hook = _subscribe(client, auth, target_url=receiver.url("/zap/123"), event="link.clicked")
    assert hook["event"] == "link.clicked"
    assert hook["secret"].startswith("whsec_")
    listed = client.get("/api/v1/hooks", headers=auth).json()["data"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]
    # The workspace sees the hook among its destinations, as a zapier destination.
    dest = client.get(f"/api/v1/destinations/{hook['id']}", headers=seed.alice.auth).json()
    assert (dest["kind"], dest["installation_id"]) == ("zapier", token["id"])

    (delivery_id,) = _fan(settings, seed.alice, "link.clicked")
    assert _attempt(settings, delivery_id).status == "succeeded"
    (got,) = receiver.requests
    assert got.path == "/zap/123"
    envelope = msgspec.json.decode(got.body)
    assert envelope["type"] == "link.clicked"
    ts = int(got.headers[TIMESTAMP_HEADER.lower()])
    assert verify(got.headers[SIGNATURE_HEADER.lower()], hook["secret"], ts, got.body)

    assert client.delete(f"/api/v1/hooks/{hook['id']}", headers=auth).status_code == 204
    assert _fan(settings, seed.alice, "link.clicked") == []
    _problem(client.get(f"/api/v1/hooks/{hook['id']}", headers=auth), 404, "hook_not_found")


def test_subscribe_takes_filters(client: TestClient, settings: ControlSettings, seed: Seed) -> None:
    auth, _ = _token(client, seed.alice, platform="make")
    hook = _subscribe(
        client,
        auth,
        target_url="https://hook.eu1.make.com/abc",
        event="link.clicked",
        filters={"conditions": [{"field": "data.utm_campaign", "op": "eq", "value": "demo"}]},
    )
    assert _fan(settings, seed.alice, "link.clicked", utm_campaign="other") == []
    assert len(_fan(settings, seed.alice, "link.clicked", utm_campaign="demo")) == 1
    assert len(_rows(settings, hook["id"])) == 1


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (
            {"target_url": "https://h.example/x", "event": "link.exploded"},
            "unknown_event_type",
            "event",
        ),
        (
            {"target_url": "gopher://h.example/x", "event": "link.clicked"},
            "invalid_url",
            "target_url",
        ),
        ({"target_url": "https://h.example/x"}, "validation_failed", "event"),
    ],
)
def test_bad_subscriptions_name_the_subscribe_field(
    client: TestClient, seed: Seed, body: dict[str, Any], code: str, field: str
) -> None:
    auth, _ = _token(client, seed.alice)
    problem = _problem(client.post("/api/v1/hooks", json=body, headers=auth), 422, code)
    assert problem["field"] == field


def test_a_read_only_token_cannot_subscribe(client: TestClient, seed: Seed) -> None:
    auth, _ = _token(client, seed.alice, scopes=["hooks:read"])
    assert client.get("/api/v1/hooks", headers=auth).status_code == 200
    body = {"target_url": "https://h.example/x", "event": "link.clicked"}
    _problem(client.post("/api/v1/hooks", json=body, headers=auth), 403, "insufficient_scope")
    _problem(
        client.post(
            "/api/v1/installation-tokens",
            json={"platform": "zapier", "name": "x", "scopes": ["links:write"]},
            headers=seed.alice.auth,
        ),
        422,
        "unknown_scope",
    )
    _problem(
        client.post(
            "/api/v1/installation-tokens",
            json={"platform": "ifttt", "name": "x"},
            headers=seed.alice.auth,
        ),
        422,
        "invalid_platform",
    )


def test_an_installation_reaches_only_its_own_hooks(client: TestClient, seed: Seed) -> None:
    first, _ = _token(client, seed.alice)
    second, _ = _token(client, seed.alice, platform="n8n", name="n8n")
    bobs, _ = _token(client, seed.bob)
    hook = _subscribe(client, first, target_url="https://h.example/1", event="link.clicked")
    for other in (second, bobs):
        _problem(client.get(f"/api/v1/hooks/{hook['id']}", headers=other), 404, "hook_not_found")
        _problem(client.delete(f"/api/v1/hooks/{hook['id']}", headers=other), 404, "hook_not_found")
        assert client.get("/api/v1/hooks", headers=other).json()["data"] == []
    assert client.get(f"/api/v1/hooks/{hook['id']}", headers=first).status_code == 200


def test_a_410_from_the_target_disables_the_hook(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    receiver.script = [Reply(410, b"gone")]
    auth, _ = _token(client, seed.alice)
    hook = _subscribe(client, auth, target_url=receiver.url("/zap/old"), event="link.clicked")
    (delivery_id,) = _fan(settings, seed.alice, "link.clicked")
    assert _attempt(settings, delivery_id).status == "failed"

    got = client.get(f"/api/v1/hooks/{hook['id']}", headers=auth).json()
    assert got["enabled"] is False
    assert got["disabled_reason"] == "the target answered 410 Gone"
    assert _fan(settings, seed.alice, "link.clicked") == []  # no more deliveries


def test_a_410_from_a_generic_http_destination_is_just_a_failure(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    receiver.script = [Reply(410, b"gone")]
    created = client.post(
        "/api/v1/destinations",
        json={"kind": "http", "url": receiver.url(), "event_types": ["link.clicked"]},
        headers=seed.alice.auth,
    ).json()
    (delivery_id,) = _fan(settings, seed.alice, "link.clicked")
    assert _attempt(settings, delivery_id).status == "failed"
    got = client.get(f"/api/v1/destinations/{created['id']}", headers=seed.alice.auth).json()
    assert got["enabled"] is True


def test_samples_are_recent_events_or_one_synthetic(
    client: TestClient, settings: ControlSettings, seed: Seed
) -> None:
    auth, _ = _token(client, seed.alice, scopes=["hooks:read"])
    empty = client.get("/api/v1/hooks/samples?event=link.clicked", headers=auth)
    assert empty.status_code == 200, empty.text
    (synthetic,) = empty.json()["data"]
    assert synthetic["type"] == "link.clicked"
    assert synthetic["data"]["sample"] is True
    assert synthetic["workspace_id"] == seed.alice.workspace_id

    _fan(settings, seed.alice, "link.clicked", short_code="first")
    _fan(settings, seed.alice, "link.clicked", short_code="second")
    _fan(settings, seed.bob, "link.clicked", short_code="bobs")
    real = client.get("/api/v1/hooks/samples?event=link.clicked&limit=5", headers=auth).json()
    assert [e["data"]["short_code"] for e in real["data"]] == ["second", "first"]
    assert list(real["data"][0])[:3] == ["id", "type", "api_version"]  # as hooks get them
    _problem(
        client.get("/api/v1/hooks/samples?event=nope", headers=auth), 422, "unknown_event_type"
    )


def test_revoking_a_token_stops_its_hooks_and_keeps_their_history(
    client: TestClient, settings: ControlSettings, seed: Seed
) -> None:
    auth, token = _token(client, seed.alice)
    hook = _subscribe(client, auth, target_url="https://h.example/1", event="link.clicked")
    _fan(settings, seed.alice, "link.clicked")
    revoked = client.delete(f"/api/v1/installation-tokens/{token['id']}", headers=seed.alice.auth)
    assert revoked.status_code == 204
    _problem(client.get("/api/v1/hooks", headers=auth), 401, "invalid_installation_token")
    dest = client.get(f"/api/v1/destinations/{hook['id']}", headers=seed.alice.auth).json()
    assert dest["enabled"] is False
    assert dest["disabled_reason"] == "installation token revoked"
    assert len(_rows(settings, hook["id"])) == 1
    assert _fan(settings, seed.alice, "link.clicked") == []


def test_an_installation_has_a_bounded_number_of_hooks(
    client: TestClient, seed: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hooks_service, "MAX_HOOKS", 2)
    auth, _ = _token(client, seed.alice)
    for n in range(2):
        _subscribe(client, auth, target_url=f"https://h.example/{n}", event="link.clicked")
    body = {"target_url": "https://h.example/3", "event": "link.clicked"}
    _problem(client.post("/api/v1/hooks", json=body, headers=auth), 409, "too_many_hooks")


def test_subscribe_is_idempotent_with_a_key(client: TestClient, seed: Seed) -> None:
    auth, _ = _token(client, seed.alice)
    headers = {**auth, "idempotency-key": f"zap-{uuid.uuid4()}"}
    body = {"target_url": "https://h.example/1", "event": "link.clicked"}
    first = client.post("/api/v1/hooks", json=body, headers=headers)
    again = client.post("/api/v1/hooks", json=body, headers=headers)
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["secret"] is not None
    assert again.json()["secret"] is None
    assert len(client.get("/api/v1/hooks", headers=auth).json()["data"]) == 1
