"""Events to destinations against real PostgreSQL and real HTTP receivers on loopback:
fan-out filters (tags looked up at fan-out), redaction, mapped bodies stored and sent as
is, vendor requests (auth, URLs), signatures, retries, dead-letter, replay, test-sends."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from control.db import session_factory
from control.delivery import engine, fanout, guard, subscriptions
from control.delivery.models import Delivery
from control.destinations.models import Destination
from control.events import service as events
from control.events.envelope import parse_event_id
from control.relay.service import Relay
from control.settings import ControlSettings
from control.workspaces.models import Workspace
from shared.signing import REASON_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.integration.conftest import Seed, Tenant, resources, run
from tests.integration.test_delivery import Receiver, Reply

GA4 = {"measurement_id": "G-TEST123", "api_secret": "ga4-api-secret"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver.running() as r:
        yield r


@pytest.fixture
def settings(control_settings: ControlSettings) -> ControlSettings:
    return msgspec.structs.replace(
        control_settings,
        allow_private_destinations=True,
        delivery_schedule_s="0.2,0.2,0.2,0.2,0.2",
        delivery_connect_timeout_s=1.0,
        delivery_read_timeout_s=0.5,
    )


@pytest.fixture
def client(settings: ControlSettings) -> Iterator[TestClient]:
    """The API with loopback receivers allowed (as RICOCHET_ALLOW_PRIVATE_DESTINATIONS)."""
    from control.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


# -- helpers ---------------------------------------------------------------------------


def _dest(client: TestClient, tenant: Tenant, **body: Any) -> Any:
    payload = {"kind": "http", "event_types": ["link.clicked"], **body}
    response = client.post("/api/v1/destinations", json=payload, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _click_data(**data: Any) -> dict[str, Any]:
    return {
        "click_id": "nimct_0190",
        "link_id": str(uuid.uuid4()),
        "domain_id": str(uuid.uuid4()),
        "short_url": "http://sho.rt/demo",
        "domain_name": "sho.rt",
        "short_code": "demo",
        "touch_type": "link",
        "country": "US",
        "device_category": "desktop",
        "browser_family": "Firefox",
        "os_family": "Linux",
        "referrer_host": "news.example",
        "social_source": None,
        **data,
    }


async def _emit(
    settings: ControlSettings, tenant: Tenant, event_type: str, data: dict[str, Any]
) -> dict[str, Any]:
    async with resources(settings) as (db, _), session_factory(db).begin() as session:
        ws = await session.get(Workspace, uuid.UUID(tenant.workspace_id))
        assert ws is not None
        return await events.emit(session, ws.organization_id, ws.id, event_type, data)


def _fan(
    settings: ControlSettings, tenant: Tenant, event_type: str, **data: Any
) -> list[uuid.UUID]:
    """Emit an event (click-shaped data) and fan it out; the new due deliveries' ids."""

    async def go() -> list[uuid.UUID]:
        env = await _emit(settings, tenant, event_type, _click_data(**data))
        async with resources(settings) as (db, _), session_factory(db).begin() as session:
            eid = parse_event_id(env["id"])
            assert eid is not None
            return await fanout.create_for_events(session, [eid])

    return run(go())


def _attempt(settings: ControlSettings, delivery_id: uuid.UUID) -> engine.AttemptOutcome:
    async def go() -> engine.AttemptOutcome:
        async with resources(settings) as (db, _), guard.client(settings) as http:
            return await engine.attempt(session_factory(db), http, settings, delivery_id)

    return run(go())


def _until_done(settings: ControlSettings, delivery_id: uuid.UUID) -> list[str]:
    """Attempt, waiting for each scheduled retry, as the actor would."""

    async def go() -> list[str]:
        seen = []
        async with resources(settings) as (db, _), guard.client(settings) as http:
            while True:
                outcome = await engine.attempt(session_factory(db), http, settings, delivery_id)
                seen.append(outcome.status)
                if outcome.status != "retrying":
                    return seen
                assert outcome.next_attempt_at is not None
                wait = (outcome.next_attempt_at - dt.datetime.now(dt.UTC)).total_seconds()
                await asyncio.sleep(max(0.0, wait))

    return run(go())


def _rows(settings: ControlSettings, destination_id: str) -> list[Delivery]:
    async def go() -> list[Delivery]:
        async with resources(settings) as (db, _), session_factory(db)() as session:
            result = await session.execute(
                select(Delivery)
                .where(Delivery.destination_id == uuid.UUID(destination_id))
                .order_by(Delivery.id)
            )
            return list(result.scalars())

    return run(go())


