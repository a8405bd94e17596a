"""Deliveries through RabbitMQ (RICOCHET_BROKER_URL=amqp://…).

The tests that need a server run only when RICOCHET_TEST_AMQP_URL names one, e.g.
`RICOCHET_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ ./dev test tests/integration/
test_broker_rabbitmq.py`. RabbitMQ's guest user may only use the default vhost, so each test
gets its own queue name (RICOCHET_DELIVERY_QUEUE) and deletes its queues afterwards:
parallel runs and xdist workers never share a queue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import msgspec
import pika
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.asyncio import AsyncIO

from control.delivery import actors
from control.delivery.broker import BrokerUnavailable, check, make_broker, redacted
from control.settings import ControlSettings
from tests.integration.conftest import Seed, run
from tests.integration.test_delivery import Receiver, Reply, _one_delivery, _state

AMQP_URL = os.environ.get("RICOCHET_TEST_AMQP_URL", "")
needs_rabbitmq = pytest.mark.skipif(
    not AMQP_URL,
    reason="RICOCHET_TEST_AMQP_URL is not set: no RabbitMQ server to test against "
    "(e.g. RICOCHET_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/)",
)


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue name of this test's own; its queues are deleted afterwards."""
    name = f"deliveries-test-{uuid.uuid4().hex[:12]}"
    yield name
    if AMQP_URL:
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            channel = connection.channel()
            for each in (name, f"{name}.DQ", f"{name}.XQ"):
                channel.queue_delete(each)
        finally:
            connection.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver.running() as r:
        yield r


@pytest.fixture
def settings(control_settings: ControlSettings, queue: str) -> ControlSettings:
    return msgspec.structs.replace(
        control_settings,
        broker_url=AMQP_URL or "amqp://guest:guest@127.0.0.1:5672/",
        delivery_queue=queue,
        allow_private_destinations=True,
        delivery_schedule_s="0.5,0.5,0.5,0.5,0.5",
        delivery_connect_timeout_s=1.0,
        delivery_read_timeout_s=2.0,
    )


@pytest.fixture
def configured(settings: ControlSettings) -> Iterator[RabbitmqBroker]:
    broker = actors.configure(settings)
    assert isinstance(broker, RabbitmqBroker)
    try:
        yield broker
    finally:
        broker.close()
        actors._actor = actors._runtime = None


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or 'guest'}:{password}@{host}"))


