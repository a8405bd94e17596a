"""`ricochet bench api`: integrators on the management API at a fixed rate (single and bulk
creates, link reads, analytics), per endpoint p50/p95/p99, throughput and errors.

The design sets no latency budget for the API (bulk create has its own: `ricochet bench
bulk`), so this bench fails only on errors; its table is for comparing runs. The
integrators come from bench/locust_integrators.py, and `ricochet bench redirect
--integrators RATE` runs the same load alongside the visitors.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import budgets, loadgen, report, seed
from bench.budgets import Check
from bench.stack import ROOT, Target, given_or_own

Say = Callable[[str], None]
PER_USER_RATE = 1.0  # one call a second per user: a slow answer stalls little of the rate


@dataclass(frozen=True)
class Config:
    rate: float = 50.0
    duration_s: float = 30.0
    warmup_s: float = 5.0
    links: int = 1000  # seeded first, so reads and analytics have something to find
    profile: str = "full"
    settings: dict[str, str] = field(default_factory=dict)
    target: Target | None = None
    results_dir: Path = report.RESULTS_DIR


def plan(rate: float, until_s: float, target: Target, links_file: Path) -> loadgen.Plan:
    per_user = min(rate, PER_USER_RATE)
    return loadgen.Plan(
        label="integrators",
        locustfile=ROOT / "bench" / "locust_integrators.py",
        host=target.control_url,
        processes=1,
        steps=loadgen.fixed(rate, per_user, 0, until_s),
        per_user_rate=per_user,
        env={"BENCH_API": json.dumps({"api_key": target.api_key, "links_file": str(links_file)})},
    )


def summarise(run_: loadgen.Run, warmup_s: float) -> dict[str, Any]:
    samples = run_.samples
    start, end = samples.begin + warmup_s, samples.end
    idx = samples.window(start, end)
    return {
        "overall": loadgen.stats(samples, idx, end - start).as_dict(),
        "endpoints": {
            k: s.as_dict() for k, s in loadgen.by_kind(samples, idx, end - start).items()
        },
    }


def table(part: dict[str, Any]) -> str:
    rows = [report.stats_row(name, s, part["overall"]) for name, s in part["endpoints"].items()]
    rows.append(report.stats_row("all", part["overall"], part["overall"]))
    return report.table(["endpoint", *report.STATS_HEADERS], rows)


def run(cfg: Config, say: Say = print) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ricochet-bench-api-"))
    result: dict[str, Any] = {}
    say("starting the stack ..." if cfg.target is None else "using the given stack ...")
    try:
        with given_or_own(cfg.target, cfg.settings) as (target, stack):
            seeded = seed.seed_links(target, cfg.links)
            links_file = seeded.save(workdir / "links.json")
            say(
                f"integrators: {cfg.rate:,.0f} req/s for {cfg.duration_s:.0f} s after "
                f"{cfg.warmup_s:.0f} s warm-up, {seeded.seconds:.1f} s to seed {cfg.links:,} links"
            )
            started = loadgen.Started(
                plan(cfg.rate, cfg.warmup_s + cfg.duration_s, target, links_file), workdir
            )
            watch = report.CpuWatch()
            time.sleep(cfg.warmup_s)
            watch.start()
            time.sleep(cfg.duration_s)
            result["cpu"] = watch.stop({**(stack.pids() if stack else {}), "locust": started.pids})
            run_ = started.finish()
            result.update(summarise(run_, cfg.warmup_s))
            result["generator_cpu"] = run_.generator_cpu()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["config"] = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "target"}
    result["config"]["results_dir"] = str(cfg.results_dir)
    overall = result["overall"]
    short = overall["rate"] < cfg.rate * budgets.load(cfg.profile)["redirect"]["min_rate_fraction"]
    found = [
        Check("errors", overall["errors"], 0, "<="),
        Check(
            "achieved rate",
            overall["rate"],
            cfg.rate * budgets.load(cfg.profile)["redirect"]["min_rate_fraction"],
            ">=",
            " req/s",
            note="the API or the generator could not keep up" if short else "",
        ),
    ]
    say("")
    say(f"management API at {cfg.rate:,.0f} req/s offered ({overall['rate']:,.1f} answered/s)")
    say(table(result))
    say("")
    say(report.checks_table(found))
    say("")
    say(report.describe_cpu(result["cpu"]))
    result["checks"] = found
    result["ok"] = budgets.all_ok(found)
    path = report.write("api", result, cfg.results_dir)
    say(f"\nwritten {path}")
    return 0 if result["ok"] else 1
