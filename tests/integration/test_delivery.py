"""Webhook delivery against real PostgreSQL and Redis and a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from control.db import session_factory
from control.delivery import actors, engine, fanout, guard
from control.delivery.broker import broker_url
from control.delivery.models import Delivery, DeliveryAttempt
from control.events import service as events
from control.events.envelope import parse_event_id
from control.relay.service import Relay
from control.settings import ControlSettings
from control.webhooks.models import WebhookEndpoint
from control.webhooks.secrets import encrypt
from control.workspaces.models import Workspace
from shared.signing import REASON_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.integration.conftest import Seed, resources, run

# -- a real receiver ---------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Records every request; answers from `script` in order, repeating the last reply."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.connections = 0
        self.script: list[Reply] = [Reply()]
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    n = len(receiver.requests)
                    reply = receiver.script[min(n, len(receiver.script)) - 1]
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                receiver.connections += 1
                super().process_request(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[Receiver]:
        """A receiver serving for the length of a `with` block."""
        receiver = cls()
        receiver.thread.start()
        try:
            yield receiver
        finally:
            receiver.server.shutdown()
            receiver.server.server_close()


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


# -- helpers ---------------------------------------------------------------------------


async def _endpoint(
    settings: ControlSettings,
    workspace_id: str,
    url: str,
    types: list[str],
    *,
    enabled: bool = True,
    secret: str = "whsec_current",  # noqa: S107
    previous: str | None = None,
) -> uuid.UUID:
    async with resources(settings) as (db, _), session_factory(db).begin() as session:
        ep = WebhookEndpoint(
            workspace_id=uuid.UUID(workspace_id),
            url=url,
            event_types=types,
            enabled=enabled,
            secret_encrypted=encrypt(settings, secret),
            previous_secret_encrypted=encrypt(settings, previous) if previous else None,
            previous_secret_expires_at=(
                dt.datetime.now(dt.UTC) + dt.timedelta(hours=1) if previous else None
            ),
        )
        session.add(ep)
        await session.flush()
        return ep.id


async def _emit(settings: ControlSettings, workspace_id: str, event_type: str) -> dict[str, Any]:
    async with resources(settings) as (db, _), session_factory(db).begin() as session:
        ws = await session.get(Workspace, uuid.UUID(workspace_id))
        assert ws is not None
        return await events.emit(session, ws.organization_id, ws.id, event_type, {"n": 1})


async def _fanout(settings: ControlSettings, event_id: str) -> list[uuid.UUID]:
    async with resources(settings) as (db, _), session_factory(db).begin() as session:
        eid = parse_event_id(event_id)
        assert eid is not None
        return await fanout.create_for_events(session, [eid])


async def _one_delivery(
    settings: ControlSettings, seed: Seed, url: str, **endpoint: Any
) -> uuid.UUID:
    await _endpoint(settings, seed.alice.workspace_id, url, ["link.created"], **endpoint)
    env = await _emit(settings, seed.alice.workspace_id, "link.created")
    (delivery_id,) = await _fanout(settings, env["id"])
    return delivery_id


async def _attempt(settings: ControlSettings, delivery_id: uuid.UUID) -> engine.AttemptOutcome:
    async with resources(settings) as (db, _), guard.client(settings) as http:
        return await engine.attempt(session_factory(db), http, settings, delivery_id)


async def _until_done(settings: ControlSettings, delivery_id: uuid.UUID) -> list[str]:
    """Attempt, sleeping until each scheduled retry, as the actor would."""
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


async def _state(
    settings: ControlSettings, delivery_id: uuid.UUID
) -> tuple[Delivery, list[DeliveryAttempt]]:
    async with resources(settings) as (db, _), session_factory(db)() as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
        tries = (
            await session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.number)
            )
        ).all()
        return delivery, list(tries)


# -- signing, outcomes and retries -------------------------------------------------------


def test_signed_envelope_succeeds_and_verifies_with_both_secrets_during_overlap(
    settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    delivery_id = run(_one_delivery(settings, seed, receiver.url(), previous="whsec_old"))
    outcome = run(_attempt(settings, delivery_id))
    delivery, tries = run(_state(settings, delivery_id))

    assert outcome.status == "succeeded"
    assert outcome.status_code == 200
    assert delivery.status == "succeeded"
    assert delivery.attempts == 1
    assert [(t.number, t.status_code, t.response_excerpt) for t in tries] == [(1, 200, "ok")]
    (got,) = receiver.requests
    assert got.body == delivery.body  # the stored bytes, exactly
    assert list(msgspec.json.decode(got.body))[:3] == ["id", "type", "api_version"]
    ts = int(got.headers[TIMESTAMP_HEADER.lower()])
    assert abs(ts - time.time()) < 10
    header = got.headers[SIGNATURE_HEADER.lower()]
    assert len(header.split()) == 2
    assert verify(header, "whsec_current", ts, got.body)
    assert verify(header, "whsec_old", ts, got.body)
    assert not verify(header, "whsec_other", ts, got.body)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "Ricochet-Webhooks/1"
    assert REASON_HEADER.lower() not in got.headers


def test_test_send_carries_the_reason_header(
    settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    async def go() -> uuid.UUID:
        endpoint_id = await _endpoint(settings, seed.alice.workspace_id, receiver.url(), [])
        async with resources(settings) as (db, _), session_factory(db).begin() as session:
            d = Delivery(
                workspace_id=uuid.UUID(seed.alice.workspace_id),
                endpoint_id=endpoint_id,
                event_id=uuid.uuid4(),
                event_type="nim.webhook.test",
                reason="test",
                body=b'{"type":"nim.webhook.test"}',
            )
            session.add(d)
            await session.flush()
            return d.id

    delivery_id = run(go())
    assert run(_attempt(settings, delivery_id)).status == "succeeded"
    (got,) = receiver.requests
    assert got.headers[REASON_HEADER.lower()] == "test"
    assert got.body == b'{"type":"nim.webhook.test"}'


def test_a_5xx_is_retried_then_succeeds(
    settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    receiver.script = [Reply(500, b"boom"), Reply(200)]
    delivery_id = run(_one_delivery(settings, seed, receiver.url()))
    assert run(_until_done(settings, delivery_id)) == ["retrying", "succeeded"]
    delivery, tries = run(_state(settings, delivery_id))
    assert delivery.status == "succeeded"
    assert delivery.attempts == 2
    assert [t.status_code for t in tries] == [500, 200]
    assert tries[0].response_excerpt == "boom"
    assert tries[0].error == "HTTP 500"
    assert len(receiver.requests) == 2
    # Same bytes, fresh signature each time.
    assert receiver.requests[0].body == receiver.requests[1].body


def test_a_410_fails_at_once(settings: ControlSettings, seed: Seed, receiver: Receiver) -> None:
    receiver.script = [Reply(410, b"gone")]
    delivery_id = run(_one_delivery(settings, seed, receiver.url()))
    assert run(_until_done(settings, delivery_id)) == ["failed"]
    delivery, tries = run(_state(settings, delivery_id))
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, 410)
    assert delivery.next_attempt_at is None
    assert len(tries) == 1
    assert len(receiver.requests) == 1


def test_always_503_is_dead_after_six_attempts(
    settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    receiver.script = [Reply(503)]
    delivery_id = run(_one_delivery(settings, seed, receiver.url()))
    assert run(_until_done(settings, delivery_id)) == ["retrying"] * 5 + ["dead"]
    delivery, tries = run(_state(settings, delivery_id))
    assert (delivery.status, delivery.attempts) == ("dead", 6)
    assert [t.number for t in tries] == [1, 2, 3, 4, 5, 6]
    assert len(receiver.requests) == 6


@pytest.mark.parametrize("status", [408, 409, 425, 429])
def test_listed_4xx_are_retried(
    settings: ControlSettings, seed: Seed, receiver: Receiver, status: int
) -> None:
    receiver.script = [Reply(status)]
    delivery_id = run(_one_delivery(settings, seed, receiver.url()))
    assert run(_attempt(settings, delivery_id)).status == "retrying"


def test_a_receiver_slower_than_the_read_timeout_is_retried(
    settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    receiver.script = [Reply(200, delay=1.5)]
    delivery_id = run(_one_delivery(settings, seed, receiver.url()))
    outcome = run(_attempt(settings, delivery_id))
    assert outcome.status == "retrying"
    assert outcome.status_code is None
    assert outcome.error is not None
    assert outcome.error.startswith("timeout")
    delivery, tries = run(_state(settings, delivery_id))
    assert delivery.status == "retrying"
    assert delivery.next_attempt_at is not None
    assert tries[0].status_code is None
    assert tries[0].error == outcome.error


def test_redirects_are_not_followed(
    settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    receiver.script = [Reply(302, b"", headers={"location": receiver.url("/elsewhere")})]
    delivery_id = run(_one_delivery(settings, seed, receiver.url()))
    outcome = run(_attempt(settings, delivery_id))
    assert (outcome.status, outcome.status_code) == ("failed", 302)
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_response_body_is_truncated(
    settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    receiver.script = [Reply(200, b"x" * 300_000)]
    delivery_id = run(_one_delivery(settings, seed, receiver.url()))
    assert run(_attempt(settings, delivery_id)).status == "succeeded"
    _, (attempt,) = run(_state(settings, delivery_id))
    assert attempt.response_excerpt == "x" * 1000

    small = msgspec.structs.replace(settings, delivery_max_response_bytes=4096)

    async def read() -> guard.Response:
        async with guard.client(small) as http:
            return await guard.post(http, small, receiver.url(), b"{}", {})

    assert len(run(read()).body) == 4096


def test_duplicate_attempts_do_not_double_send(
    settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    receiver.script = [Reply(200, delay=0.3)]
    delivery_id = run(_one_delivery(settings, seed, receiver.url()))

    async def both() -> list[str]:
        async with resources(settings) as (db, _), guard.client(settings) as http:
            sessions = session_factory(db)
            outcomes = await asyncio.gather(
                engine.attempt(sessions, http, settings, delivery_id),
                engine.attempt(sessions, http, settings, delivery_id),
            )
            again = await engine.attempt(sessions, http, settings, delivery_id)
            return sorted(o.status for o in [*outcomes, again])

    assert run(both()) == ["skipped", "skipped", "succeeded"]
    assert len(receiver.requests) == 1
    delivery, tries = run(_state(settings, delivery_id))
    assert delivery.attempts == 1
    assert len(tries) == 1


def test_a_disabled_endpoint_fails_the_delivery_without_sending(
    settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    delivery_id = run(_one_delivery(settings, seed, receiver.url()))

    async def disable() -> None:
        async with resources(settings) as (db, _), session_factory(db).begin() as session:
            await session.execute(update(WebhookEndpoint).values(enabled=False))

    run(disable())
    outcome = run(_attempt(settings, delivery_id))
    assert (outcome.status, outcome.error) == ("failed", "endpoint disabled")
    assert receiver.connections == 0


def test_a_secret_sealed_under_an_old_secret_key_fails_the_delivery_with_the_reason(
    settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    # Given a delivery whose endpoint secret was encrypted under another RICOCHET_SECRET_KEY
    delivery_id = run(_one_delivery(settings, seed, receiver.url()))
    rekeyed = msgspec.structs.replace(settings, secret_key="another-secret-key-" + "x" * 40)

    # When a worker configured with the new key attempts it
    outcome = run(_attempt(rekeyed, delivery_id))

    # Then it fails (no crash, no retry loop), says why, and sends nothing
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "cannot be decrypted" in outcome.error
    assert receiver.connections == 0


# -- SSRF guard --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",  # plain http: refused by scheme
        "https://127.0.0.1:{port}/hook",
        "https://localhost:{port}/hook",  # a name resolving to loopback
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:127.0.0.1]:{port}/hook",
        "https://10.1.2.3/hook",
        "ftp://example.com/hook",
    ],
)
def test_private_destinations_are_refused_without_a_connection(
    control_settings: ControlSettings, seed: Seed, receiver: Receiver, url: str
) -> None:
    strict = msgspec.structs.replace(control_settings, delivery_connect_timeout_s=1.0)
    assert strict.allow_private_destinations is False
    delivery_id = run(_one_delivery(strict, seed, url.format(port=receiver.port)))
    outcome = run(_attempt(strict, delivery_id))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.startswith("destination refused")
    assert receiver.connections == 0
    assert receiver.requests == []


def test_public_addresses_pass_the_address_check() -> None:
    assert not guard._forbidden("93.184.216.34")
    assert not guard._forbidden("2606:2800:220:1:248:1893:25c8:1946")
    for bad in ("127.0.0.1", "10.0.0.1", "192.168.1.1", "172.16.0.1", "169.254.169.254", "::1"):
        assert guard._forbidden(bad), bad
    for bad in ("0.0.0.0", "224.0.0.1", "fe80::1", "::ffff:10.0.0.1", "100.64.0.1", "240.0.0.1"):
        assert guard._forbidden(bad), bad


# -- fan-out, relay, worker and reconciler -------------------------------------------------


def test_fanout_creates_one_delivery_per_subscribed_enabled_endpoint(
    settings: ControlSettings, seed: Seed
) -> None:
    async def go() -> tuple[list[uuid.UUID], list[uuid.UUID], uuid.UUID]:
        a = seed.alice.workspace_id
        wanted = await _endpoint(settings, a, "https://a.example/1", ["link.created"])
        await _endpoint(settings, a, "https://a.example/2", ["link.updated"])
        await _endpoint(settings, a, "https://a.example/3", ["link.created"], enabled=False)
        await _endpoint(settings, seed.bob.workspace_id, "https://b.example/", ["link.created"])
        env = await _emit(settings, a, "link.created")
        return await _fanout(settings, env["id"]), await _fanout(settings, env["id"]), wanted

    first, again, wanted = run(go())
    assert len(first) == 1
    assert again == []
    delivery, tries = run(_state(settings, first[0]))
    assert delivery.endpoint_id == wanted
    assert tries == []
    assert (delivery.status, delivery.reason, delivery.attempts) == ("pending", "event", 0)
    assert msgspec.json.decode(delivery.body)["type"] == "link.created"


def test_relay_to_worker_end_to_end(
    api: TestClient, settings: ControlSettings, seed: Seed, receiver: Receiver
) -> None:
    from dramatiq import Worker
    from dramatiq.brokers.stub import StubBroker

    run(_endpoint(settings, seed.alice.workspace_id, receiver.url(), ["link.created"]))
    broker = actors.configure(settings, StubBroker())
    broker.emit_after("process_boot")
    try:
        response = api.post(
            "/api/v1/links",
            json={"destination": "a.example/x", "slug": "hooked"},
            headers=seed.alice.auth,
        )
        assert response.status_code == 201, response.text

        async def drain() -> None:
            async with resources(settings) as (db, redis):
                await Relay(settings, db, redis).drain()

        run(drain())
        assert broker.queues[actors.QUEUE].qsize() == 1
        worker = Worker(broker, worker_threads=1)
        worker.start()
        try:
            broker.join(actors.QUEUE, timeout=10_000)
        finally:
            worker.stop()
    finally:
        actors._actor = actors._runtime = None

    (got,) = receiver.requests
    envelope = msgspec.json.decode(got.body)
    assert envelope["type"] == "link.created"
    assert envelope["workspace_id"] == seed.alice.workspace_id
    assert response.json()["id"] in got.body.decode()
    ts = int(got.headers[TIMESTAMP_HEADER.lower()])
    assert verify(got.headers[SIGNATURE_HEADER.lower()], "whsec_current", ts, got.body)


def test_reconciler_reenqueues_overdue_deliveries(settings: ControlSettings, seed: Seed) -> None:
    async def go() -> tuple[list[uuid.UUID], list[uuid.UUID], list[uuid.UUID], list[Any]]:
        a = seed.alice.workspace_id
        await _endpoint(settings, a, "https://a.example/1", ["link.created"])
        overdue = await _fanout(settings, (await _emit(settings, a, "link.created"))["id"])
        fresh = await _fanout(settings, (await _emit(settings, a, "link.created"))["id"])
        async with resources(settings) as (db, _):
            sessions = session_factory(db)
            async with sessions.begin() as session:
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(overdue))
                    .values(next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60))
                )
            sent: list[Any] = []
            first = await engine.reconcile(sessions, sent.extend)
            second = await engine.reconcile(sessions, sent.extend)
        assert fresh
        return overdue, first, second, sent

    overdue, first, second, sent = run(go())
    assert first == overdue
    assert sent == overdue
    assert second == []  # moved to now: not overdue again for another 30 s


def test_broker_url_defaults_to_the_next_redis_database(
    control_settings: ControlSettings,
) -> None:
    def url(redis_url: str, broker: str | None = None) -> str:
        return broker_url(
            msgspec.structs.replace(control_settings, redis_url=redis_url, broker_url=broker)
        )

    assert url("redis://h:6379/3") == "redis://h:6379/4"
    assert url("redis://h:6379") == "redis://h:6379/1"
    assert url("unix:///tmp/r.sock?db=2") == "unix:///tmp/r.sock?db=3"
    assert url("redis://h/0", "redis://q:1/5") == "redis://q:1/5"


def test_worker_command_delivers_through_the_redis_broker(
    settings: ControlSettings, seed: Seed, receiver: Receiver, tmp_path: Any
) -> None:
    """`ricochet worker` as a process, on a real Redis broker: first attempt and a retry
    scheduled with a delay (500, then 200)."""
    import os
    import signal
    import subprocess
    import sys

    import redis as sync_redis

    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    base = settings.redis_url.rsplit("/", 1)[0]
    broker_db = f"{base}/{15 - index}"  # clear of the per-worker test databases
    with sync_redis.Redis.from_url(broker_db) as client:
        client.flushdb()
    cfg = msgspec.structs.replace(settings, broker_url=broker_db)
    receiver.script = [Reply(500), Reply(200)]
    delivery_id = run(_one_delivery(cfg, seed, receiver.url()))

    ready = tmp_path / "worker.ready"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "RICOCHET_DATABASE_URL": cfg.database_url,
        "RICOCHET_REDIS_URL": cfg.redis_url,
        "RICOCHET_SECRET_KEY": cfg.secret_key,
        "RICOCHET_BROKER_URL": broker_db,
        "RICOCHET_ALLOW_PRIVATE_DESTINATIONS": "true",
        "RICOCHET_DELIVERY_SCHEDULE_S": "0.2,0.2,0.2,0.2,0.2",
    }
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ricochet",
                "worker",
                "--threads",
                "2",
                "--ready-file",
                str(ready),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "worker not ready"
            time.sleep(0.05)
        actors.configure(cfg)
        actors.enqueue([delivery_id])
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        while run(_state(cfg, delivery_id))[0].status != "succeeded":
            assert time.monotonic() < deadline, "delivery did not succeed"
            time.sleep(0.05)
    finally:
        actors._actor = actors._runtime = None
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0
    delivery, tries = run(_state(cfg, delivery_id))
    assert [t.status_code for t in tries] == [500, 200]
    assert delivery.attempts == 2
