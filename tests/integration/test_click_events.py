"""Ingest turns stored human clicks and scans into `link.clicked` / `link.qr_scanned` events
for workspaces that listen, in the transaction that stores them: one event per click."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
from starlette.testclient import TestClient

from control.delivery import fanout
from control.ingest.consumer import Ingest
from control.settings import ControlSettings
from shared.clicks import BATCH_FIELD, ClickEvent, encode_batch
from shared.ids import uuid7
from shared.keys import click_stream
from tests.integration.conftest import Seed, Tenant, resources, run

HUMAN = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def _link(api: TestClient, tenant: Tenant, slug: str) -> dict[str, Any]:
    body = {"destination": "https://shop.example/p?secret-sig=abc&u=42", "slug": slug}
    response = api.post("/api/v1/links", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _subscribe(api: TestClient, tenant: Tenant, types: list[str], enabled: bool = True) -> None:
    body = {"url": "https://hooks.example.com/in", "event_types": types, "enabled": enabled}
    response = api.post("/api/v1/webhooks", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text


def _click(
    link: dict[str, Any], *, touch: str = "link", agent: str = HUMAN, **extra: Any
) -> ClickEvent:
    return ClickEvent(
        id=uuid7().hex,
        ts_ms=int(time.time() * 1000),
        link_id=link["id"],
        workspace_id=link["workspace_id"],
        domain_id=link["domain_id"],
        touch=touch,
        user_agent=agent,
        referrer="https://t.co/abc",
        country="DE",
        **extra,
    )


def _ingest(settings: ControlSettings, *batches: list[ClickEvent]) -> int:
    """Each batch XADDed as the edge does, then ingest run until it has read everything."""

    async def go() -> int:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "t")
            await ingest.ensure_groups()
            for batch in batches:
                await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch(batch)})
            while await ingest.step():
                pass
            return ingest.metrics.events

    return run(go())  # type: ignore[no-any-return]


def _events(settings: ControlSettings) -> list[tuple[str, str, dict[str, Any]]]:
    with psycopg.connect(settings.libpq_url) as conn:
        rows = conn.execute(
            "SELECT id::text, type, envelope FROM events "
            "WHERE type IN ('link.clicked', 'link.qr_scanned') ORDER BY id"
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_a_human_click_becomes_a_link_clicked_event_with_the_seed_fields(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _link(api, seed.alice, "launch")
    _subscribe(api, seed.alice, ["link.clicked"])
    click = _click(link, utm_source="newsletter", utm_campaign="spring")

    assert _ingest(control_settings, [click]) == 1

    [(event_id, kind, env)] = _events(control_settings)
    assert kind == "link.clicked"
    assert uuid.UUID(event_id).hex == click.id  # the event is its click, for good
    assert env["id"] == f"evt_{click.id}"
    assert env["type"] == "link.clicked"
    assert env["workspace_id"] == seed.alice.workspace_id
    data = env["data"]
    assert data["link_id"] == link["id"]
    assert data["domain_id"] == link["domain_id"]
    assert data["short_url"] == link["short_url"]
    assert data["short_code"] == "launch"
    assert data["domain_name"] == link["domain"]
    assert data["touch_type"] == "link"
    assert data["click_id"] == f"nimct_{click.id}"
    assert data["country"] == "DE"
    assert data["device_category"] == "mobile"
    assert data["browser_family"] == "Mobile Safari"
    assert data["os_family"] == "iOS"
    assert data["referrer_host"] == "t.co"
    assert data["social_source"] == "x"
    assert data["utm_source"] == "newsletter"
    assert data["utm_campaign"] == "spring"
    assert "utm_medium" not in data  # UTM fields where present
    assert "shop.example" not in str(env)  # never the destination, nor its query


def test_scans_bots_and_unsubscribed_types_make_no_click_event(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _link(api, seed.alice, "launch")
    _subscribe(api, seed.alice, ["link.clicked"])  # not link.qr_scanned

    made = _ingest(
        control_settings,
        [_click(link, touch="qr"), _click(link, agent=BOT), _click(link, touch="qr", agent=BOT)],
    )

    assert made == 0
    assert _events(control_settings) == []


def test_scans_become_link_qr_scanned_for_their_subscribers(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _link(api, seed.alice, "launch")
    _subscribe(api, seed.alice, ["link.qr_scanned"])

    _ingest(control_settings, [_click(link), _click(link, touch="qr"), _click(link, touch="qr")])

    assert [kind for _, kind, _ in _events(control_settings)] == ["link.qr_scanned"] * 2
    assert all(env["data"]["touch_type"] == "qr" for _, _, env in _events(control_settings))


def test_workspaces_without_an_enabled_subscriber_get_no_events(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    alice_link = _link(api, seed.alice, "a")
    bob_link = _link(api, seed.bob, "b")
    _subscribe(api, seed.alice, ["link.clicked"], enabled=False)
    _subscribe(api, seed.bob, ["link.created"])

    assert _ingest(control_settings, [_click(alice_link), _click(bob_link)]) == 0


def test_a_click_delivered_twice_makes_one_event(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _link(api, seed.alice, "launch")
    _subscribe(api, seed.alice, ["link.clicked"])
    clicks = [_click(link) for _ in range(3)]

    # The edge retried a flush whose first XADD had in fact succeeded.
    _ingest(control_settings, clicks, clicks)

    assert len(_events(control_settings)) == 3


def test_click_events_fan_out_to_the_subscribed_endpoint(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _link(api, seed.alice, "launch")
    _subscribe(api, seed.alice, ["link.clicked"])
    click = _click(link)
    _ingest(control_settings, [click])

    async def go() -> list[uuid.UUID]:
        from control.db import session_factory

        async with (
            resources(control_settings) as (engine, _),
            session_factory(engine).begin() as session,
        ):
            return await fanout.create_for_events(session, [uuid.UUID(hex=click.id)])

    assert len(run(go())) == 1
    with psycopg.connect(control_settings.libpq_url) as conn:
        row = conn.execute(
            "SELECT event_type, convert_from(body, 'UTF8') FROM deliveries"
        ).fetchone()
    assert row is not None
    assert row[0] == "link.clicked"
    assert f'"id":"evt_{click.id}"' in row[1]
