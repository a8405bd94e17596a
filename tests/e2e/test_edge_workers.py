"""`ricochet edge` as deployed: several Granian workers, one metrics view, drained on SIGTERM."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx2 as httpx
import redis

from ricochet.embedded import EmbeddedRedis
from shared.clicks import BATCH_FIELD, decode_batch
from shared.keys import click_streams, link_key
from shared.records import LinkRecord, encode_link
from tests.e2e.conftest import spawn_edge


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"ricochet_edge_{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in metrics:\n{text[:2000]}")


def test_two_workers_report_one_sum_and_drain_every_click_on_sigterm(tmp_path: Path) -> None:
    store = EmbeddedRedis(tmp_path / "redis", durable=False)
    url = store.start()
    client = redis.Redis.from_url(url)
    record = LinkRecord(
        "00000000-0000-4000-8000-000000000002", "ws", "dom", 1, "https://example.com/"
    )
    client.hset(link_key("localhost", "w"), mapping={"v": 1, "r": encode_link(record)})
    proc, port = spawn_edge(
        url,
        tmp_path / "spool",
        {
            # Long flush interval and big batches: the clicks are still in memory at
            # SIGTERM, so the drain is what must deliver them.
            "RICOCHET_CAPTURE_FLUSH_MS": "60000",
            "RICOCHET_CAPTURE_BATCH": "100000",
        },
    )
    try:
        time.sleep(1.0)  # both workers up
        base = f"http://127.0.0.1:{port}"
        for _ in range(60):
            # A fresh connection each time, so both workers get some of the traffic.
            with httpx.Client(follow_redirects=False) as http:
                assert http.get(f"{base}/w", headers={"host": "localhost"}).status_code == 302
        time.sleep(1.5)  # workers mirror their counters into the shared files once a second
        with httpx.Client() as http:
            text = http.get(f"{base}/_/metrics").text
        assert _metric(text, "redirects_total") == 60
        assert _metric(text, "clicks_captured_total") == 60
        assert _metric(text, "clicks_dropped_total") == 0
        assert _metric(text, "clicks_flushed_total") == 0  # still buffered

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0

        events = [
            e
            for s in click_streams(4)
            for _, f in client.xrange(s)
            for e in decode_batch(f[BATCH_FIELD])
        ]
        assert len(events) == 60
        assert len({e.id for e in events}) == 60
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()
        store.stop()
