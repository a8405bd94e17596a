"""Conversion reports over a known set of clicks and outcomes: counts by type, value by
currency net of negatives, attribution rate per workspace, link, tag and A/B variant, the
unattributed and pending outcomes of the workspace, and the CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from control.settings import ControlSettings
from tests.integration.conftest import Seed
from tests.integration.test_conversions import (
    Callback,
    click,
    click_id_at,
    ingest,
    make_secret,
    ok,
    problem,
    sale,
    token,
    tracked_link,
)
from tests.integration.test_conversions import client as client
from tests.integration.test_conversions import lead as lead_body
from tests.integration.test_conversions import quiet_settings as quiet_settings

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
START = (NOW - dt.timedelta(days=2)).replace(minute=0, second=0)
END = (NOW + dt.timedelta(hours=2)).replace(minute=0, second=0)
RANGE = {"start": START.isoformat(), "end": END.isoformat()}


@dataclass(frozen=True)
class World:
    api: TestClient
    seed: Seed
    spring: dict[str, Any]  # A/B (two variants), tag "promo"
    daily: dict[str, Any]  # tag "news"


def _refund(name: str, event_id: str, **custom: Any) -> dict[str, Any]:
    return {"event_name": name, "event_id": event_id, "custom_data": custom}


@pytest.fixture
def world(client: TestClient, seed: Seed, quiet_settings: ControlSettings) -> World:
    api = client
    ab = {
        "variants": [
            {"destination": "https://shop.example/a"},
            {"destination": "https://shop.example/b"},
        ]
    }
    spring = tracked_link(api, seed.alice, "spring", tags=["promo"], routing=ab)
    daily = tracked_link(api, seed.alice, "daily", tags=["news"])
    bobs = tracked_link(api, seed.bob, "bobs")
    at = NOW - dt.timedelta(hours=3)
    # Clicks: spring 10 on variant 0 and 6 on variant 1, daily 4 (all human); 2 bots.
    v0 = [click(spring, at, variant=0) for _ in range(10)]
    v1 = [click(spring, at, variant=1) for _ in range(6)]
    plain = [click(daily, at) for _ in range(4)]
    bots = [click(spring, at, variant=0, bot=True) for _ in range(2)]
    bob_clicks = [click(bobs, at)]
    ingest(quiet_settings, v0 + v1 + plain + bots + bob_clicks)

    alice = Callback(api, seed.alice.workspace_id, make_secret(api, seed.alice))
    for i in range(3):
        ok(alice.send(lead_body(f"l-v0-{i}", token(v0[i]))), 201)
    ok(alice.send(lead_body("l-v1", token(v1[0]))), 201)
    ok(alice.send(lead_body("l-daily", token(plain[0]))), 201)
    ok(alice.send(sale("s-v0", token(v0[3]), "100.00", "o-v0")), 201)
    ok(alice.send(sale("s-v1", token(v1[1]), "50", "o-v1")), 201)
    daily_sale = sale("s-daily", token(plain[1]), "20", "o-daily")
    daily_sale["custom_data"]["currency"] = "USD"
    ok(alice.send(daily_sale), 201)
    ok(alice.send(_refund("refund", "r-v0", related_order_id="o-v0", value="30.00")), 201)
    ok(alice.send(_refund("reversal", "cb-daily", related_event_id="s-daily")), 201)
    # One outcome without a click, one whose click is not stored yet.
    ok(alice.send(lead_body("l-none", None, user_data={"external_id": "c-9"})), 201)
    recent = "nimct_" + click_id_at(NOW)
    ok(alice.send(lead_body("l-pending", recent)), 201)
    # Bob's outcome never shows in Alice's reports.
    bob = Callback(api, seed.bob.workspace_id, make_secret(api, seed.bob))
    ok(bob.send(sale("s-bob", token(bob_clicks[0]), "999", "o-bob")), 201)
    return World(api, seed, spring, daily)


def _get(world: World, path: str, **params: Any) -> Any:
    return ok(world.api.get(path, params={**RANGE, **params}, headers=world.seed.alice.auth))


def test_the_workspace_summary_counts_every_outcome_and_nets_the_value(world: World) -> None:
    summary = _get(world, "/api/v1/analytics/conversions")

    assert summary["clicks"] == 20  # humans only
    assert summary["conversions"] == {
        "lead": 7,
        "sale": 3,
        "refund": 1,
        "cancellation": 0,
        "reversal": 1,
    }
    assert summary["attribution"] == {"attributed": 10, "pending": 1, "unattributed": 1}
    assert summary["attribution_rate"] == 0.4  # (5 leads + 3 sales attributed) / 20 clicks
    assert summary["values"] == [
        {
            "currency": "EUR",
            "leads": "0",
            "sales": "150.00",
            "refunds": "30.00",
            "cancellations": "0",
            "reversals": "0",
            "net": "120.00",
        },
        {
            "currency": "USD",
            "leads": "0",
            "sales": "20",
            "refunds": "0",
            "cancellations": "0",
            "reversals": "20",
            "net": "0",
        },
    ]


def test_a_scoped_summary_counts_only_what_is_attributed_to_those_links(world: World) -> None:
    summary = _get(world, "/api/v1/analytics/conversions", tag="promo")

    assert summary["clicks"] == 16
    assert summary["conversions"] == {
        "lead": 4,
        "sale": 2,
        "refund": 1,
        "cancellation": 0,
        "reversal": 0,
    }
    assert summary["attribution"] == {"attributed": 7, "pending": 0, "unattributed": 0}
    assert summary["attribution_rate"] == 0.375
    [eur] = summary["values"]
    assert eur["net"] == "120.00"


def test_per_link_rows_carry_counts_rate_and_net_value(world: World) -> None:
    page = _get(world, "/api/v1/analytics/conversions/links")

    rows = {row["slug"]: row for row in page["data"]}
    assert list(rows) == ["spring", "daily"]  # most leads and sales first
    assert rows["spring"]["clicks"] == 16
    assert rows["spring"]["conversions"]["lead"] == 4
    assert rows["spring"]["conversions"]["sale"] == 2
    assert rows["spring"]["attribution_rate"] == 0.375
    assert [(v["currency"], v["net"]) for v in rows["spring"]["values"]] == [("EUR", "120.00")]
    assert rows["daily"]["clicks"] == 4
    assert rows["daily"]["conversions"]["reversal"] == 1
    assert rows["daily"]["attribution_rate"] == 0.5
    assert [(v["currency"], v["net"]) for v in rows["daily"]["values"]] == [("USD", "0")]
    assert page["next_cursor"] is None


def test_per_link_rows_page_with_a_cursor(world: World) -> None:
    first = _get(world, "/api/v1/analytics/conversions/links", limit=1)
    second = _get(
        world, "/api/v1/analytics/conversions/links", limit=1, cursor=first["next_cursor"]
    )

    assert [r["slug"] for r in first["data"] + second["data"]] == ["spring", "daily"]
    assert second["next_cursor"] is None


def test_per_tag_rows_follow_the_links_tags(world: World) -> None:
    page = _get(world, "/api/v1/analytics/conversions/tags")

    rows = {row["tag"]: row for row in page["data"]}
    assert set(rows) == {"promo", "news"}
    assert rows["promo"]["clicks"] == 16
    assert rows["promo"]["conversions"]["lead"] == 4
    assert rows["news"]["attribution_rate"] == 0.5
    assert [(v["currency"], v["net"]) for v in rows["promo"]["values"]] == [("EUR", "120.00")]
    assert [(v["currency"], v["reversals"]) for v in rows["news"]["values"]] == [("USD", "20")]


def test_conversions_by_variant_keep_the_ab_context(world: World) -> None:
    report = _get(world, "/api/v1/analytics/conversions/variants")

    rows = {(row["slug"], row["variant"]): row for row in report["data"]}
    assert set(rows) == {("spring", 0), ("spring", 1)}
    v0, v1 = rows[("spring", 0)], rows[("spring", 1)]
    assert v0["destination"] == "https://shop.example/a"
    assert (v0["clicks"], v0["conversions"]["lead"], v0["conversions"]["sale"]) == (10, 3, 1)
    assert v0["attribution_rate"] == 0.4
    assert [(v["sales"], v["refunds"], v["net"]) for v in v0["values"]] == [
        ("100.00", "30.00", "70.00")
    ]
    assert (v1["clicks"], v1["conversions"]["lead"], v1["conversions"]["sale"]) == (6, 1, 1)
    assert v1["attribution_rate"] == 0.3333


def test_the_export_lists_every_outcome_with_its_attribution(world: World) -> None:
    response = world.api.get(
        "/api/v1/analytics/conversions/export", params=RANGE, headers=world.seed.alice.auth
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 12
    by_event = {row["event_id"]: row for row in rows}
    assert by_event["l-v1"]["slug"] == "spring"
    assert by_event["l-v1"]["variant"] == "1"
    assert by_event["l-v1"]["click_id"].startswith("nimct_")
    assert by_event["l-none"]["attribution"] == "unattributed"
    assert by_event["l-none"]["unattributed_reason"] == "no_click_id"
    assert by_event["l-pending"]["attribution"] == "pending"
    assert by_event["r-v0"]["related_conversion_id"] == by_event["s-v0"]["id"]
    assert by_event["cb-daily"]["value"] == "20"
    assert "s-bob" not in by_event


def test_the_export_of_one_tag_has_its_attributed_outcomes_only(world: World) -> None:
    response = world.api.get(
        "/api/v1/analytics/conversions/export",
        params={**RANGE, "tag": "news"},
        headers=world.seed.alice.auth,
    )

    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(row["event_id"] for row in rows) == ["cb-daily", "l-daily", "s-daily"]


def test_reports_need_the_analytics_scope_and_a_valid_range(world: World) -> None:
    problem(
        world.api.get(
            "/api/v1/analytics/conversions",
            params={"start": END.isoformat(), "end": START.isoformat()},
            headers=world.seed.alice.auth,
        ),
        422,
        "invalid_range",
    )
    problem(world.api.get("/api/v1/analytics/conversions"), 401, "unauthorized")