def _worker_env(settings: ControlSettings, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RICOCHET_")}
    env.update(
        {
            "RICOCHET_DATABASE_URL": settings.database_url,
            "RICOCHET_REDIS_URL": settings.redis_url,
            "RICOCHET_SECRET_KEY": settings.secret_key,
            "RICOCHET_BROKER_URL": settings.broker_url or "",
            "RICOCHET_DELIVERY_QUEUE": settings.delivery_queue,
            "RICOCHET_ALLOW_PRIVATE_DESTINATIONS": "true",
            "RICOCHET_DELIVERY_SCHEDULE_S": settings.delivery_schedule_s,
            **more,
        }
    )
    return env


# -- without a server ----------------------------------------------------------------------


def test_an_amqp_url_selects_rabbitmq_with_the_same_middleware_as_redis(
    settings: ControlSettings,
) -> None:
    # Given the same settings, one with an amqp:// broker URL and one with a redis:// one
    rabbit = make_broker(settings)
    redis = make_broker(msgspec.structs.replace(settings, broker_url="redis://127.0.0.1:1/3"))

    # Then the amqp URL makes a RabbitMQ broker that publishes with confirmation...
    assert isinstance(rabbit, RabbitmqBroker)
    assert rabbit.confirm_delivery is True
    assert isinstance(redis, RedisBroker)
    # ... and both carry the same middleware, AsyncIO included (async actors need it)
    assert [type(m) for m in rabbit.middleware] == [type(m) for m in redis.middleware]
    assert any(isinstance(m, AsyncIO) for m in rabbit.middleware)


def test_an_unknown_broker_scheme_is_refused_by_the_settings(
    control_settings: ControlSettings,
) -> None:
    bad = msgspec.structs.replace(control_settings, broker_url="kafka://h:9092")
    assert "RICOCHET_BROKER_URL must be a redis:// or amqp:// URL" in bad.validate()
    with pytest.raises(BrokerUnavailable, match="use a redis://"):
        make_broker(bad)


def test_broker_urls_are_shown_without_their_password() -> None:
    assert redacted("amqp://guest:s3cret@h:5672/v") == "amqp://guest:***@h:5672/v"
    assert redacted("amqp://u:p@a/;amqp://u:q@b/") == "amqp://u:***@a/;amqp://u:***@b/"
    assert redacted("redis://:pw@h:6379/2") == "redis://:***@h:6379/2"
    assert redacted("redis://h:6379/2") == "redis://h:6379/2"


def test_an_unreachable_rabbitmq_stops_the_check_with_a_clear_error(
    settings: ControlSettings,
) -> None:
    # Given a broker URL where nothing listens (port 1)
    url = "amqp://guest:s3cret@127.0.0.1:1/"
    broker = make_broker(msgspec.structs.replace(settings, broker_url=url))
    broker.declare_queue("deliveries-unreachable")

    # When it is checked, Then one error names the URL (not the password) and the cause
    with pytest.raises(BrokerUnavailable) as caught:
        check(broker, url)
    message = str(caught.value)
    assert message.startswith("cannot use the broker at amqp://guest:***@127.0.0.1:1/: ")
    assert "Connection refused" in message
    assert "s3cret" not in message


# -- against a RabbitMQ server -------------------------------------------------------------


@needs_rabbitmq
def test_a_delivery_message_carries_only_the_delivery_id(
    settings: ControlSettings, configured: RabbitmqBroker, queue: str
) -> None:
    # Given a delivery id, When it is enqueued now and with a delay
    delivery_id = uuid.uuid4()
    actors.enqueue([delivery_id])
    actors.enqueue([delivery_id], delay_ms=60_000)

    # Then RabbitMQ holds one message on the queue and one on its delay queue (.DQ), and
    # each carries the id as its only argument: no payload, URL or secret travels
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        bodies = {}
        for name in (queue, f"{queue}.DQ"):
            method, properties, body = channel.basic_get(name, auto_ack=True)
            assert method is not None, f"nothing on {name}"
            assert properties.delivery_mode == 2  # persistent: survives a broker restart
            bodies[name] = msgspec.json.decode(body)
    finally:
        connection.close()
    for message in bodies.values():
        assert message["actor_name"] == actors.ACTOR
        assert message["args"] == [str(delivery_id)]
        assert message["kwargs"] == {}
        assert set(message["options"]) <= {"eta", "max_retries"}
    assert "eta" in bodies[f"{queue}.DQ"]["options"]


@needs_rabbitmq
def test_worker_command_delivers_through_rabbitmq(
    settings: ControlSettings,
    configured: RabbitmqBroker,
    seed: Seed,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """`ricochet worker` as a process on RabbitMQ: the first attempt (500) and the retry,
    scheduled with a delay through the delay queue, which succeeds (200)."""
    # Given a receiver that fails once, then accepts, and a delivery to it
    receiver.script = [Reply(500), Reply(200)]
    delivery_id = run(_one_delivery(settings, seed, receiver.url()))

    # And a worker process on the RabbitMQ broker
    ready = tmp_path / "worker.ready"
    log = tmp_path / "worker.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ricochet", "worker", "--threads", "2", "--ready-file", ready],
            env=_worker_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "worker not ready"
            time.sleep(0.05)

        # When the delivery is enqueued (as the relay does)
        actors.enqueue([delivery_id])

        # Then it is attempted, retried after the scheduled delay, and succeeds
        while run(_state(settings, delivery_id))[0].status != "succeeded":
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"delivery did not succeed\n{log.read_text()}"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()
    delivery, tries = run(_state(settings, delivery_id))
    assert [t.status_code for t in tries] == [500, 200]
    assert delivery.attempts == 2
    assert len(receiver.requests) == 2
    gap = (tries[1].attempted_at - tries[0].attempted_at).total_seconds()
    assert gap >= 0.5 - 0.05  # the retry waited for its slot in the schedule
    # Nothing was left behind: no message on the queue, the delay queue or dead-lettered
    assert configured.get_queue_message_counts(settings.delivery_queue) == (0, 0, 0)


@needs_rabbitmq
@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (lambda url: _with_password(url, "wrong-password"), "ACCESS_REFUSED"),
        (lambda url: url.rstrip("/") + "/no-such-vhost", "vhost no-such-vhost not found"),
    ],
    ids=["bad credentials", "unknown vhost"],
)
def test_worker_command_refused_by_rabbitmq_exits_with_a_clear_message(
    settings: ControlSettings, tmp_path: Path, broken: object, expected: str
) -> None:
    # Given a RabbitMQ URL the server refuses
    assert callable(broken)
    url = broken(AMQP_URL)
    env = _worker_env(settings, RICOCHET_BROKER_URL=url)

    # When the worker starts
    done = subprocess.run(
        [sys.executable, "-m", "ricochet", "worker", "--ready-file", str(tmp_path / "ready")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then it exits at once with one line naming the broker (password hidden) and the cause
    assert done.returncode == 1, done.stderr
    assert not (tmp_path / "ready").exists()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ricochet worker: cannot use the broker at {redacted(url)}: ")
    assert expected in last
    assert "Traceback" not in done.stderr
    assert "wrong-password" not in done.stderr
