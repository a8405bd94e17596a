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
    capture_batch: int = 256
    capture_flush_ms: int = 50
    capture_buffer: int = 200_000

    def validate(self) -> list[str]:
        problems = []
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("RICOCHET_REDIS_URL must be a redis:// URL")
        if not 1 <= self.click_shards <= 256:
            problems.append("RICOCHET_CLICK_SHARDS must be between 1 and 256")
        if self.cache_size < 1:
            problems.append("RICOCHET_CACHE_SIZE must be positive")
        return problems


def load() -> EdgeSettings:
    return load_settings(EdgeSettings)
