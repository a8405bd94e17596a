"""Redis fails under real traffic: the edge keeps redirecting and loses no click."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx2 as httpx
import psycopg
import redis

from ricochet.embedded import EmbeddedRedis
from tests.e2e.conftest import Up


def _metric(http: httpx.Client, edge_url: str, name: str) -> float:
    for line in http.get(f"{edge_url}/_/metrics").text.splitlines():
        if line.startswith(f"ricochet_edge_{name} "):
            return float(line.split()[1])
    return 0.0


def _stored(database_url: str, link_id: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM clicks WHERE link_id = %s", (link_id,)
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_redis_down_then_back_and_flushed(up: Up, tmp_path: Path) -> None:
    # Given the whole system on a Redis we control (persistent, so a restart keeps streams)
    store = EmbeddedRedis(tmp_path / "redis-home", durable=True)
    redis_url = store.start()
    info = up.start_with({"RICOCHET_REDIS_URL": redis_url})
    auth = {"authorization": f"Bearer {info['api_key']}"}
    edge = info["edge_url"]
    with httpx.Client(timeout=5, follow_redirects=False) as http:
        link = http.post(
            f"{info['control_url']}/api/v1/links",
            json={"destination": "https://example.com/", "slug": "outage"},
            headers=auth,
        ).json()
        deadline = time.monotonic() + 10
        while http.get(f"{edge}/outage").status_code != 302:  # warms the edge cache too
            assert time.monotonic() < deadline
            time.sleep(0.02)
        warm = 1

        # When Redis stops during traffic
        store.stop()
        during = [http.get(f"{edge}/outage").status_code for _ in range(200)]
        deadline = time.monotonic() + 10
        while _metric(http, edge, "clicks_spooled_total") < 200:
            assert time.monotonic() < deadline, "clicks were not spooled"
            time.sleep(0.1)

        # Then cached links kept redirecting and clicks went to the spool
        assert during == [302] * 200

        # When Redis comes back on the same port
        store = EmbeddedRedis(tmp_path / "redis-home", durable=True)
        store.start()

        # Then every spooled click arrives exactly once
        expected = warm + 200
        deadline = time.monotonic() + 30
        while _stored(info["database_url"], link["id"])[0] < expected:
            assert time.monotonic() < deadline, (
                f"stored {_stored(info['database_url'], link['id'])}"
            )
            time.sleep(0.2)
        time.sleep(1.0)  # would any duplicate arrive late?
        assert _stored(info["database_url"], link["id"]) == (expected, expected)
        assert _metric(http, edge, "clicks_dropped_total") == 0

        # When Redis loses everything (flush), existing links still redirect
        redis.Redis.from_url(redis_url).flushall()
        time.sleep(0.1)
        deadline = time.monotonic() + 5
        while (status := http.get(f"{edge}/outage").status_code) != 302:
            assert time.monotonic() < deadline, f"answered {status} after FLUSHALL"
            time.sleep(0.05)
        fresh = http.get(f"{edge}/never-existed")
        assert fresh.status_code == 404

    assert up.stop(signal.SIGINT) == 0
    store.stop()
