"""Edge counters: plain integers on the hot path, exported to Prometheus off it.

Granian runs several worker processes; Prometheus must see their sum. With
PROMETHEUS_MULTIPROC_DIR set (`ricochet edge` sets it), each worker mirrors its integers
into prometheus_client's multi-process files once a second and `/_/metrics` aggregates
every worker's files. Without it, the endpoint shows this process only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

COUNTERS = {
    "redirects": "Redirects answered (any 3xx)",
    "not_found": "Requests for unknown links",
    "gone": "Requests for expired or taken-down links",
    "password_prompts": "Password forms shown",
    "password_checks": "Passwords verified (each one an argon2 hash)",
    "password_limited": "Password attempts refused over the limit (429)",
    "bodies_refused": "Request bodies refused for their size (413)",
    "cache_hits": "Link look-ups answered from the worker's cache",
    "cache_misses": "Link look-ups that went to Redis",
    "authoritative_misses": "Redis misses answered 404 because the projection is complete",
    "control_fallbacks": "Link look-ups filled from the control plane",
    "control_capped": "Look-ups answered 503: the worker's control-plane cap was reached",
    "bad_requests": "Requests answered 400 (no Host, or a malformed one)",
    "unavailable": "Requests answered 503 because no source could resolve the link",
    "clicks_captured": "Click events recorded",
    "clicks_flushed": "Click events written to Redis streams",
    "clicks_spooled": "Click events written to the local spool while Redis was down",
    "clicks_replayed": "Spooled click events written to Redis after it returned",
    "clicks_dropped": "Click events lost (must stay 0)",
}


@dataclass
class Counters:
    redirects: int = 0
    not_found: int = 0
    gone: int = 0
    password_prompts: int = 0
    password_checks: int = 0
    password_limited: int = 0
    bodies_refused: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    authoritative_misses: int = 0
    control_fallbacks: int = 0
    control_capped: int = 0
    bad_requests: int = 0
    unavailable: int = 0
    clicks_captured: int = 0
    clicks_flushed: int = 0
    clicks_spooled: int = 0
    clicks_replayed: int = 0
    clicks_dropped: int = 0


class Exporter:
    """Mirrors `Counters` into prometheus_client counters (by delta) and renders them."""

    def __init__(self, counters: Counters) -> None:
        from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

        self.counters = counters
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # Multi-process mode records into files and must use the default registry; a single
        # process keeps its own registry so several apps in one process (tests) stay apart.
        self.registry = CollectorRegistry()
        registry = REGISTRY if self.multiprocess else self.registry
        self._metrics = {
            name: Counter(f"ricochet_edge_{name}", help_, registry=registry)
            for name, help_ in COUNTERS.items()
        }
        self.buffered = Gauge(
            "ricochet_edge_clicks_buffered",
            "Click events waiting in memory",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.cached = Gauge(
            "ricochet_edge_cached_links",
            "Links in worker caches",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._seen = {f.name: 0 for f in fields(Counters)}

    def sync(self, buffered: int, cached: int) -> None:
        for name, metric in self._metrics.items():
            value = getattr(self.counters, name)
            delta = value - self._seen[name]
            if delta:
                metric.inc(delta)
                self._seen[name] = value
        self.buffered.set(buffered)
        self.cached.set(cached)

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    def worker_exit(self) -> None:
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
