"""From the real source of each event to a destination's receiver: a click through the real
ingest, and a sale through the signed Conversion API, each relayed, fanned out, mapped and
sent to a loopback receiver standing in for the vendor."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

from control.settings import ControlSettings
from shared import signing
from shared.clicks import BATCH_FIELD, ClickEvent, encode_batch
from shared.ids import uuid7
from shared.keys import click_stream
from tests.integration.conftest import Seed, resources, run
from tests.integration.test_delivery import Receiver
from tests.integration.test_destinations_delivery import _attempt

HUMAN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver.running() as r:
        yield r


@pytest.fixture
def settings(control_settings: ControlSettings) -> ControlSettings:
    return msgspec.structs.replace(
        control_settings,
        allow_private_destinations=True,
        rate_limit_per_minute=0,
        conversion_settle_poll_s=0,  # no background settling: not under test here
    )


@pytest.fixture
def client(settings: ControlSettings) -> Iterator[TestClient]:
    from control.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def _relay(settings: ControlSettings) -> list[uuid.UUID]:
    """Drain the outbox as the relay does; the delivery ids it would enqueue."""
    from control.relay.service import Relay

    queued: list[uuid.UUID] = []

    async def go() -> None:
        async with resources(settings) as (db, redis):
            await Relay(settings, db, redis, enqueue=queued.extend).drain()

    run(go())
    return queued


def _ingest(settings: ControlSettings, clicks: list[ClickEvent]) -> None:
    from control.ingest.consumer import Ingest

    async def go() -> None:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "t")
            await ingest.ensure_groups()
            await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch(clicks)})
            while await ingest.step():
                pass

    run(go())


def _click(link: dict[str, Any], **extra: Any) -> ClickEvent:
    return ClickEvent(
        id=uuid7().hex,
        ts_ms=int(time.time() * 1000),
        link_id=link["id"],
        workspace_id=link["workspace_id"],
        domain_id=link["domain_id"],
        user_agent=HUMAN,
        country="DE",
        **extra,
    )


def test_a_tagged_campaign_click_reaches_ga4_and_others_do_not(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    demo = client.post(
        "/api/v1/links",
        json={"destination": "brand.example/demo", "slug": "demo", "tags": ["demo"]},
        headers=seed.alice.auth,
    ).json()
    blog = client.post(
        "/api/v1/links",
        json={"destination": "brand.example/blog", "slug": "blog"},
        headers=seed.alice.auth,
    ).json()
    created = client.post(
        "/api/v1/destinations",
        json={
            "kind": "ga4",
            "event_types": ["link.clicked", "link.qr_scanned"],
            "config": {
                "measurement_id": "G-FLOW1",
                "api_secret": "flow-secret",
                "base_url": receiver.url(""),
            },
            "filters": {
                "tags": ["demo"],
                "conditions": [{"field": "data.utm_campaign", "op": "prefix", "value": "spring"}],
            },
            "redact": ["data.country"],
        },
        headers=seed.alice.auth,
    )
    assert created.status_code == 201, created.text
    _relay(settings)  # the links' own lifecycle events: not for this destination

    wanted = _click(demo, utm_source="newsletter", utm_campaign="spring-26")
    _ingest(
        settings,
        [
            wanted,
            _click(demo, utm_campaign="autumn"),  # filtered out: campaign
            _click(blog, utm_campaign="spring-26"),  # filtered out: tag
        ],
    )
    (delivery_id,) = _relay(settings)
    assert _attempt(settings, delivery_id).status == "succeeded"

    (got,) = receiver.requests
    assert got.path.startswith("/mp/collect?")
    body = msgspec.json.decode(got.body)
    assert body["client_id"] == f"nimct_{wanted.id}"
    (event,) = body["events"]
    assert event["name"] == "short_link_click"
    assert event["params"]["campaign"] == "spring-26"
    assert event["params"]["source"] == "newsletter"
    assert event["params"]["short_code"] == "demo"
    assert event["params"]["event_id"] == f"evt_{wanted.id}"
    assert "country" not in event["params"]  # redacted


def test_a_sale_reaches_segment_as_order_completed(
    client: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    created = client.post(
        "/api/v1/destinations",
        json={
            "kind": "segment",
            "event_types": ["conversion.recorded"],
            "config": {"write_key": "wk_flow", "base_url": receiver.url("")},
            "filters": {"conditions": [{"field": "data.event_name", "op": "eq", "value": "sale"}]},
        },
        headers=seed.alice.auth,
    )
    assert created.status_code == 201, created.text
    secret = client.post("/api/v1/conversions/secret", headers=seed.alice.auth).json()["secret"]

    def send(body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        stamp = int(time.time())
        response = client.post(
            f"/api/conversions/callback/{seed.alice.workspace_id}",
            content=raw,
            headers={
                "content-type": "application/json",
                signing.TIMESTAMP_HEADER: str(stamp),
                signing.SIGNATURE_HEADER: signing.signature_header([secret], stamp, raw),
            },
        )
        assert response.status_code == 201, response.text

    send({"event_name": "lead", "event_id": "lead-1", "user_data": {"external_id": "cust-7"}})
    send(
        {
            "event_name": "sale",
            "event_id": "sale-1",
            "user_data": {"external_id": "cust-7"},
            "custom_data": {"value": 129.5, "currency": "EUR", "order_id": "order-9"},
        }
    )
    (delivery_id,) = _relay(settings)  # the lead is filtered out
    assert _attempt(settings, delivery_id).status == "succeeded"

    (got,) = receiver.requests
    assert got.path == "/v1/track"
    body = msgspec.json.decode(got.body)
    assert body["event"] == "Order Completed"
    assert body["userId"] == "cust-7"
    assert body["properties"]["order_id"] == "order-9"
    assert body["properties"]["currency"] == "EUR"
    assert body["messageId"].startswith("evt_")
