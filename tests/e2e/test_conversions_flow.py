"""The Conversion API end to end: `ricochet up`, a real redirect with its nim_ct token, signed
outcomes over HTTP, attribution by the running control plane, and the reports."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx

from shared import signing
from tests.e2e.conftest import Up

DEADLINE_S = 20.0
BROWSER = {
    "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/124.0.0.0 Safari/537.36"
}


def _until(what: str, probe: Callable[[], Any]) -> Any:
    """Poll `probe` until it returns something truthy, or fail after the deadline."""
    started = time.monotonic()
    while not (found := probe()):
        assert time.monotonic() - started < DEADLINE_S, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def test_a_tracked_click_then_signed_outcomes_are_attributed_and_reported(up: Up) -> None:
    info = up.start()
    api, edge = info["control_url"], info["edge_url"]
    auth = {"authorization": f"Bearer {info['api_key']}"}
    with httpx.Client(timeout=5, follow_redirects=False) as http:
        # Given a conversion secret and a tracked A/B link
        issued = http.post(f"{api}/api/v1/conversions/secret", headers=auth)
        assert issued.status_code == 201, issued.text
        secret = issued.json()["secret"]
        variants = ["https://shop.example/a", "https://shop.example/b"]
        created = http.post(
            f"{api}/api/v1/links",
            json={
                "destination": "https://shop.example/",
                "slug": "launch",
                "tags": ["q2"],
                "track_conversions": True,
                "routing": {"variants": [{"destination": d} for d in variants]},
            },
            headers=auth,
        )
        assert created.status_code == 201, created.text
        link = created.json()

        # When a visitor (a browser: bots count apart) clicks it on the edge
        hit = _until(
            "the edge to know the link",
            lambda: (r := http.get(f"{edge}/launch", headers=BROWSER)).status_code == 302 and r,
        )

        # Then the destination carries the click token
        location = urlsplit(hit.headers["location"])
        variant = variants.index(f"{location.scheme}://{location.netloc}{location.path}")
        [click_token] = parse_qs(location.query)["nim_ct"]
        assert click_token.startswith("nimct_")

        def send(body: dict[str, Any]) -> Any:
            raw = json.dumps(body).encode()
            ts = int(time.time())
            response = http.post(
                f"{api}/api/conversions/callback/{info['workspace_id']}",
                content=raw,
                headers={
                    "content-type": "application/json",
                    signing.TIMESTAMP_HEADER: str(ts),
                    signing.SIGNATURE_HEADER: signing.signature_header([secret], ts, raw),
                },
            )
            assert response.status_code == 201, response.text
            return response.json()

        # When the shop's backend reports a lead and a sale with the token, and a refund
        lead = send(
            {"event_name": "lead", "event_id": "crm-1", "user_data": {"click_id": click_token}}
        )
        sale = send(
            {
                "event_name": "sale",
                "event_id": "order-1",
                "user_data": {"click_id": click_token},
                "custom_data": {"value": "129.00", "currency": "EUR", "order_id": "1"},
            }
        )
        refund = send(
            {
                "event_name": "refund",
                "event_id": "refund-1",
                "custom_data": {"related_order_id": "1", "value": "29.00"},
            }
        )

        # Then all three end up attributed to the link and the variant served (at once, or
        # by the control plane's settler once ingest has stored the click)
        for recorded in (lead, sale, refund):

            def attributed(conversion_id: str = recorded["id"]) -> Any:
                got = http.get(f"{api}/api/v1/conversions/{conversion_id}", headers=auth)
                body = got.json()
                return body["attribution"]["status"] == "attributed" and body

            body = _until(f"{recorded['event_id']} to be attributed", attributed)
            assert body["attribution"]["link_id"] == link["id"]
            assert body["attribution"]["variant"] == variant
        assert refund["related_conversion_id"] == sale["id"]

        # And the report shows counts, rate and net value for the link
        def report() -> Any:
            page = http.get(
                f"{api}/api/v1/analytics/conversions/links",
                params={"link_id": link["id"]},
                headers=auth,
            ).json()
            return page["data"] and page["data"][0]["clicks"] >= 1 and page["data"][0]

        row = _until("the report to count the click", report)
        assert row["clicks"] == 1
        assert row["conversions"] == {
            "lead": 1,
            "sale": 1,
            "refund": 1,
            "cancellation": 0,
            "reversal": 0,
        }
        assert row["attribution_rate"] == 2.0  # a lead and a sale from one click
        [eur] = row["values"]
        assert (eur["sales"], eur["refunds"], eur["net"]) == ("129.00", "29.00", "100.00")
        by_variant = http.get(f"{api}/api/v1/analytics/conversions/variants", headers=auth).json()[
            "data"
        ]
        assert [(v["variant"], v["clicks"], v["conversions"]["sale"]) for v in by_variant] == [
            (variant, 1, 1)
        ]

        # And each outcome is one conversion.recorded event
        events = http.get(
            f"{api}/api/v1/events", params={"type": "conversion.recorded"}, headers=auth
        ).json()["data"]
        assert sorted(e["data"]["event_id"] for e in events) == ["crm-1", "order-1", "refund-1"]
    assert up.stop(signal.SIGINT) == 0
