"""`ricochet bench redirect`: visitors at a fixed rate (or a step ramp) against the edge with
the whole stack running, judged against the budget, next to ceilings from the same run.

1. Ceiling (unless --no-ceiling): the edge, cache-hot, capture on and off, against a bare
   ASGI 302 on the same Granian settings, with the raw generator (bench/ceiling.py).
2. The stack: a `ricochet up` of its own on embedded servers, or the system given.
3. Seed N links through the bulk API; warm every edge cache with one HEAD per link.
4. Visitors (bench/locust_visitors.py) from enough locust processes; the first seconds are
   warm-up and not counted. Optionally integrators alongside (--integrators RATE).
5. Floor (unless --no-floor): the same harness at the same rate against the bare app, which
   shows how much of the latency is the generator and the machine rather than the edge.
6. Table, budget checks, CPU use of every part and of other processes, JSON result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import api, budgets, ceiling, loadgen, report, seed
from bench import redirect_verdict as verdict
from bench.stack import ROOT, LocalStack, Target, bench_env, edge_metrics, wait_stored
from ricochet import procs

Say = Callable[[str], None]


@dataclass(frozen=True)
class Mix:
    zipf: float = 1.0
    unknown: float = 0.01
    qr: float = 0.10
    bots: float = 0.05


@dataclass(frozen=True)
class Config:
    rate: float | None = None  # None: the budget's rate
    duration_s: float = 30.0
    warmup_s: float = 5.0
    shape: str = "fixed"  # or "ramp"
    ramp_start: float = 500.0
    ramp_step: float = 500.0
    ramp_steps: int = 8
    step_s: float = 10.0
    links: int = 10_000
    mix: Mix = field(default_factory=Mix)
    per_user_rate: float = 50.0
    locust_processes: int = 0  # 0: one per 1,000 req/s
    edge_workers: int = 1
    integrators: float = 0.0  # req/s of API traffic alongside (0: none)
    with_ceiling: bool = True
    # The full-stack row starts a second stack: off unless asked (--ceiling-full-stack).
    ceiling_cfg: ceiling.Config = field(default_factory=lambda: ceiling.Config(full_stack=False))
    with_floor: bool = True
    profile: str = "full"
    settings: dict[str, str] = field(default_factory=dict)  # extra RICOCHET_* for our stack
    target: Target | None = None  # None: start a stack of our own
    results_dir: Path = report.RESULTS_DIR


@contextlib.contextmanager
def target_for(
    cfg_target: Target | None, settings: dict[str, str]
) -> Iterator[tuple[Target, LocalStack | None]]:
    if cfg_target is not None:
        yield cfg_target, None
        return
    stack = LocalStack(settings)
    with stack as target:
        yield target, stack


def run(cfg: Config, say: Say = print) -> int:
    """Everything above; returns the exit status (1 when a budget is missed)."""
    budget = budgets.load(cfg.profile)
    rate = cfg.rate or budget["redirect"]["rate"]
    steps = _steps(cfg, rate)
    peak = max(step.rate for step in steps)
    processes = cfg.locust_processes or loadgen.processes_for(peak)
    workdir = Path(tempfile.mkdtemp(prefix="ricochet-bench-redirect-"))
    result: dict[str, Any] = {
        "config": _config_dict(cfg, rate, processes),
    }
    try:
        if cfg.with_ceiling:
            say("ceiling: bare ASGI 302 vs the edge, same Granian settings ...")
            result["ceiling"] = ceiling.run(
                dataclasses.replace(cfg.ceiling_cfg, workers=cfg.edge_workers), workdir, say
            )
        settings = {"RICOCHET_EDGE_WORKERS": str(cfg.edge_workers), **cfg.settings}
        say("starting the stack ..." if cfg.target is None else "using the given stack ...")
        with target_for(cfg.target, settings) as (target, stack):
            result["target"] = target.described()
            seeded = seed.seed_links(target, cfg.links)
            warm_s = seed.warm(target.edge_url, seeded.host, seeded.slugs, cfg.edge_workers)
            say(
                f"seeded {len(seeded.slugs):,} links in {seeded.seconds:.1f} s, "
                f"warmed in {warm_s:.1f} s"
            )
            links_file = seeded.save(workdir / "links.json")
            before = edge_metrics(target.edge_url)
            say(_describe_load(cfg, steps, processes))
            visitors = _visitor_plan(cfg, steps, processes, target, seeded, links_file)
            watch = report.CpuWatch()
            started = loadgen.Started(visitors, workdir)
            integrators = _start_integrators(cfg, steps, target, links_file, workdir)
            time.sleep(min(cfg.warmup_s, steps[-1].until_s))
            window_before = edge_metrics(target.edge_url)
            watch.start()
            time.sleep(max(0.0, steps[-1].until_s - cfg.warmup_s))
            roles = stack.pids() if stack is not None else {}
            roles["locust"] = started.pids | (integrators.pids if integrators else set())
            result["cpu"] = watch.stop(roles)
            # The edge's counters over the CPU window (clicks per second for CPU per click).
            window_after = edge_metrics(target.edge_url)
            result["window_metrics"] = {
                k: window_after.get(k, 0) - window_before.get(k, 0) for k in window_after
            }
            run_ = started.finish()
            api_run = integrators.finish() if integrators else None
            after = edge_metrics(target.edge_url)
            result["edge_metrics"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            if target.database_url:  # every captured click must reach PostgreSQL
                captured = result["edge_metrics"].get("clicks_captured", 0)
                stored = wait_stored(target.database_url, seeded.link_ids, captured, 60)
                result["clicks"] = {"captured": captured, "stored": stored}
            result["generator_cpu"] = run_.generator_cpu()
            if cfg.shape == "fixed":
                result.update(_fixed(cfg, run_, rate))
            else:
                result["steps"] = _ramp(cfg, run_)
            if api_run is not None:
                result["integrators"] = api.summarise(api_run, cfg.warmup_s)
            if cfg.with_floor and cfg.shape == "fixed":
                say("floor: the same harness against a bare ASGI 302 ...")
                result["floor"] = _floor(cfg, steps, processes, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["cpu_costs"] = verdict.costs(result)
    found = verdict.checks(cfg.shape, budget, rate, result)
    say("")
    say(verdict.render(result))
    say("")
    say(report.checks_table(found))
    for line in verdict.reading(result, budget["redirect"]):
        say(line)
    say("")
    say(report.describe_cpu(result["cpu"]))
    result["checks"] = found
    result["ok"] = budgets.all_ok(found)
    path = report.write("redirect", result, cfg.results_dir)
    say(f"\nwritten {path}")
    say("verdict: " + ("every budget met" if result["ok"] else "BUDGET MISSED"))
    return 0 if result["ok"] else 1


def _steps(cfg: Config, rate: float) -> list[loadgen.Step]:
    if cfg.shape == "fixed":
        return loadgen.fixed(rate, cfg.per_user_rate, cfg.warmup_s, cfg.duration_s)
    steps = loadgen.ramp(
        cfg.ramp_start, cfg.ramp_step, cfg.ramp_steps, cfg.step_s, cfg.per_user_rate
    )
    # The warm-up runs at the first step's rate before the ramp proper.
    warm = loadgen.Step(cfg.warmup_s, steps[0].rate, steps[0].users)
    return [warm] + [dataclasses.replace(s, until_s=s.until_s + cfg.warmup_s) for s in steps]


def _config_dict(cfg: Config, rate: float, processes: int) -> dict[str, Any]:
    out = dataclasses.asdict(cfg)
    out.pop("target")
    out["results_dir"] = str(cfg.results_dir)
    out["rate"] = rate
    out["locust_processes"] = processes
    return out


def _describe_load(cfg: Config, steps: list[loadgen.Step], processes: int) -> str:
    if cfg.shape == "fixed":
        step = steps[-1]
        what = f"{step.rate:,.0f} req/s fixed for {cfg.duration_s:.0f} s"
    else:
        what = (
            f"a ramp {steps[1].rate:,.0f} -> {steps[-1].rate:,.0f} req/s, {cfg.step_s:.0f} s a step"
        )
    return (
        f"visitors: {what} after {cfg.warmup_s:.0f} s warm-up; {processes} locust "
        f"process(es), {steps[-1].users} users at {cfg.per_user_rate:.0f} req/s each"
    )


def _visitor_plan(
    cfg: Config,
    steps: list[loadgen.Step],
    processes: int,
    target: Target,
    seeded: seed.Seeded,
    links_file: Path,
) -> loadgen.Plan:
    mix = {"links_file": str(links_file), "host": seeded.host, **dataclasses.asdict(cfg.mix)}
    return loadgen.Plan(
        label="visitors",
        locustfile=ROOT / "bench" / "locust_visitors.py",
        host=target.edge_url,
        processes=processes,
        steps=steps,
        per_user_rate=cfg.per_user_rate,
        env={"BENCH_MIX": json.dumps(mix)},
    )


def _start_integrators(
    cfg: Config, steps: list[loadgen.Step], target: Target, links_file: Path, workdir: Path
) -> loadgen.Started | None:
    if cfg.integrators <= 0:
        return None
    return loadgen.Started(
        api.plan(cfg.integrators, steps[-1].until_s, target, links_file), workdir
    )


def _fixed(cfg: Config, run_: loadgen.Run, rate: float) -> dict[str, Any]:
    samples = run_.samples
    start = samples.begin + cfg.warmup_s
    end = min(samples.end, start + cfg.duration_s)
    idx = samples.window(start, end)
    seconds = end - start
    overall = loadgen.stats(samples, idx, seconds)
    return {
        "target_rate": rate,
        "measured_s": seconds,
        "overall": overall.as_dict(),
        "kinds": {k: s.as_dict() for k, s in loadgen.by_kind(samples, idx, seconds).items()},
    }


def _ramp(cfg: Config, run_: loadgen.Run) -> list[dict[str, Any]]:
    samples = run_.samples
    out = []
    settle = min(2.0, cfg.step_s / 4)  # users of a new step are still starting
    for step in run_.plan.steps[1:]:
        start = samples.begin + step.until_s - cfg.step_s + settle
        end = min(samples.begin + step.until_s, samples.end)
        stats = loadgen.stats(samples, samples.window(start, end), end - start)
        out.append({"target_rate": step.rate, **stats.as_dict()})
    return out


def _floor(cfg: Config, steps: list[loadgen.Step], processes: int, workdir: Path) -> dict[str, Any]:
    """The same harness and rate against the bare 302; its CPU over the same kind of window
    as the edge's (after the warm-up), so CPU per request compares like with like."""
    port = procs.free_port(None)
    argv = [sys.executable, "-m", "bench.serve", "bench.bare_app:create_app", str(port)]
    argv.append(str(cfg.edge_workers))
    bare = procs.spawn(argv, log=workdir / "floor-bare.log", env=bench_env(), cwd=ROOT)
    try:
        if not procs.wait_port(port, time.monotonic() + 30, bare):
            raise RuntimeError(f"bare app did not start:\n{procs.tail(workdir / 'floor-bare.log')}")
        plan = loadgen.Plan(
            label="floor",
            locustfile=ROOT / "bench" / "locust_visitors.py",
            host=f"http://127.0.0.1:{port}",
            processes=processes,
            steps=steps,
            per_user_rate=cfg.per_user_rate,
            env={"BENCH_MIX": json.dumps({"hot": "/hot", "host": "localhost"})},
        )
        started = loadgen.Started(plan, workdir)
        time.sleep(min(cfg.warmup_s, steps[-1].until_s))
        before, began = ceiling.cpu_seconds(bare), time.monotonic()
        time.sleep(max(0.0, steps[-1].until_s - cfg.warmup_s))
        used, seconds = ceiling.cpu_seconds(bare) - before, time.monotonic() - began
        run_ = started.finish()
    finally:
        procs.stop(bare)
    floor: dict[str, Any] = _fixed(cfg, run_, steps[-1].rate)["overall"]
    floor["cpu_cores"] = used / max(seconds, 1e-6)
    floor["cpu_us_per_request"] = floor["cpu_cores"] / max(floor["rate"], 1) * 1e6
    return floor
