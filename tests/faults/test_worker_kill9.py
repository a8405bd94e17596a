"""A delivery worker killed with -9 in the middle of a delivery: after a restart the delivery
completes (seed 002: a duplicate is allowed, a loss is not).

Real processes: `ricochet worker` (killed and started again) and `ricochet relay`, whose
reconciler re-sends deliveries left overdue; a loopback receiver holds the first request
open so the kill lands while the worker waits for the answer. The dead worker's claim on
the delivery must run out (its lease) before anyone sends it again — a live worker may
still be waiting on a slow receiver — so the recovery time is bounded by the lease plus the
reconciler's grace and period, all shortened here by settings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import msgspec
import pika
import pytest
import redis as sync_redis

from control.delivery import actors, guard
from control.settings import ControlSettings
from tests.integration.conftest import _make_tenant, run
from tests.integration.test_delivery import Receiver, Reply, _emit, _endpoint, _fanout, _state

AMQP_URL = os.environ.get("RICOCHET_TEST_AMQP_URL", "")
HOLD_S = 60.0  # the first request is answered only after this: the kill lands long before
RECONCILE_S = 1.0
LEASE_MARGIN_S = 1.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver.running() as r:
        yield r


def _redis_broker(settings: ControlSettings) -> Iterator[str]:
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    url = f"{settings.redis_url.rsplit('/', 1)[0]}/{15 - index}"  # clear of the test dbs
    with sync_redis.Redis.from_url(url) as client:
        client.flushdb()
    yield url


def _rabbitmq_broker(queue: str) -> Iterator[str]:
    if not AMQP_URL:
        pytest.skip("RICOCHET_TEST_AMQP_URL is not set: no RabbitMQ server to test against")
    yield AMQP_URL
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
    finally:
        connection.close()


@pytest.fixture(params=["redis", "rabbitmq"])
def settings(
    request: pytest.FixtureRequest, control_settings: ControlSettings
) -> Iterator[ControlSettings]:
    queue = f"deliveries-kill9-{uuid.uuid4().hex[:8]}"
    brokers = {
        "redis": lambda: _redis_broker(control_settings),
        "rabbitmq": lambda: _rabbitmq_broker(queue),
    }
    for url in brokers[request.param]():
        yield msgspec.structs.replace(
            control_settings,
            broker_url=url,
            delivery_queue=queue,
            allow_private_destinations=True,
            delivery_schedule_s="0.5,0.5,0.5,0.5,0.5",
            delivery_connect_timeout_s=1.0,
            delivery_read_timeout_s=1.5,
            delivery_lease_margin_s=LEASE_MARGIN_S,
            delivery_reconcile_s=RECONCILE_S,
        )


def _env(settings: ControlSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RICOCHET_")}
    for name in (
        "database_url",
        "redis_url",
        "secret_key",
        "broker_url",
        "delivery_queue",
        "allow_private_destinations",
        "delivery_schedule_s",
        "delivery_connect_timeout_s",
        "delivery_read_timeout_s",
        "delivery_lease_margin_s",
        "delivery_reconcile_s",
        "relay_poll_s",
    ):
        value = getattr(settings, name)
        env[f"RICOCHET_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


def _start(command: str, env: dict[str, str], tmp_path: Path, n: int) -> subprocess.Popen[bytes]:
    ready = tmp_path / f"{command}-{n}.ready"
    log = tmp_path / f"{command}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ricochet", command, "--ready-file", str(ready)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{command} not ready: {log.read_text()[-3000:]}"
        time.sleep(0.02)
    return proc


def test_a_worker_killed_mid_delivery_is_replaced_and_the_delivery_completes(
    settings: ControlSettings, receiver: Receiver, tmp_path: Path
) -> None:
    # Given a receiver that holds the first request open and accepts the next at once
    receiver.script = [Reply(200, delay=HOLD_S), Reply(200)]
    tenant = run(_make_tenant(settings, "kill9"))

    async def delivery() -> uuid.UUID:
        await _endpoint(settings, tenant.workspace_id, receiver.url(), ["link.created"])
        envelope = await _emit(settings, tenant.workspace_id, "link.created")
        (delivery_id,) = await _fanout(settings, envelope["id"])
        return delivery_id

    delivery_id = run(delivery())
    env = _env(settings)
    procs = [_start("relay", env, tmp_path, 1), _start("worker", env, tmp_path, 1)]
    broker: dramatiq.Broker | None = None
    try:
        # And a worker in the middle of delivering it (the receiver holds the request)
        broker = actors.configure(settings)
        actors.enqueue([delivery_id])
        deadline = time.monotonic() + 20
        while not receiver.requests:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.01)

        # When the worker is killed with -9 mid-delivery
        procs[1].kill()
        procs[1].wait(10)
        killed_at = time.monotonic()
        in_flight, tries = run(_state(settings, delivery_id))
        assert (in_flight.status, in_flight.attempts, tries) == ("pending", 0, [])

        # And a worker is started again
        procs.append(_start("worker", env, tmp_path, 2))

        # Then the delivery is sent again and succeeds
        bound = (
            guard.attempt_deadline_s(settings) + LEASE_MARGIN_S + 2 * RECONCILE_S + 15
        )  # the lease, the reconciler's grace and period, and start-up slack
        while run(_state(settings, delivery_id))[0].status != "succeeded":
            assert time.monotonic() - killed_at < bound, (
                f"not recovered in {bound:.0f} s\n{(tmp_path / 'worker.log').read_text()[-3000:]}"
                f"\n{(tmp_path / 'relay.log').read_text()[-3000:]}"
            )
            time.sleep(0.05)
        recovered_s = time.monotonic() - killed_at
    finally:
        actors._actor = actors._runtime = None
        if broker is not None:
            broker.close()  # its connections, or they leak into later tests
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    delivery, tries = run(_state(settings, delivery_id))
    # One recorded attempt (the killed one never finished), the same bytes both times: the
    # receiver saw a duplicate, which it dedupes on the event id; nothing was lost
    assert [(t.number, t.status_code) for t in tries] == [(1, 200)]
    assert delivery.attempts == 1
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body == delivery.body
    print(f"recovered {recovered_s:.1f} s after the kill")
