"""Edge settings: read once per worker at start; the edge needs no database."""

from __future__ import annotations

import msgspec

from edge.visitor import parse_networks
from shared.hosts import normalise_host, valid_host
from shared.settings import load_settings

# Settings that are gone but still read, so a deployment setting one stops at start, told
# what replaced it, instead of silently behaving differently.
_RETIRED = {
    "fallback_to_default_domain": "RICOCHET_FALLBACK_TO_DEFAULT_DOMAIN is replaced by "
    "RICOCHET_DEFAULT_DOMAIN_ALIASES (the other names of the default domain, e.g. "
    "127.0.0.1,localhost)",
    "trusted_proxy_hops": "RICOCHET_TRUSTED_PROXY_HOPS is replaced by RICOCHET_TRUSTED_PROXIES"
    " (the CIDRs of your proxies)",
}


class EdgeSettings(msgspec.Struct, frozen=True, kw_only=True):
    redis_url: str
    edge_host: str = "127.0.0.1"
    edge_port: int = 8400
    edge_workers: int = 1
    default_domain: str = "localhost"
    # Other names of the default domain, comma-separated ("127.0.0.1,localhost" in `ricochet
    # up`): requests naming them get the default domain's links. Any other Host the edge does
    # not serve answers 404, so pointing a domain at the edge republishes nothing.
    default_domain_aliases: str = ""
    # Retired (it served every unknown Host as the default domain): still read, so a
    # deployment setting it fails at start instead of silently changing behaviour.
    fallback_to_default_domain: bool = False
    click_shards: int = 4
    cache_size: int = 100_000
    cache_ttl_s: float = 30.0  # safety net: invalidation messages normally evict sooner
    # "No such link" from the control plane; a miss while the projection is complete is
    # cached for cache_ttl_s (an invalidation evicts it the moment the link appears).
    negative_ttl_s: float = 2.0
    negative_cache_size: int = 20_000  # its own table: a scan never evicts hot links
    # Per worker, while Redis misses are not authoritative (ADR 0013): control-plane look-ups
    # a second and at once; past them a miss answers 503 instead of reaching PostgreSQL.
    control_lookups_per_s: float = 20.0
    control_lookup_concurrency: int = 4
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
    password_attempts: int = 10  # per visitor IP and link per 10 minutes (x 4 per IPv6 /64)
    # Trusted CDN header carrying the visitor's country (e.g. cf-ipcountry).
    country_header: str | None = None
    # CIDRs of the reverse proxies in front of the edge, comma-separated ("10.0.0.0/8,
    # 2001:db8::/32"): only from a peer inside them are X-Forwarded-For/-Proto believed.
    trusted_proxies: str = ""
    # Retired (a hop count trusted any peer): still read, so a deployment setting it fails at
    # start instead of silently taking its proxy for every visitor.
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
        if self.negative_cache_size < 1:
            problems.append("RICOCHET_NEGATIVE_CACHE_SIZE must be positive")
        if self.control_lookups_per_s <= 0:
            problems.append("RICOCHET_CONTROL_LOOKUPS_PER_S must be positive")
        if self.control_lookup_concurrency < 1:
            problems.append("RICOCHET_CONTROL_LOOKUP_CONCURRENCY must be 1 or more")
        problems += [message for name, message in _RETIRED.items() if getattr(self, name)]
        problems += [
            f"RICOCHET_DEFAULT_DOMAIN_ALIASES: {name!r} is not a host name"
            for name in self.aliases()
            if not valid_host(name)
        ]
        if self.control_url and not self.internal_token:
            problems.append("RICOCHET_INTERNAL_TOKEN is required with RICOCHET_CONTROL_URL")
        if self.edge_secret is not None and len(self.edge_secret) < 32:
            problems.append("RICOCHET_EDGE_SECRET must be at least 32 characters")
        if self.password_attempts < 1:
            problems.append("RICOCHET_PASSWORD_ATTEMPTS must be 1 or more")
        problems += parse_networks(self.trusted_proxies)[1]
        return problems

    def aliases(self) -> list[str]:
        names = (normalise_host(n) for n in self.default_domain_aliases.split(","))
        return [n for n in names if n]


def load() -> EdgeSettings:
    return load_settings(EdgeSettings)