# -- fan-out: filters, tags, redaction ----------------------------------------------------


def test_filters_decide_at_fan_out_which_events_make_deliveries(
    client: TestClient, settings: ControlSettings, seed: Seed
) -> None:
    scans = _dest(
        client,
        seed.alice,
        url="https://a.example/scans",
        event_types=["link.clicked", "link.qr_scanned"],
        filters={"touch_types": ["qr"]},
    )
    spring = _dest(
        client,
        seed.alice,
        url="https://a.example/spring",
        filters={"conditions": [{"field": "data.utm_campaign", "op": "eq", "value": "spring"}]},
    )
    off = _dest(client, seed.alice, url="https://a.example/off", enabled=False)

    _fan(settings, seed.alice, "link.clicked", utm_campaign="autumn")
    _fan(settings, seed.alice, "link.clicked", utm_campaign="spring")
    _fan(settings, seed.alice, "link.qr_scanned", touch_type="qr")
    _fan(settings, seed.bob, "link.qr_scanned", touch_type="qr")  # another workspace

    assert [d.event_type for d in _rows(settings, scans["id"])] == ["link.qr_scanned"]
    spring_rows = _rows(settings, spring["id"])
    assert len(spring_rows) == 1
    assert msgspec.json.decode(spring_rows[0].body)["data"]["utm_campaign"] == "spring"
    assert _rows(settings, off["id"]) == []


def test_tag_filters_use_the_links_tags_at_fan_out(
    client: TestClient, settings: ControlSettings, seed: Seed
) -> None:
    demo = client.post(
        "/api/v1/links",
        json={"destination": "brand.example/demo", "slug": "demo-video", "tags": ["demo"]},
        headers=seed.alice.auth,
    ).json()
    other = client.post(
        "/api/v1/links",
        json={"destination": "brand.example/blog", "slug": "blog", "tags": ["blog"]},
        headers=seed.alice.auth,
    ).json()
    dest = _dest(client, seed.alice, url="https://a.example/demo", filters={"tags": ["demo"]})

    assert len(_fan(settings, seed.alice, "link.clicked", link_id=demo["id"])) == 1
    assert _fan(settings, seed.alice, "link.clicked", link_id=other["id"]) == []
    # Tags as they are now, not as they were when the destination was made.
    retagged = client.patch(
        f"/api/v1/links/{other['id']}", json={"tags": ["demo"]}, headers=seed.alice.auth
    )
    assert retagged.status_code == 200, retagged.text
    assert len(_fan(settings, seed.alice, "link.clicked", link_id=other["id"])) == 1
    assert len(_rows(settings, dest["id"])) == 2


