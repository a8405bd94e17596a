"""The webhooks API against real PostgreSQL: endpoints, secrets shown once, rotation,
test-sends to a real loopback receiver, delivery history, replay, recover and health."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.testclient import TestClient

from control.settings import ControlSettings
from shared import signing
from tests.integration.conftest import Seed, Tenant, resources, run

URL = "https://hooks.example.com/ricochet"


def _problem(response, status: int, code: str) -> Any:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    return body


def _create(api: TestClient, tenant: Tenant, **extra: Any) -> Any:
    body = {"url": URL, "event_types": ["link.created", "link.clicked"], **extra}
    response = api.post("/api/v1/webhooks", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _in_db(settings: ControlSettings, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    from control.db import session_factory

    async def go() -> Any:
        async with resources(settings) as (engine, _), session_factory(engine).begin() as session:
            return await work(session)

    return run(go())


def _key(settings: ControlSettings, tenant: Tenant, scopes: list[str]) -> dict[str, str]:
    from control.keys import service

    async def create(session: AsyncSession) -> str:
        _, key = await service.create(
            session, settings.secret_key, uuid.UUID(tenant.workspace_id), "scoped", scopes
        )
        return key

    return {"authorization": f"Bearer {_in_db(settings, create)}"}


def _delivery(
    settings: ControlSettings,
    tenant: Tenant,
    endpoint_id: str,
    status: str,
    *,
    created_ago: dt.timedelta = dt.timedelta(0),
    attempts: list[tuple[int | None, dt.timedelta]] = (),  # type: ignore[assignment]
    event_id: uuid.UUID | None = None,
    reason: str = "event",
) -> tuple[uuid.UUID, uuid.UUID, bytes]:
    """A delivery row (and its attempts) straight in SQL: the engine is not under test."""
    from control.delivery.models import Delivery, DeliveryAttempt
    from shared.ids import uuid7

    eid = event_id or uuid7()
    body = json.dumps({"id": f"evt_{eid.hex}", "type": "link.created", "data": {}}).encode()
    now = dt.datetime.now(dt.UTC)

    async def work(session: AsyncSession) -> uuid.UUID:
        delivery = Delivery(
            id=uuid7(),
            workspace_id=uuid.UUID(tenant.workspace_id),
            endpoint_id=uuid.UUID(endpoint_id),
            event_id=eid,
            event_type="link.created",
            reason=reason,
            body=body,
            status=status,
            attempts=len(attempts),
            last_status_code=attempts[-1][0] if attempts else None,
            created_at=now - created_ago,
            updated_at=now - created_ago,
        )
        session.add(delivery)
        await session.flush()
        for number, (code, ago) in enumerate(attempts, 1):
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery.id,
                    number=number,
                    attempted_at=now - ago,
                    status_code=code,
                    latency_ms=12,
                    response_excerpt="ok" if code == 200 else "nope",
                    error=None if code == 200 else f"HTTP {code}",
                )
            )
        return delivery.id

    return _in_db(settings, work), eid, body


def _delivery_row(settings: ControlSettings, delivery_id: str) -> Any:
    from control.delivery.models import Delivery

    async def work(session: AsyncSession) -> Any:
        return (
            await session.execute(select(Delivery).where(Delivery.id == uuid.UUID(delivery_id)))
        ).scalar_one()

    return _in_db(settings, work)


class Receiver:
    """A real HTTP receiver on loopback that records what it is sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture
def private_settings(control_settings: ControlSettings) -> ControlSettings:
    return msgspec.structs.replace(control_settings, allow_private_destinations=True)


