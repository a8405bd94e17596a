"""Seed 002's delivery contract, as a receiver sees it.

- The retry schedule, scaled: a real `ricochet worker` process and an always-503 receiver
  that notes when each request arrives; attempts land at 0/60/180/420/900/1800 s times a scale,
  then the delivery is dead once, and nothing more is sent.
- The classification table, status code by status code (100-599).
- Signatures checked by a receiver-side verifier written from the seed's text, proven on
  the published vectors first, then on a real delivery during a secret rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dramatiq
import msgspec
import pytest
import redis as sync_redis

from control.delivery import actors, engine
from control.settings import ControlSettings
from tests.integration.conftest import Seed, run
from tests.integration.test_delivery import Receiver, _attempt, _one_delivery, _state

SEED_SCHEDULE_S = [60, 120, 240, 480, 900]  # delays before attempts 2..6 (seed 002)
SCALE = 0.01
# How late one attempt may land: answering, recording and handing the retry to the broker,
# plus the worker's polling of it (0.1 s), on a busy 2-core machine; measured ~0.1-0.2 s.
LATE_S = 0.5
VECTORS = Path(__file__).parents[1] / "data" / "signing-vectors.json"


# -- the classification table --------------------------------------------------------------


def _seed_says(code: int) -> str:
    """Seed 002, read literally: retry on 408, 409, 425, 429 and 5xx; any other non-2xx
    fails at once; 2xx succeeds."""
    if 200 <= code <= 299:
        return "succeeded"
    if code in (408, 409, 425, 429) or 500 <= code <= 599:
        return "retry"
    return "failed"


@pytest.mark.parametrize("code", range(100, 600), ids=str)
def test_every_status_code_is_classified_as_seed_002_says(code: int) -> None:
    assert engine.classify(code) == _seed_says(code)


def test_no_response_at_all_is_retried() -> None:
    # A network error or a timeout leaves no status code: "no response" retries
    assert engine.classify(None) == "retry"


def test_the_table_is_not_trivial() -> None:
    # Guards the table above: each class really occurs, with the listed 4xx among retries
    verdicts = {code: engine.classify(code) for code in range(100, 600)}
    assert sum(v == "succeeded" for v in verdicts.values()) == 100
    assert sorted(c for c, v in verdicts.items() if v == "retry" and c < 500) == [
        408,
        409,
        425,
        429,
    ]
    assert {verdicts[c] for c in (100, 101, 301, 302, 304, 400, 401, 404, 410, 422)} == {"failed"}


# -- the scaled schedule, through a real worker process ------------------------------------


class TimedReceiver:
    """Answers 503 to everything and notes when each request arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.arrivals.append(time.monotonic())
                self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(503)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def timed() -> Iterator[TimedReceiver]:
    receiver = TimedReceiver()
    yield receiver
    receiver.close()


def test_always_503_attempts_land_on_the_scaled_schedule_then_one_dead_letter(
    control_settings: ControlSettings, seed: Seed, timed: TimedReceiver, tmp_path: Path
) -> None:
    # Given the seed's schedule scaled down 100 times and a broker of this test's own
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    broker_db = f"{control_settings.redis_url.rsplit('/', 1)[0]}/{15 - index}"
    with sync_redis.Redis.from_url(broker_db) as client:
        client.flushdb()
    delays = [d * SCALE for d in SEED_SCHEDULE_S]
    cfg = msgspec.structs.replace(
        control_settings,
        broker_url=broker_db,
        allow_private_destinations=True,
        delivery_schedule_s=",".join(f"{d:g}" for d in delays),
        delivery_connect_timeout_s=1.0,
        delivery_read_timeout_s=1.0,
    )
    # And a receiver that always answers 503, and a delivery to it
    delivery_id = run(_one_delivery(cfg, seed, timed.url()))

    # And a worker process
    env = {k: v for k, v in os.environ.items() if not k.startswith("RICOCHET_")}
    env.update(
        {
            "RICOCHET_DATABASE_URL": cfg.database_url,
            "RICOCHET_REDIS_URL": cfg.redis_url,
            "RICOCHET_SECRET_KEY": cfg.secret_key,
            "RICOCHET_BROKER_URL": broker_db,
            "RICOCHET_ALLOW_PRIVATE_DESTINATIONS": "true",
            "RICOCHET_DELIVERY_SCHEDULE_S": cfg.delivery_schedule_s,
        }
    )
    ready, log = tmp_path / "worker.ready", tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ricochet", "worker", "--threads", "2", "--ready-file", ready],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    broker: dramatiq.Broker | None = None
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "worker not ready"
            time.sleep(0.02)

        # When the delivery is enqueued
        broker = actors.configure(cfg)
        actors.enqueue([delivery_id])

        # Then it is attempted until it is dead
        deadline = time.monotonic() + sum(delays) + 20
        while run(_state(cfg, delivery_id))[0].status != "dead":
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not dead: {timed.arrivals}\n{log.read_text()}"
            time.sleep(0.05)
        time.sleep(2 * delays[0])  # would a seventh attempt come?
    finally:
        actors._actor = actors._runtime = None
        if broker is not None:
            broker.close()  # its connections, or they leak into later tests
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()

    # ... six attempts, each gap the scheduled delay (never early; late by at most a little:
    # the time to answer, record and hand the retry to the broker, plus its polling)
    arrivals = [t - timed.arrivals[0] for t in timed.arrivals]
    gaps = [b - a for a, b in zip(timed.arrivals, timed.arrivals[1:], strict=False)]
    report = f"arrivals {[round(a, 3) for a in arrivals]}, scheduled {delays}"
    assert len(arrivals) == 6, report
    for gap, delay in zip(gaps, delays, strict=True):
        assert delay - 0.05 <= gap <= delay + LATE_S, report
    planned = [sum(delays[:n]) for n in range(6)]  # 0, 0.6, 1.8, 4.2, 9.0, 18.0
    for got, want in zip(arrivals, planned, strict=True):
        assert want - 0.05 <= got <= want + 5 * LATE_S, report
    print(report)  # the measured figures

    # ... and exactly one dead-letter: the delivery, dead after attempt 6, with six attempts
    # recorded; Dramatiq's own dead-letter queue stays empty (retries are the engine's)
    delivery, tries = run(_state(cfg, delivery_id))
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("dead", 6, None)
    assert [(t.number, t.status_code) for t in tries] == [(n, 503) for n in range(1, 7)]
    with sync_redis.Redis.from_url(broker_db) as client:
        assert client.zcard(f"dramatiq:{cfg.delivery_queue}.XQ") == 0


