"""Edge settings: read once per worker at start; the edge needs no database."""

from __future__ import annotations

import msgspec

from shared.settings import load_settings


class EdgeSettings(msgspec.Struct, frozen=True, kw_only=True):
    redis_url: str
    edge_host: str = "127.0.0.1"
    edge_port: int = 8400
    edge_workers: int = 1
    default_domain: str = "localhost"
    # Answer requests for hosts we do not know as if they came to the default domain.
    # Handy in development (127.0.0.1, container names); off in production.
    fallback_to_default_domain: bool = False
    click_shards: int = 4
    cache_size: int = 100_000
    cache_ttl_s: float = 30.0  # safety net: invalidation messages normally evict sooner
    negative_ttl_s: float = 2.0
    capture: bool = True
    capture_batch: int = 1024
    capture_flush_ms: int = 50
    capture_buffer: int = 200_000
    # Where clicks go while Redis is unreachable; replayed when it returns.
    spool_dir: str = ".ricochet/spool"
    # Misses in Redis are filled from the control plane (GET /internal/v1/resolve).
    control_url: str | None = None
    internal_token: str | None = None
    resolve_timeout_s: float = 1.0
    # Signs the cookie that remembers a solved link password (and visitor ids).
    edge_secret: str | None = None
    password_attempts: int = 10  # per visitor IP and link, per 10 minutes
    # Trusted CDN header carrying the visitor's country (e.g. cf-ipcountry).
    country_header: str | None = None
    # How many reverse proxies in front of the edge append to X-Forwarded-For (0: none).
    trusted_proxy_hops: int = 0
    metrics_dir: str | None = None  # set by `ricochet edge` for multi-process metrics

    def validate(self) -> list[str]:
        problems = []
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("RICOCHET_REDIS_URL must be a redis:// URL")
        if not 1 <= self.click_shards <= 256:
            problems.append("RICOCHET_CLICK_SHARDS must be between 1 and 256")
        if self.cache_size < 1:
            problems.append("RICOCHET_CACHE_SIZE must be positive")
        if self.control_url and not self.internal_token:
            problems.append("RICOCHET_INTERNAL_TOKEN is required with RICOCHET_CONTROL_URL")
        if self.edge_secret is not None and len(self.edge_secret) < 32:
            problems.append("RICOCHET_EDGE_SECRET must be at least 32 characters")
        if self.trusted_proxy_hops < 0:
            problems.append("RICOCHET_TRUSTED_PROXY_HOPS must be 0 or more")
        return problems


def load() -> EdgeSettings:
    return load_settings(EdgeSettings)