@pytest.fixture
def papi(private_settings: ControlSettings) -> Iterator[TestClient]:
    """A client whose app allows loopback receivers."""
    from control.app import create_app

    with TestClient(create_app(private_settings)) as client:
        yield client


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the API hands the broker, instead of a real broker."""
    from control.delivery import actors

    sent: list[str] = []
    monkeypatch.setattr(actors, "configured", lambda: True)
    monkeypatch.setattr(actors, "enqueue", lambda ids, delay_ms=0: sent.extend(map(str, ids)))
    return sent


# -- endpoints and secrets -------------------------------------------------------------------


def test_create_shows_the_secret_once_then_masks_it(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice, description="  CRM sync  ")
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) == 38
    assert created["secret_redacted"] is False
    assert created["secret_masked"] == "whsec_…" + secret[-4:]
    assert created["description"] == "CRM sync"
    assert created["enabled"] is True
    assert created["event_types"] == ["link.created", "link.clicked"]

    got = api.get(f"/api/v1/webhooks/{created['id']}", headers=seed.alice.auth)
    assert got.status_code == 200
    assert "secret" not in got.json()
    assert got.json()["secret_masked"] == "whsec_…" + secret[-4:]
    listed = api.get("/api/v1/webhooks", headers=seed.alice.auth).json()
    assert secret not in json.dumps(listed)
    assert [w["id"] for w in listed["data"]] == [created["id"]]


def test_the_secret_is_stored_encrypted(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    from control.webhooks import secrets
    from control.webhooks.models import WebhookEndpoint

    created = _create(api, seed.alice)

    async def work(session: AsyncSession) -> Any:
        return await session.get(WebhookEndpoint, uuid.UUID(created["id"]))

    row = _in_db(control_settings, work)
    assert created["secret"] not in row.secret_encrypted
    assert secrets.decrypt(control_settings, row.secret_encrypted) == created["secret"]


def test_an_idempotent_replay_does_not_reveal_the_secret(api: TestClient, seed: Seed) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "create-hook"}
    body = {"url": URL, "event_types": ["link.created"]}
    first = api.post("/api/v1/webhooks", json=body, headers=headers)
    second = api.post("/api/v1/webhooks", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["secret"].startswith("whsec_")
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["secret"] is None
    assert second.json()["secret_redacted"] is True
    assert first.json()["secret"] not in second.text


def test_list_update_delete(api: TestClient, seed: Seed) -> None:
    ids = [_create(api, seed.alice)["id"] for _ in range(3)]
    page = api.get("/api/v1/webhooks?limit=2", headers=seed.alice.auth).json()
    assert [w["id"] for w in page["data"]] == ids[:2]
    rest = api.get(f"/api/v1/webhooks?cursor={page['next_cursor']}", headers=seed.alice.auth)
    assert [w["id"] for w in rest.json()["data"]] == ids[2:]
    assert rest.json()["next_cursor"] is None

    patched = api.patch(
        f"/api/v1/webhooks/{ids[0]}",
        json={
            "url": "https://other.example.com/h",
            "event_types": ["link.qr_scanned", "link.qr_scanned"],
            "description": "d",
            "enabled": False,
        },
        headers=seed.alice.auth,
    )
    assert patched.status_code == 200, patched.text
    out = patched.json()
    assert out["url"] == "https://other.example.com/h"
    assert out["event_types"] == ["link.qr_scanned"]
    assert (out["description"], out["enabled"]) == ("d", False)
    cleared = api.patch(
        f"/api/v1/webhooks/{ids[0]}", json={"description": None}, headers=seed.alice.auth
    )
    assert cleared.json()["description"] is None
    assert cleared.json()["url"] == "https://other.example.com/h"

    assert api.delete(f"/api/v1/webhooks/{ids[0]}", headers=seed.alice.auth).status_code == 204
    _problem(
        api.get(f"/api/v1/webhooks/{ids[0]}", headers=seed.alice.auth), 404, "webhook_not_found"
    )
    _problem(
        api.delete(f"/api/v1/webhooks/{ids[0]}", headers=seed.alice.auth), 404, "webhook_not_found"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://169.254.169.254/latest",
        "https://[::1]/x",
        "https://localhost/x",
        "https:///x",
        "https://bad_host!/x",
        "https://hooks.example.com:99999/x",
        "https://hooks.example.com/ x",
        "https://hooks.example.com/" + "a" * 2048,
        "not a url",
    ],
)
def test_bad_urls_are_refused(api: TestClient, seed: Seed, url: str) -> None:
    response = api.post(
        "/api/v1/webhooks",
        json={"url": url, "event_types": ["link.created"]},
        headers=seed.alice.auth,
    )
    assert _problem(response, 422, "invalid_url")["field"] == "url"


def test_private_urls_are_allowed_when_configured(papi: TestClient, seed: Seed) -> None:
    for url in ("http://127.0.0.1:9/x", "https://localhost/x", "http://[::1]:8080/"):
        response = papi.post(
            "/api/v1/webhooks",
            json={"url": url, "event_types": ["link.created"]},
            headers=seed.alice.auth,
        )
        assert response.status_code == 201, response.text


def test_event_types_must_come_from_the_catalogue(api: TestClient, seed: Seed) -> None:
    def post(types: Any) -> Any:
        return api.post(
            "/api/v1/webhooks", json={"url": URL, "event_types": types}, headers=seed.alice.auth
        )

    _problem(post([]), 422, "validation_failed")
    assert (
        _problem(post(["link.created", "link.deleted"]), 422, "unknown_event_type")["field"]
        == "event_types"
    )
    _problem(post(["nim.webhook.test"]), 422, "unknown_event_type")
    created = _create(api, seed.alice)
    bad = api.patch(
        f"/api/v1/webhooks/{created['id']}", json={"event_types": []}, headers=seed.alice.auth
    )
    _problem(bad, 422, "validation_failed")
    _problem(
        api.patch(
            f"/api/v1/webhooks/{created['id']}",
            json={"url": "http://x.example"},
            headers=seed.alice.auth,
        ),
        422,
        "invalid_url",
    )


def test_rotation_answers_a_new_secret_once(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice)
    rotated = api.post(f"/api/v1/webhooks/{created['id']}/rotate-secret", headers=seed.alice.auth)
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != created["secret"]
    expires = dt.datetime.fromisoformat(body["previous_secret_expires_at"])
    left = expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=23) < left <= dt.timedelta(hours=24)
    got = api.get(f"/api/v1/webhooks/{created['id']}", headers=seed.alice.auth).json()
    assert got["secret_masked"] == "whsec_…" + body["secret"][-4:]
    bad = api.post(
        f"/api/v1/webhooks/{created['id']}/rotate-secret",
        json={"overlap_s": 604_801},
        headers=seed.alice.auth,
    )
    _problem(bad, 422, "validation_failed")


# -- test-send, rotation overlap, deliveries -------------------------------------------------


def _send_test(client: TestClient, tenant: Tenant, hook_id: str) -> Any:
    response = client.post(f"/api/v1/webhooks/{hook_id}/test", headers=tenant.auth)
    assert response.status_code == 200, response.text
    return response.json()


def test_test_send_reaches_a_real_receiver_signed(
    papi: TestClient, seed: Seed, receiver: Receiver
) -> None:
    hook = _create(papi, seed.alice, url=receiver.url)
    result = _send_test(papi, seed.alice, hook["id"])
    assert result["status"] == "succeeded"
    assert result["status_code"] == 200
    assert result["error"] is None
    assert isinstance(result["latency_ms"], int)

    [(headers, body)] = receiver.requests
    assert headers["x-nim-delivery-reason"] == "test"
    timestamp = int(headers["x-nim-timestamp"])
    assert signing.verify(headers["x-nim-signature"], hook["secret"], timestamp, body)
    envelope = json.loads(body)
    assert envelope["type"] == "nim.webhook.test"
    assert envelope["workspace_id"] == seed.alice.workspace_id
    assert envelope["data"]["endpoint_id"] == hook["id"]
    assert envelope["id"].startswith("evt_")

    deliveries = papi.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=seed.alice.auth)
    [delivery] = deliveries.json()["data"]
    assert delivery["id"] == result["delivery_id"]
    assert (delivery["reason"], delivery["status"]) == ("test", "succeeded")
    assert delivery["event_id"] == envelope["id"]
    [attempt] = delivery["attempts"]
    assert (attempt["number"], attempt["status_code"]) == (1, 200)
    assert attempt["response_excerpt"] == "ok"
    assert hook["secret"] not in deliveries.text


def test_a_failing_test_send_is_one_attempt(
    papi: TestClient, seed: Seed, receiver: Receiver, private_settings: ControlSettings
) -> None:
    receiver.status = 503
    hook = _create(papi, seed.alice, url=receiver.url)
    result = _send_test(papi, seed.alice, hook["id"])
    assert (result["status"], result["status_code"]) == ("failed", 503)
    assert result["error"] == "HTTP 503"
    row = _delivery_row(private_settings, result["delivery_id"])
    assert (row.status, row.next_attempt_at) == ("failed", None)


def test_both_secrets_sign_during_the_overlap(
    papi: TestClient, seed: Seed, receiver: Receiver
) -> None:
    hook = _create(papi, seed.alice, url=receiver.url)
    rotated = papi.post(
        f"/api/v1/webhooks/{hook['id']}/rotate-secret",
        json={"overlap_s": 600},
        headers=seed.alice.auth,
    ).json()
    _send_test(papi, seed.alice, hook["id"])
    headers, body = receiver.requests[-1]
    signature = headers["x-nim-signature"]
    timestamp = int(headers["x-nim-timestamp"])
    assert len(signature.split()) == 2
    assert signing.verify(signature, rotated["secret"], timestamp, body)
    assert signing.verify(signature, hook["secret"], timestamp, body)

    # Without an overlap only the new secret signs.
    again = papi.post(
        f"/api/v1/webhooks/{hook['id']}/rotate-secret",
        json={"overlap_s": 0},
        headers=seed.alice.auth,
    ).json()
    assert again["previous_secret_expires_at"] is None
    _send_test(papi, seed.alice, hook["id"])
    headers, body = receiver.requests[-1]
    timestamp = int(headers["x-nim-timestamp"])
    assert len(headers["x-nim-signature"].split()) == 1
    assert signing.verify(headers["x-nim-signature"], again["secret"], timestamp, body)
    assert not signing.verify(headers["x-nim-signature"], rotated["secret"], timestamp, body)


def test_deliveries_are_listed_newest_first_with_attempts(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    hook = _create(api, seed.alice)
    first, _, _ = _delivery(
        control_settings,
        seed.alice,
        hook["id"],
        "dead",
        attempts=[(500, dt.timedelta(minutes=5)), (None, dt.timedelta(minutes=1))],
    )
    second, _, _ = _delivery(control_settings, seed.alice, hook["id"], "pending")
    page = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries?limit=1", headers=seed.alice.auth)
    assert [d["id"] for d in page.json()["data"]] == [str(second)]
    rest = api.get(
        f"/api/v1/webhooks/{hook['id']}/deliveries?cursor={page.json()['next_cursor']}",
        headers=seed.alice.auth,
    ).json()
    assert [d["id"] for d in rest["data"]] == [str(first)]
    assert rest["next_cursor"] is None
    one = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries/{first}", headers=seed.alice.auth)
    assert one.status_code == 200
    out = one.json()
    assert out["attempt_count"] == 2
    assert [(a["number"], a["status_code"], a["latency_ms"]) for a in out["attempts"]] == [
        (1, 500, 12),
        (2, None, 12),
    ]
    assert out["attempts"][0]["error"] == "HTTP 500"
    _problem(
        api.get(
            f"/api/v1/webhooks/{hook['id']}/deliveries/{uuid.uuid4()}", headers=seed.alice.auth
        ),
        404,
        "delivery_not_found",
    )


# -- replay and recover ----------------------------------------------------------------------


def test_replay_of_a_failed_delivery(
    api: TestClient, seed: Seed, control_settings: ControlSettings, enqueued: list[str]
) -> None:
    hook = _create(api, seed.alice)
    failed, event_id, body = _delivery(
        control_settings, seed.alice, hook["id"], "failed", attempts=[(400, dt.timedelta(0))]
    )
    response = api.post(
        f"/api/v1/webhooks/{hook['id']}/deliveries/{failed}/replay", headers=seed.alice.auth
    )
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["id"] != str(failed)
    assert (out["reason"], out["status"], out["attempts"]) == ("replay", "pending", [])
    assert out["event_id"] == f"evt_{event_id.hex}"
    row = _delivery_row(control_settings, out["id"])
    assert (row.body, row.event_id) == (body, event_id)
    assert enqueued == [out["id"]]


def test_only_dead_or_failed_deliveries_replay(
    api: TestClient, seed: Seed, control_settings: ControlSettings, enqueued: list[str]
) -> None:
    hook = _create(api, seed.alice)
    for status in ("succeeded", "pending", "retrying"):
        delivery, _, _ = _delivery(control_settings, seed.alice, hook["id"], status)
        response = api.post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery}/replay", headers=seed.alice.auth
        )
        _problem(response, 409, "not_replayable")
    dead, _, _ = _delivery(control_settings, seed.alice, hook["id"], "dead")
    ok = api.post(
        f"/api/v1/webhooks/{hook['id']}/deliveries/{dead}/replay", headers=seed.alice.auth
    )
    assert ok.status_code == 201
    assert enqueued == [ok.json()["id"]]


def test_recover_replays_what_failed_since(
    api: TestClient, seed: Seed, control_settings: ControlSettings, enqueued: list[str]
) -> None:
    hook = _create(api, seed.alice)
    s = control_settings
    _delivery(s, seed.alice, hook["id"], "dead", created_ago=dt.timedelta(hours=3))  # too old
    _delivery(s, seed.alice, hook["id"], "dead", created_ago=dt.timedelta(minutes=30))
    _delivery(s, seed.alice, hook["id"], "failed", created_ago=dt.timedelta(minutes=20))
    _delivery(s, seed.alice, hook["id"], "succeeded", created_ago=dt.timedelta(minutes=10))
    # An event dead first, then replayed with success: nothing left to recover.
    _, eid, _ = _delivery(s, seed.alice, hook["id"], "dead", created_ago=dt.timedelta(minutes=9))
    _delivery(s, seed.alice, hook["id"], "succeeded", event_id=eid, reason="replay")
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    response = api.post(
        f"/api/v1/webhooks/{hook['id']}/recover", json={"since": since}, headers=seed.alice.auth
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"replayed": 2}
    assert len(enqueued) == 2
    listed = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=seed.alice.auth).json()
    assert sorted(d["id"] for d in listed["data"] if d["status"] == "pending") == sorted(enqueued)
    # The replays are pending: a second recover finds nothing new to send.
    again = api.post(
        f"/api/v1/webhooks/{hook['id']}/recover", json={"since": since}, headers=seed.alice.auth
    )
    assert again.json() == {"replayed": 0}
    _problem(
        api.post(
            f"/api/v1/webhooks/{hook['id']}/recover",
            json={"since": "2026-01-01T00:00:00"},
            headers=seed.alice.auth,
        ),
        422,
        "validation_failed",
    )


# -- health ----------------------------------------------------------------------------------


def test_health_numbers(api: TestClient, seed: Seed, control_settings: ControlSettings) -> None:
    hook = _create(api, seed.alice)
    empty = api.get(f"/api/v1/webhooks/{hook['id']}/health", headers=seed.alice.auth).json()
    assert empty == {
        "success_rate_24h": None,
        "attempts_24h": 0,
        "retrying": 0,
        "dead": 0,
        "last_success_at": None,
        "last_failure_at": None,
    }
    s = control_settings
    h = dt.timedelta(hours=1)
    _delivery(s, seed.alice, hook["id"], "succeeded", attempts=[(500, 3 * h), (200, 2 * h)])
    _delivery(s, seed.alice, hook["id"], "retrying", attempts=[(None, h)])
    _delivery(s, seed.alice, hook["id"], "dead", attempts=[(200, 30 * h), (503, 26 * h)])
    _delivery(s, seed.alice, hook["id"], "succeeded", attempts=[(204, 5 * h)])
    health = api.get(f"/api/v1/webhooks/{hook['id']}/health", headers=seed.alice.auth).json()
    assert health["attempts_24h"] == 4
    assert health["success_rate_24h"] == 0.5
    assert (health["retrying"], health["dead"]) == (1, 1)
    now = dt.datetime.now(dt.UTC)
    last_success = dt.datetime.fromisoformat(health["last_success_at"])
    last_failure = dt.datetime.fromisoformat(health["last_failure_at"])
    assert abs((now - last_success) - 2 * h) < dt.timedelta(minutes=1)
    assert abs((now - last_failure) - h) < dt.timedelta(minutes=1)


# -- isolation and scopes --------------------------------------------------------------------


def test_another_workspace_sees_nothing(
    api: TestClient, seed: Seed, control_settings: ControlSettings, enqueued: list[str]
) -> None:
    hook = _create(api, seed.alice)
    dead, _, _ = _delivery(control_settings, seed.alice, hook["id"], "dead")
    base = f"/api/v1/webhooks/{hook['id']}"
    bob = seed.bob.auth
    for response in (
        api.get(base, headers=bob),
        api.patch(base, json={"enabled": False}, headers=bob),
        api.delete(base, headers=bob),
        api.post(f"{base}/rotate-secret", headers=bob),
        api.post(f"{base}/test", headers=bob),
        api.get(f"{base}/deliveries", headers=bob),
        api.get(f"{base}/deliveries/{dead}", headers=bob),
        api.post(f"{base}/deliveries/{dead}/replay", headers=bob),
        api.post(f"{base}/recover", json={"since": "2026-01-01T00:00:00Z"}, headers=bob),
        api.get(f"{base}/health", headers=bob),
    ):
        _problem(response, 404, "webhook_not_found")
    assert api.get("/api/v1/webhooks", headers=bob).json()["data"] == []
    # Bob's own endpoint does not open Alice's deliveries either.
    bobs = _create(api, seed.bob)
    _problem(
        api.get(f"/api/v1/webhooks/{bobs['id']}/deliveries/{dead}", headers=bob),
        404,
        "delivery_not_found",
    )
    _problem(api.get("/api/v1/webhooks/not-an-id", headers=bob), 404, "webhook_not_found")
    assert enqueued == []


def test_scopes(api: TestClient, seed: Seed, control_settings: ControlSettings) -> None:
    hook = _create(api, seed.alice)
    read_only = _key(control_settings, seed.alice, ["webhooks:read"])
    links_only = _key(control_settings, seed.alice, ["links:write"])
    assert api.get("/api/v1/webhooks", headers=read_only).status_code == 200
    assert api.get(f"/api/v1/webhooks/{hook['id']}/health", headers=read_only).status_code == 200
    base = f"/api/v1/webhooks/{hook['id']}"
    for response in (
        api.post(
            "/api/v1/webhooks",
            json={"url": URL, "event_types": ["link.created"]},
            headers=read_only,
        ),
        api.patch(base, json={"enabled": False}, headers=read_only),
        api.delete(base, headers=read_only),
        api.post(f"{base}/rotate-secret", headers=read_only),
        api.post(f"{base}/test", headers=read_only),
        api.get("/api/v1/webhooks", headers=links_only),
    ):
        _problem(response, 403, "insufficient_scope")
