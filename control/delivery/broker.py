"""The Dramatiq broker for deliveries: Redis (its own database) by default.

Messages carry only delivery ids; retries are scheduled by the engine, not by Dramatiq.
RabbitMQ (`amqp://`) is not supported in this version: pika is not a dependency.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.asyncio import AsyncIO

from control.settings import ControlSettings


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


def make_broker(settings: ControlSettings) -> Broker:
    url = broker_url(settings)
    if url.startswith(("amqp://", "amqps://")):
        raise RuntimeError(
            "RICOCHET_BROKER_URL: RabbitMQ is not supported in this version; use a redis:// URL"
        )
    broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
    broker.add_middleware(AsyncIO())
    return broker
