"""Ingest throughput and lag: kept in process, logged every METRICS_EVERY_S, and exported
for Prometheus when RICOCHET_INGEST_METRICS_PORT is set (each ingest process serves its own
counters; sum them across processes, and alert on the lag gauge or a missing target)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

METRICS_EVERY_S = 10.0


class IngestMetrics:
    """Counters since start. Each instance has its own registry, so several consumers in one
    process (tests, benchmarks) never collide on metric names."""

    def __init__(self) -> None:
        self.stored = 0  # clicks inserted
        self.duplicates = 0  # re-delivered clicks that were stored already
        self.dead_lettered = 0  # entries and single clicks parked in the dead stream
        self.batches = 0  # store transactions committed
        self.events = 0  # link.clicked / link.qr_scanned events written
        self.lag_s = 0.0  # at the last batch: now - newest clicked_at in it
        self._mark = (time.monotonic(), 0, 0)  # when, stored, batches at the last report
        self.registry = CollectorRegistry()
        self._stored = Counter(
            "ricochet_ingest_clicks_stored", "Clicks inserted", registry=self.registry
        )
        self._duplicates = Counter(
            "ricochet_ingest_clicks_duplicate",
            "Re-delivered clicks found stored already",
            registry=self.registry,
        )
        self._dead = Counter(
            "ricochet_ingest_dead_lettered",
            "Entries or clicks moved to the dead stream",
            registry=self.registry,
        )
        self._events = Counter(
            "ricochet_ingest_click_events", "Click and scan events written", registry=self.registry
        )
        self._batches = Counter(
            "ricochet_ingest_batches", "Store transactions committed", registry=self.registry
        )
        self._lag = Gauge(
            "ricochet_ingest_lag_seconds",
            "Now minus the newest click time of the last stored batch",
            registry=self.registry,
        )

    def serve(self, host: str, port: int) -> None:
        """Expose the counters at http://host:port/metrics (a daemon thread)."""
        start_http_server(port, host, registry=self.registry)

    def batch(self, rows: list[dict[str, Any]], inserted: int, events: int = 0) -> None:
        self.batches += 1
        self.stored += inserted
        self.duplicates += len(rows) - inserted
        self.events += events
        self._batches.inc()
        self._stored.inc(inserted)
        self._duplicates.inc(len(rows) - inserted)
        self._events.inc(events)
        if rows:
            newest = max(r["clicked_at"] for r in rows)
            self.lag_s = max(0.0, (dt.datetime.now(dt.UTC) - newest).total_seconds())
            self._lag.set(self.lag_s)

    def dead_letter(self) -> None:
        self.dead_lettered += 1
        self._dead.inc()

    def report(self, now: float | None = None) -> str | None:
        """The line to log once METRICS_EVERY_S have passed, if any batch ran since."""
        now = time.monotonic() if now is None else now
        since, stored, batches = self._mark
        if now - since < METRICS_EVERY_S:
            return None
        self._mark = (now, self.stored, self.batches)
        if self.batches == batches:
            return None  # idle: nothing worth a line
        rate = (self.stored - stored) / (now - since)
        return (
            f"ingest: {rate:,.0f} clicks/s, lag {self.lag_s:.1f} s, {self.stored:,} stored, "
            f"{self.duplicates:,} duplicates skipped, {self.dead_lettered:,} dead-lettered, "
            f"{self.events:,} click events, {self.batches:,} batches"
        )
