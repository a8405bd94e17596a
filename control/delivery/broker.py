"""The Dramatiq broker for deliveries: Redis (its own database) by default, RabbitMQ for
`amqp://` / `amqps://` URLs.

Messages carry only delivery ids; retries are scheduled by the engine, not by Dramatiq, and a
reconciler re-sends whatever a lost message left overdue, so the broker is transport only.
Both brokers get the same middleware (Dramatiq's defaults plus AsyncIO): actors behave alike
on either. See docs/adr/0010-delivery-broker.md for why Redis is the default.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dramatiq import Broker
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import BrokerConnectionError
from dramatiq.middleware.asyncio import AsyncIO

from control.settings import ControlSettings

REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps")


class BrokerUnavailable(Exception):
    """The broker cannot be reached, or refused the connection; says which (no password)."""

    @classmethod
    def at(cls, url: str, exc: BaseException) -> BrokerUnavailable:
        return cls(f"cannot use the broker at {redacted(url)}: {_describe(exc)}")


def broker_url(settings: ControlSettings) -> str:
    """RICOCHET_BROKER_URL, else RICOCHET_REDIS_URL with the next database number."""
    if settings.broker_url:
        return settings.broker_url
    parts = urlsplit(settings.redis_url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(int(query.get("db", "0")) + 1)
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    db = parts.path.strip("/") or "0"
    return urlunsplit(parts._replace(path=f"/{int(db) + 1}"))


def redacted(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    out = []
    for one in url.split(";"):  # RabbitMQ takes several URLs, `;`-separated, for failover
        parts = urlsplit(one)
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        out.append(urlunsplit(parts))
    return ";".join(out)


def _describe(exc: BaseException) -> str:
    # Dramatiq wraps pika's error as its first argument; say what pika said.
    while isinstance(exc, BrokerConnectionError) and exc.args:
        if not isinstance(exc.args[0], BaseException):
            break
        exc = exc.args[0]
    # pika's connection errors often have an empty str(); their args say what happened.
    text = str(exc) or "; ".join(str(a) for a in exc.args) or repr(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"


def make_broker(settings: ControlSettings) -> Broker:
    url = broker_url(settings)
    scheme = urlsplit(url).scheme
    broker: Broker
    if scheme in AMQP_SCHEMES:
        # confirm_delivery: an enqueue returns only once RabbitMQ holds the message, so the
        # relay never counts an unpublished delivery as queued (the reconciler would still
        # catch it, 30 s late).
        broker = RabbitmqBroker(url=url, confirm_delivery=True)
        # pika logs every connection step at INFO, and failures with tracebacks that
        # Dramatiq's own retries or `check` already report in one line.
        logging.getLogger("pika").setLevel(logging.CRITICAL)
    elif scheme in REDIS_SCHEMES:
        broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
    else:
        raise BrokerUnavailable(
            f"RICOCHET_BROKER_URL {redacted(url)!r}: use a redis://, rediss://, unix://, "
            "amqp:// or amqps:// URL"
        )
    broker.add_middleware(AsyncIO())
    return broker


def check(broker: Broker, url: str) -> None:
    """Connect now and make sure the declared queues exist, so a wrong URL, bad credentials
    or an unreachable broker stop the process at start with one clear message (instead of a
    traceback per consumer thread, retried forever). Raises BrokerUnavailable."""
    try:
        if isinstance(broker, RedisBroker):
            broker.client.ping()
        elif isinstance(broker, RabbitmqBroker):
            for queue in sorted(broker.get_declared_queues()):
                broker.declare_queue(queue, ensure=True)
    except Exception as exc:  # redis, pika and socket errors alike: all mean "cannot use it"
        raise BrokerUnavailable.at(url, exc) from exc
