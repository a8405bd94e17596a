"""`ricochet bench bulk`: 1,000 links in one `POST /api/v1/links/bulk`, timed over HTTP.

Each round sends `size` new links with explicit slugs, UTM fields and two tags (the shape
of seed 001's campaign matrix). Budget (../shared/design.md): 1,000 links in one call
<= 1 s, judged on the median of the rounds.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench import budgets, report, seed
from bench.budgets import Check
from bench.stack import Target, given_or_own

Say = Callable[[str], None]


@dataclass(frozen=True)
class Config:
    rounds: int = 5
    size: int | None = None  # None: the budget's
    profile: str = "full"
    settings: dict[str, str] = field(default_factory=dict)
    target: Target | None = None
    results_dir: Path = report.RESULTS_DIR


def measure(target: Target, rounds: int, size: int, say: Say) -> list[float]:
    timings = []
    with httpx.Client(timeout=120) as http:
        for r in range(rounds):
            body = {"items": seed.link_items(uuid.uuid4().hex[:8], 0, size)}
            started = time.perf_counter()
            response = http.post(
                f"{target.control_url}/api/v1/links/bulk", json=body, headers=target.auth
            )
            elapsed = time.perf_counter() - started
            if response.status_code != 200 or response.json().get("created") != size:
                raise RuntimeError(f"round {r + 1}: {response.status_code} {response.text[:300]}")
            timings.append(elapsed)
            say(f"  round {r + 1}: {size:,} links in {elapsed * 1000:,.0f} ms")
    return timings


def run(cfg: Config, say: Say = print) -> int:
    budget = budgets.load(cfg.profile)["bulk"]
    size = cfg.size or int(budget["size"])
    say("starting the stack ..." if cfg.target is None else "using the given stack ...")
    with given_or_own(cfg.target, cfg.settings) as (target, stack):
        measure(target, 1, size, lambda _: None)  # warm-up: pools, caches, code paths
        watch = report.CpuWatch()
        watch.start()
        timings = measure(target, cfg.rounds, size, say)
        cpu = watch.stop(stack.pids() if stack else {})
    median = statistics.median(timings)
    result: dict[str, Any] = {
        "size": size,
        "seconds": timings,
        "median_s": median,
        "best_s": min(timings),
        "worst_s": max(timings),
        "links_per_s": size / median,
        "cpu": cpu,
        "config": {
            **{k: v for k, v in dataclasses.asdict(cfg).items() if k != "target"},
            "results_dir": str(cfg.results_dir),
        },
    }
    found = [Check(f"bulk create of {size:,} (median)", median, budget["seconds"], "<=", " s")]
    say("")
    say(
        f"bulk create, {size:,} links a call: median {median * 1000:,.0f} ms "
        f"(best {min(timings) * 1000:,.0f}, worst {max(timings) * 1000:,.0f}; "
        f"{size / median:,.0f} links/s)"
    )
    say("")
    say(report.checks_table(found))
    say("")
    say(report.describe_cpu(cpu))
    result["checks"] = found
    result["ok"] = budgets.all_ok(found)
    path = report.write("bulk_create", result, cfg.results_dir)
    say(f"\nwritten {path}")
    return 0 if result["ok"] else 1
