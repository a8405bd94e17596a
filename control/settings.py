"""Control-plane settings: one frozen object per process, read once at start."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from shared.settings import load_settings


class ControlSettings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    redis_url: str
    # Pepper for API-key HMACs and signed cookies. Changing it invalidates every API key.
    secret_key: str
    control_host: str = "127.0.0.1"
    control_port: int = 8401
    control_workers: int = 1
    default_domain: str = "localhost"
    short_url_scheme: str = "https"
    short_url_port: int | None = None
    click_shards: int = 4
    db_pool_size: int = 10
    rate_limit_per_minute: int = 600  # per API key; 0 turns limits off
    ingest_batch: int = 10  # stream entries per read and shard; each carries up to ~1,000 clicks
    ingest_block_ms: int = 1000
    # At a steady rate a read brings a few small entries: keep reading for up to this long
    # (0: never) until a batch holds `ingest_batch_clicks`, so one transaction stores
    # hundreds of clicks instead of one entry's (docs/adr/0012-ingest-adaptive-batching.md).
    # It adds at most this much to the lag (budget: p99 <= 2 s).
    ingest_linger_ms: int = 250
    # A batch's worth: lingering stops at this many clicks, and a bigger read (a backlog)
    # is stored in transactions of about this many.
    ingest_batch_clicks: int = 20_000
    # An entry delivered more often than this (failing each time on its content) is moved
    # to the dead stream `clicks:dead` instead of being retried forever.
    ingest_max_deliveries: int = 5
    # Serve ingest's Prometheus metrics (throughput, duplicates, lag) on this port; 0: off.
    ingest_metrics_port: int = 0
    ingest_metrics_host: str = "127.0.0.1"
    # Raw clicks older than this many days are dropped, a daily partition at a time; the
    # hourly and per-link totals stay. 0 keeps every click.
    click_retention_days: int = 400
    # Stored events (GET /api/v1/events) older than this many days are deleted by the relay;
    # deliveries keep the bytes they sent, so replay is unaffected. 0 keeps every event.
    event_retention_days: int = 90
    relay_batch: int = 500
    relay_poll_s: float = 1.0  # fallback poll; LISTEN/NOTIFY wakes the relay at once
    log_level: str = "info"
    # Event delivery (webhooks). Delays before attempts 2..6, in seconds (seed 002).
    delivery_schedule_s: str = "60,120,240,480,900"
    delivery_connect_timeout_s: float = 3.0
    delivery_read_timeout_s: float = 10.0
    delivery_max_response_bytes: int = 65_536
    # In-flight requests per endpoint (or destination) per worker process: a slow receiver
    # holds at most this many of a process's threads x batch concurrent attempts.
    delivery_endpoint_concurrency: int = 32
    # Delivery ids per broker message: a worker thread attempts them concurrently, and their
    # claims and records share statements (docs/adr/0011-batched-delivery.md).
    delivery_batch: int = 50
    # Refuse private, loopback and link-local receivers unless this is on (tests, dev).
    allow_private_destinations: bool = False
    # Dramatiq broker: its own Redis database (default: RICOCHET_REDIS_URL's db + 1), or
    # RabbitMQ with an amqp:// URL.
    broker_url: str | None = None
    # The Dramatiq queue of deliveries; distinct names let deployments share one broker.
    delivery_queue: str = "deliveries"
    # PEM file of the CAs trusted for https receivers instead of the system's (tests, private
    # PKI); the address checks apply all the same.
    delivery_ca_bundle: str | None = None
    # An attempt's claim on a delivery lasts its timeouts plus this margin; a worker that
    # dies mid-attempt leaves the delivery to others once the claim runs out.
    delivery_lease_margin_s: float = 30.0
    # The relay's reconciler runs this often and re-sends deliveries overdue by this much
    # (a lost broker message, a dead worker's expired claim).
    delivery_reconcile_s: float = 30.0
    webhook_secret_overlap_s: int = 86_400  # both secrets sign for this long after a rotation
    # Bearer token of GET /internal/v1/resolve (the edge's miss fill); unset: no such route.
    internal_token: str | None = None
    # Conversion API (seed 004). How far X-Nim-Timestamp may be from our clock, either way.
    conversion_timestamp_tolerance_s: int = 300
    conversion_secret_overlap_s: int = 86_400  # the previous secret is accepted this long
    # How long an outcome waits for its click to be stored (ingest lag, an outage), counted
    # from the click's time; after that it is settled as unattributed (click_not_found).
    conversion_pending_s: int = 86_400
    # How often each control process settles pending attributions; 0: never (tests).
    conversion_settle_poll_s: float = 2.0

    def validate(self) -> list[str]:
        problems = []
        if not self.database_url.startswith(
            ("postgresql://", "postgres://", "postgresql+psycopg://")
        ):
            problems.append("RICOCHET_DATABASE_URL must be a postgresql:// URL")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("RICOCHET_REDIS_URL must be a redis:// URL")
        if len(self.secret_key) < 32:
            problems.append("RICOCHET_SECRET_KEY must be at least 32 characters")
        if self.short_url_scheme not in ("http", "https"):
            problems.append("RICOCHET_SHORT_URL_SCHEME must be http or https")
        if not 1 <= self.click_shards <= 256:
            problems.append("RICOCHET_CLICK_SHARDS must be between 1 and 256")
        if self.ingest_max_deliveries < 1:
            problems.append("RICOCHET_INGEST_MAX_DELIVERIES must be at least 1")
        if not 0 <= self.ingest_linger_ms <= 1000:
            problems.append("RICOCHET_INGEST_LINGER_MS must be between 0 and 1000")
        if self.ingest_batch_clicks < 1:
            problems.append("RICOCHET_INGEST_BATCH_CLICKS must be at least 1")
        if self.click_retention_days < 0:
            problems.append("RICOCHET_CLICK_RETENTION_DAYS must be 0 (keep all) or more")
        if self.broker_url and not self.broker_url.startswith(
            ("redis://", "rediss://", "unix://", "amqp://", "amqps://")
        ):
            problems.append("RICOCHET_BROKER_URL must be a redis:// or amqp:// URL")
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9._-]*", self.delivery_queue):
            problems.append("RICOCHET_DELIVERY_QUEUE: letters, digits, '.', '_' and '-' only")
        if not 1 <= self.delivery_batch <= 1000:
            problems.append("RICOCHET_DELIVERY_BATCH must be between 1 and 1000")
        if self.delivery_reconcile_s <= 0 or self.delivery_lease_margin_s < 0:
            problems.append(
                "RICOCHET_DELIVERY_RECONCILE_S must be positive, "
                "RICOCHET_DELIVERY_LEASE_MARGIN_S not negative"
            )
        if self.delivery_ca_bundle and not Path(self.delivery_ca_bundle).is_file():
            problems.append(
                f"RICOCHET_DELIVERY_CA_BUNDLE: no such file {self.delivery_ca_bundle!r}"
            )
        if self.internal_token is not None and len(self.internal_token) < 32:
            problems.append("RICOCHET_INTERNAL_TOKEN must be at least 32 characters")
        if self.conversion_timestamp_tolerance_s < 1:
            problems.append("RICOCHET_CONVERSION_TIMESTAMP_TOLERANCE_S must be at least 1")
        if self.conversion_pending_s < 0 or self.conversion_settle_poll_s < 0:
            problems.append("RICOCHET_CONVERSION_PENDING_S and _SETTLE_POLL_S must not be negative")
        return problems

    @property
    def sqlalchemy_url(self) -> str:
        _, _, rest = self.database_url.partition("://")
        return f"postgresql+psycopg://{rest}"

    @property
    def libpq_url(self) -> str:
        _, _, rest = self.database_url.partition("://")
        return f"postgresql://{rest}"


def load() -> ControlSettings:
    return load_settings(ControlSettings)