# -- signatures, as a receiver checks them -------------------------------------------------


def receiver_verifies(
    header: str, secret: str, timestamp: str, body: bytes, now: float, tolerance_s: int = 300
) -> bool:
    """A receiver's check, from seed 002 alone: HMAC-SHA256(secret, "{timestamp}.{raw
    body}") in hex, any of the space-separated `v1=` values, and a fresh timestamp."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        return False
    message = timestamp.encode() + b"." + body
    expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return any(
        part.startswith("v1=") and hmac.compare_digest(part[3:].encode(), expected.encode())
        for part in header.split(" ")
    )


def _vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]
    return vectors


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: str(v.get("secret", "rotation")))
def test_the_receiver_side_verifier_accepts_every_published_vector(vector: dict[str, Any]) -> None:
    # Given a published vector (one secret, or several during a rotation)
    secrets = vector.get("secrets") or [vector["secret"]]
    body = vector["body"].encode("utf-8")
    timestamp = str(vector["timestamp"])

    # Then the verifier accepts it with each of its secrets, at the time it was signed ...
    for secret in secrets:
        assert receiver_verifies(
            vector["signature_header"], secret, timestamp, body, int(timestamp)
        )
    # ... and refuses it with another secret, another body, or an hour later
    assert not receiver_verifies(
        vector["signature_header"], "whsec_x", timestamp, body, 0 + int(timestamp)
    )
    assert not receiver_verifies(
        vector["signature_header"], secrets[0], timestamp, body + b" ", int(timestamp)
    )
    assert not receiver_verifies(
        vector["signature_header"], secrets[0], timestamp, body, int(timestamp) + 3600
    )


def test_a_delivery_during_rotation_verifies_with_either_secret_at_the_receiver(
    control_settings: ControlSettings, seed: Seed
) -> None:
    # Given an endpoint whose secret was rotated (the old one still in its overlap)
    cfg = msgspec.structs.replace(control_settings, allow_private_destinations=True)
    receiver = Receiver()
    receiver.thread.start()
    try:
        delivery_id = run(
            _one_delivery(
                cfg,
                seed,
                receiver.url(),
                secret="whsec_new",
                previous="whsec_old",
            )
        )

        # When it is delivered
        assert run(_attempt(cfg, delivery_id)).status == "succeeded"
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()

    # Then the receiver, knowing either secret, accepts the raw bytes it got ...
    (got,) = receiver.requests
    header, timestamp = got.headers["x-nim-signature"], got.headers["x-nim-timestamp"]
    assert len(header.split(" ")) == 2  # one v1= per secret
    now = time.time()
    assert receiver_verifies(header, "whsec_new", timestamp, got.body, now)
    assert receiver_verifies(header, "whsec_old", timestamp, got.body, now)
    # ... refuses it with an unrelated secret, and would refuse it replayed an hour later
    assert not receiver_verifies(header, "whsec_other", timestamp, got.body, now)
    assert not receiver_verifies(header, "whsec_new", timestamp, got.body, now + 3600)
    # ... and the body is the stored envelope, byte for byte
    delivery, _ = run(_state(cfg, delivery_id))
    assert got.body == delivery.body
    assert json.loads(got.body)["id"].startswith("evt_")
