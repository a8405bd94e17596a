"""Visitors of short links, for `ricochet bench redirect` (started by bench/loadgen.py).

Each request is one visit, redirects not followed (the edge's answer is what we time):
people clicking links with a Zipf-like popularity, QR scans, crawlers and unknown slugs,
in the shares BENCH_MIX (JSON) gives; see bench/visits.py. With `hot` set, every request
is that one path instead (the ceiling's cache-hot case).
"""

from __future__ import annotations

import json
import os

from locust import FastHttpUser, task

from bench.recorder import Schedule, lateness_ms, pacing  # Schedule: the shape locust runs
from bench.visits import Mix

CONFIG = json.loads(os.environ.get("BENCH_MIX", "{}"))


def _slugs() -> list[str]:
    if CONFIG.get("hot") or not CONFIG.get("links_file"):
        return []
    with open(CONFIG["links_file"]) as f:
        slugs: list[str] = json.load(f)["slugs"]
    return slugs


MIX = Mix.from_config(CONFIG, _slugs())


class Visitor(FastHttpUser):
    wait_time = pacing()

    @task
    def visit(self) -> None:
        kind, path, headers, expect = MIX.next()
        self.client.request(
            "GET",
            path,
            name=kind,
            headers=headers,
            allow_redirects=False,
            context={"expect": expect, "late_ms": lateness_ms(self)},
        )


__all__ = ["Schedule", "Visitor"]