def test_redacted_fields_are_not_in_the_stored_or_sent_body(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    dest = _dest(
        client,
        seed.alice,
        url=receiver.url(),
        redact=["data.country", "data.referrer_host", "organization_id"],
    )
    (delivery_id,) = _fan(settings, seed.alice, "link.clicked")
    assert _attempt(settings, delivery_id).status == "succeeded"

    (got,) = receiver.requests
    (row,) = _rows(settings, dest["id"])
    assert got.body == row.body
    sent = msgspec.json.decode(got.body)
    assert "country" not in sent["data"]
    assert "referrer_host" not in sent["data"]
    assert "organization_id" not in sent
    assert sent["data"]["short_code"] == "demo"


def test_ingest_counts_enabled_destinations_as_receivers(
    client: TestClient, settings: ControlSettings, seed: Seed
) -> None:
    async def who(types: list[str]) -> set[uuid.UUID]:
        async with resources(settings) as (db, _), db.connect() as conn:
            ids = {uuid.UUID(seed.alice.workspace_id), uuid.UUID(seed.bob.workspace_id)}
            return await subscriptions.subscribed_workspaces(conn, ids, types)

    assert run(who(["link.qr_scanned"])) == set()
    dest = _dest(client, seed.alice, url="https://a.example/x", event_types=["link.qr_scanned"])
    assert run(who(["link.qr_scanned"])) == {uuid.UUID(seed.alice.workspace_id)}
    assert run(who(["link.clicked"])) == set()
    client.patch(
        f"/api/v1/destinations/{dest['id']}", json={"enabled": False}, headers=seed.alice.auth
    )
    assert run(who(["link.qr_scanned"])) == set()


def test_the_relay_fans_events_out_to_destinations(
    client: TestClient, settings: ControlSettings, seed: Seed
) -> None:
    dest = _dest(client, seed.alice, url="https://a.example/x", event_types=["link.created"])
    created = client.post(
        "/api/v1/links", json={"destination": "a.example/x"}, headers=seed.alice.auth
    )
    assert created.status_code == 201
    queued: list[uuid.UUID] = []

    async def drain() -> None:
        async with resources(settings) as (db, redis):
            await Relay(settings, db, redis, enqueue=queued.extend).drain()

    run(drain())
    (row,) = _rows(settings, dest["id"])
    assert queued == [row.id]
    assert msgspec.json.decode(row.body)["data"]["link_id"] == created.json()["id"]


# -- sending: signatures, custom headers, vendors ------------------------------------------


def test_generic_http_is_signed_and_carries_its_custom_headers(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    dest = _dest(
        client,
        seed.alice,
        url=receiver.url("/crm"),
        headers={"Authorization": "Bearer crm-token", "X-Team": "growth"},
        template={"event": "type", "link": "data.short_url", "source": "'ricochet'"},
    )
    (delivery_id,) = _fan(settings, seed.alice, "link.clicked")
    assert _attempt(settings, delivery_id).status == "succeeded"

    (got,) = receiver.requests
    assert got.path == "/crm"
    assert got.headers["authorization"] == "Bearer crm-token"
    assert got.headers["x-team"] == "growth"
    assert got.headers["content-type"] == "application/json"
    assert msgspec.json.decode(got.body) == {
        "event": "link.clicked",
        "link": "http://sho.rt/demo",
        "source": "ricochet",
    }
    ts = int(got.headers[TIMESTAMP_HEADER.lower()])
    assert verify(got.headers[SIGNATURE_HEADER.lower()], dest["secret"], ts, got.body)
    (row,) = _rows(settings, dest["id"])
    assert row.body == got.body  # the stored bytes are the bytes sent


def test_segment_track_with_write_key_basic_auth(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    _dest(
        client,
        seed.alice,
        kind="segment",
        config={"write_key": "wk_live_1", "base_url": receiver.url("")},
    )
    (delivery_id,) = _fan(settings, seed.alice, "link.clicked")
    assert _attempt(settings, delivery_id).status == "succeeded"

    (got,) = receiver.requests
    assert got.path == "/v1/track"
    assert got.headers["authorization"] == "Basic d2tfbGl2ZV8xOg=="  # "wk_live_1:"
    assert SIGNATURE_HEADER.lower() not in got.headers  # vendors are not signed
    body = msgspec.json.decode(got.body)
    assert body["event"] == "Link Clicked"
    assert body["anonymousId"] == "nimct_0190"
    assert body["messageId"].startswith("evt_")


def test_ga4_secret_is_only_in_the_request_url(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    dest = _dest(client, seed.alice, kind="ga4", config={**GA4, "base_url": receiver.url("")})
    (delivery_id,) = _fan(settings, seed.alice, "link.clicked", utm_campaign="spring")
    assert _attempt(settings, delivery_id).status == "succeeded"

    (got,) = receiver.requests
    parts = urlsplit(got.path)
    assert parts.path == "/mp/collect"
    assert parse_qs(parts.query) == {
        "measurement_id": ["G-TEST123"],
        "api_secret": ["ga4-api-secret"],
    }
    body = msgspec.json.decode(got.body)
    assert body["events"][0]["name"] == "short_link_click"
    assert body["events"][0]["params"]["campaign"] == "spring"
    (row,) = _rows(settings, dest["id"])
    assert b"ga4-api-secret" not in row.body


def test_meta_capi_with_bearer_token_and_slack_message(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    _dest(
        client,
        seed.alice,
        kind="meta_capi",
        config={
            "pixel_id": "123456",
            "access_token": "EAAB-token",
            "test_event_code": "TEST42",
            "base_url": receiver.url(""),
        },
    )
    _dest(
        client,
        seed.alice,
        kind="slack",
        config={"webhook_url": receiver.url("/services/T0/B0/secretpart")},
    )
    ids = _fan(settings, seed.alice, "link.clicked", utm_campaign="<!channel>")
    assert sorted(_attempt(settings, i).status for i in ids) == ["succeeded", "succeeded"]

    by_path = {r.path: r for r in receiver.requests}
    meta = by_path["/v23.0/123456/events"]
    assert meta.headers["authorization"] == "Bearer EAAB-token"
    meta_body = msgspec.json.decode(meta.body)
    assert meta_body["test_event_code"] == "TEST42"
    assert meta_body["data"][0]["event_name"] == "LinkClick"
    slack = msgspec.json.decode(by_path["/services/T0/B0/secretpart"].body)
    assert slack["text"].startswith("*Link clicked* · http://sho.rt/demo · US")
    assert "&lt;!channel&gt;" in slack["text"]


# -- failures, retries, dead-letter, replay ------------------------------------------------


def test_retries_then_dead_then_replay_sends_the_same_bytes(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    receiver.script = [Reply(503, b"down")]
    dest = _dest(client, seed.alice, url=receiver.url())
    (delivery_id,) = _fan(settings, seed.alice, "link.clicked")
    assert _until_done(settings, delivery_id) == ["retrying"] * 5 + ["dead"]

    history = client.get(
        f"/api/v1/destinations/{dest['id']}/deliveries", headers=seed.alice.auth
    ).json()["data"]
    assert [(d["status"], d["attempt_count"]) for d in history] == [("dead", 6)]
    assert [a["status_code"] for a in history[0]["attempts"]] == [503] * 6
    health = client.get(f"/api/v1/destinations/{dest['id']}/health", headers=seed.alice.auth)
    assert health.json()["dead"] == 1
    assert health.json()["success_rate_24h"] == 0.0

    receiver.script = [Reply(200)]
    replayed = client.post(
        f"/api/v1/destinations/{dest['id']}/deliveries/{delivery_id}/replay",
        headers=seed.alice.auth,
    )
    assert replayed.status_code == 201, replayed.text
    assert replayed.json()["reason"] == "replay"
    assert _attempt(settings, uuid.UUID(replayed.json()["id"])).status == "succeeded"
    last = receiver.requests[-1]
    assert last.body == receiver.requests[0].body
    assert last.headers[REASON_HEADER.lower()] == "replay"
    assert (
        client.post(
            f"/api/v1/destinations/{dest['id']}/deliveries/{replayed.json()['id']}/replay",
            headers=seed.alice.auth,
        ).json()["code"]
        == "not_replayable"
    )


def test_a_mapping_failure_is_a_failed_delivery_and_replay_maps_again(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    dest = _dest(
        client,
        seed.alice,
        url=receiver.url(),
        template={"text": "join(' ', [data.short_code, data.no_such_field])"},
    )
    assert _fan(settings, seed.alice, "link.clicked") == []  # nothing due: nothing queued
    (row,) = _rows(settings, dest["id"])
    assert (row.status, row.body, row.attempts) == ("failed", b"", 0)
    assert row.last_error is not None
    assert row.last_error.startswith("mapping failed")
    assert "join" in row.last_error

    fixed = client.patch(
        f"/api/v1/destinations/{dest['id']}",
        json={"template": {"text": "join(' ', [data.short_code, data.no_such_field || '-'])"}},
        headers=seed.alice.auth,
    )
    assert fixed.status_code == 200
    replayed = client.post(
        f"/api/v1/destinations/{dest['id']}/deliveries/{row.id}/replay", headers=seed.alice.auth
    )
    assert replayed.status_code == 201, replayed.text
    assert _attempt(settings, uuid.UUID(replayed.json()["id"])).status == "succeeded"
    assert msgspec.json.decode(receiver.requests[-1].body) == {"text": "demo -"}


def test_a_disabled_destination_fails_its_pending_deliveries_unsent(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    dest = _dest(client, seed.alice, url=receiver.url())
    (delivery_id,) = _fan(settings, seed.alice, "link.clicked")
    client.patch(
        f"/api/v1/destinations/{dest['id']}", json={"enabled": False}, headers=seed.alice.auth
    )
    outcome = _attempt(settings, delivery_id)
    assert (outcome.status, outcome.error) == ("failed", "destination disabled")
    assert receiver.requests == []


def test_recover_replays_what_failed_since(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    receiver.script = [Reply(400, b"bad")]
    dest = _dest(client, seed.alice, url=receiver.url())
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    ids = [_fan(settings, seed.alice, "link.clicked")[0] for _ in range(2)]
    assert [_attempt(settings, i).status for i in ids] == ["failed", "failed"]
    response = client.post(
        f"/api/v1/destinations/{dest['id']}/recover",
        json={"since": since.isoformat()},
        headers=seed.alice.auth,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"replayed": 2}


# -- test-sends ----------------------------------------------------------------------------


def test_test_send_goes_through_the_mapping(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    http_dest = _dest(client, seed.alice, url=receiver.url("/http"))
    ga4 = _dest(client, seed.alice, kind="ga4", config={**GA4, "base_url": receiver.url("")})

    plain = client.post(f"/api/v1/destinations/{http_dest['id']}/test", headers=seed.alice.auth)
    assert plain.status_code == 200, plain.text
    assert plain.json()["status"] == "succeeded"
    sample = client.post(
        f"/api/v1/destinations/{ga4['id']}/test",
        json={"event_type": "link.qr_scanned"},
        headers=seed.alice.auth,
    )
    assert sample.json()["status"] == "succeeded"

    first, second = receiver.requests
    assert first.headers[REASON_HEADER.lower()] == "test"
    test_event = msgspec.json.decode(first.body)
    assert test_event["type"] == "nim.webhook.test"
    assert test_event["data"]["destination_id"] == http_dest["id"]
    ts = int(first.headers[TIMESTAMP_HEADER.lower()])
    assert verify(first.headers[SIGNATURE_HEADER.lower()], http_dest["secret"], ts, first.body)
    ga4_body = msgspec.json.decode(second.body)
    assert ga4_body["events"][0]["name"] == "qr_code_scan"
    assert ga4_body["events"][0]["params"]["touch_type"] == "qr"


def test_test_send_to_a_failing_receiver_reports_once(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    receiver.script = [Reply(500)]
    dest = _dest(client, seed.alice, url=receiver.url())
    result = client.post(f"/api/v1/destinations/{dest['id']}/test", headers=seed.alice.auth)
    assert result.json()["status"] == "failed"
    assert result.json()["status_code"] == 500
    assert len(receiver.requests) == 1
    (row,) = _rows(settings, dest["id"])
    assert (row.reason, row.status) == ("test", "failed")


def test_secrets_never_appear_in_recorded_errors(
    client: TestClient, settings: ControlSettings, seed: Seed
) -> None:
    # Nothing listens there: the network error is recorded, scrubbed of the api secret.
    dest = _dest(client, seed.alice, kind="ga4", config={**GA4, "base_url": "http://127.0.0.1:9"})
    (delivery_id,) = _fan(settings, seed.alice, "link.clicked")
    outcome = _attempt(settings, delivery_id)
    assert outcome.status == "retrying"

    async def stored() -> Destination:
        async with resources(settings) as (db, _), session_factory(db)() as session:
            found = await session.get(Destination, uuid.UUID(dest["id"]))
            assert found is not None
            return found

    assert run(stored()).enabled
    listed = client.get(
        f"/api/v1/destinations/{dest['id']}/deliveries", headers=seed.alice.auth
    ).text
    assert "ga4-api-secret" not in listed


def test_a_deleted_destination_takes_its_deliveries(
    client: TestClient, settings: ControlSettings, seed: Seed
) -> None:
    dest = _dest(client, seed.alice, url="https://a.example/x")
    _fan(settings, seed.alice, "link.clicked")
    assert len(_rows(settings, dest["id"])) == 1
    client.delete(f"/api/v1/destinations/{dest['id']}", headers=seed.alice.auth)
    assert _rows(settings, dest["id"]) == []


def test_a_delivery_targets_exactly_one_receiver(settings: ControlSettings, seed: Seed) -> None:
    from sqlalchemy.exc import IntegrityError

    async def go() -> None:
        async with resources(settings) as (db, _), session_factory(db).begin() as session:
            session.add(
                Delivery(
                    workspace_id=uuid.UUID(seed.alice.workspace_id),
                    event_id=uuid.uuid4(),
                    event_type="link.clicked",
                    body=b"{}",
                )
            )

    with pytest.raises(IntegrityError, match="ck_deliveries_one_target"):
        run(go())


def test_reconciler_resends_overdue_destination_deliveries(
    client: TestClient, settings: ControlSettings, seed: Seed
) -> None:
    _dest(client, seed.alice, url="https://a.example/x")
    (delivery_id,) = _fan(settings, seed.alice, "link.clicked")

    async def go() -> list[uuid.UUID]:
        async with resources(settings) as (db, _):
            sessions = session_factory(db)
            async with sessions.begin() as session:
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery_id)
                    .values(next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
                )
            sent: list[uuid.UUID] = []
            await engine.reconcile(sessions, sent.extend)
            return sent

    assert run(go()) == [delivery_id]
