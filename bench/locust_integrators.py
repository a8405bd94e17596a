"""Backend integrators using the management API, for `ricochet bench api` (and as background
load with `ricochet bench redirect --integrators RATE`); started by bench/loadgen.py.

The weights follow what integrations do most: read links and analytics, create single
links as campaigns go out, now and then a bulk call of 100 (a spreadsheet's worth).

BENCH_API (JSON): api_key, links_file (the seeded links, for reads by id).
"""

from __future__ import annotations

import json
import os
import random
import uuid

from locust import FastHttpUser, task

from bench.recorder import Schedule, lateness_ms, pacing  # Schedule: the shape locust runs

API = json.loads(os.environ.get("BENCH_API", "{}"))
AUTH = {"Authorization": f"Bearer {API.get('api_key', '')}"}
BULK_SIZE = int(API.get("bulk_size", 100))


def _ids() -> list[str]:
    if not API.get("links_file"):
        return []
    with open(API["links_file"]) as f:
        ids: list[str] = json.load(f)["ids"]
    return ids[:1000]  # the most visited ones: those with clicks to report


IDS = _ids()
DIMENSIONS = ["country", "device", "browser", "referrer_host", "utm_source"]


def _link(n: int) -> dict[str, object]:
    return {
        "destination": f"https://shop{n % 7}.example/p/{n}?src=bench",
        "utm_source": random.choice(["newsletter", "instagram", "partner"]),
        "utm_medium": "email",
        "utm_campaign": "bench",
        "tags": ["bench"],
    }


class Integrator(FastHttpUser):
    wait_time = pacing()

    def _call(self, method: str, path: str, name: str, expect: int, body: object = None) -> None:
        self.client.request(
            method,
            path,
            name=name,
            headers=AUTH,
            json=body,
            context={"expect": expect, "late_ms": lateness_ms(self)},
        )

    @task(4)
    def create_link(self) -> None:
        self._call("POST", "/api/v1/links", "POST /links", 201, _link(random.getrandbits(30)))

    @task(1)
    def bulk_create(self) -> None:
        items = [_link(random.getrandbits(30)) for _ in range(BULK_SIZE)]
        self._call(
            "POST", "/api/v1/links/bulk", f"POST /links/bulk ({BULK_SIZE})", 200, {"items": items}
        )

    @task(4)
    def get_link(self) -> None:
        if IDS:
            self._call("GET", f"/api/v1/links/{random.choice(IDS)}", "GET /links/{id}", 200)

    @task(2)
    def list_links(self) -> None:
        self._call("GET", "/api/v1/links?limit=50", "GET /links", 200)

    @task(3)
    def timeseries(self) -> None:
        link = f"&link_id={random.choice(IDS)}" if IDS and random.random() < 0.7 else ""
        path = f"/api/v1/analytics/timeseries?interval=hour{link}"
        self._call("GET", path, "GET /analytics/timeseries", 200)

    @task(2)
    def breakdown(self) -> None:
        path = f"/api/v1/analytics/breakdown?dimension={random.choice(DIMENSIONS)}"
        self._call("GET", path, "GET /analytics/breakdown", 200)

    @task(1)
    def top_links(self) -> None:
        self._call("GET", "/api/v1/analytics/links?limit=20", "GET /analytics/links", 200)

    @task(1)
    def idempotent_retry(self) -> None:
        # A retried create with the same Idempotency-Key must replay, not create twice.
        key = uuid.uuid4().hex
        body = _link(random.getrandbits(30))
        for attempt in ("first", "replay"):
            self.client.request(
                "POST",
                "/api/v1/links",
                name=f"POST /links (Idempotency-Key, {attempt})",
                headers={**AUTH, "Idempotency-Key": key},
                json=body,
                # The replay leaves right after the first answer, not on the timetable.
                context={"expect": 201, "late_ms": lateness_ms(self) if attempt == "first" else 0},
            )


__all__ = ["Integrator", "Schedule"]
