"""Ceiling comparison: the edge against a bare ASGI app answering a constant 302.

Both run under Granian with the same settings (`ricochet.cli._serve`), side by side in one
run, driven by the same raw load generator (wrk, else oha, else locust flat out), in
alternating rounds so machine noise hits all of them alike. Reported:

- edge (cache-hot, capture on) / bare       budget >= 0.60
- edge (cache-hot, capture off) / bare      for reference
- capture cost = 1 - on / off               budget <= 0.10
- full stack / bare                          budget >= 0.60: the edge of a `ricochet up` of
  its own (ingest, relay, control, PostgreSQL running), saturated the same way while
  ingest stores every click as it comes; after each such round the bench waits until
  PostgreSQL holds every click the edge captured (none may be missing), so the backlog's
  drain never overlaps another server's round
- latency percentiles, each server's CPU use, CPU per request and worker RSS

A ratio only means something when the bare app was the bottleneck: each round records how
much CPU the server used, and when the bare app's worker(s) were not busy (the generator
could not push it, as locust cannot on a small machine) the ratios are printed but not
judged. `ricochet bench ceiling` (or `ricochet bench redirect`) runs this; so does

    .venv/bin/python -m bench.ceiling --rounds 3 --seconds 8

Exits 1 when a budget is missed; writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil

from bench import budgets, loadgen, report
from bench.budgets import Check
from bench.stack import ROOT, HotLinkStack, bench_env, cpu_of
from ricochet import procs

SLUG = "hot"
HOST = "localhost"
SERVERS = ("bare", "edge_capture_on", "edge_capture_off")
FULL_STACK = "full_stack"
TOOLS = ("auto", "wrk", "oha", "locust")
DRAIN_TIMEOUT_S = 180.0  # ingest catching up after a full-stack round


@dataclasses.dataclass(frozen=True)
class Served:
    """Where a server answers the hot link, and which processes are its (for CPU)."""

    url: str  # http://127.0.0.1:port/slug
    host: str  # Host header
    pids: set[int]


@dataclasses.dataclass(frozen=True)
class Config:
    rounds: int = 3
    seconds: float = 8.0
    connections: int = 64
    workers: int = 1  # Granian workers per server
    tool: str = "auto"
    locust_processes: int = 0  # 0: one per CPU
    full_stack: bool = True  # also the edge of a whole `ricochet up`, ingest storing clicks


def pick_tool(preferred: str) -> str:
    if preferred != "auto":
        if preferred != "locust" and not shutil.which(preferred):
            raise SystemExit(f"{preferred} is not on PATH (or use --ceiling-tool auto)")
        return preferred
    for tool in ("wrk", "oha"):
        if shutil.which(tool):
            return tool
    return "locust"


def parse_wrk(out: str) -> dict[str, float]:
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    result = {"rps": float(found.group(1))}
    for q in ("50", "90", "99"):
        m = re.search(rf"^\s+{q}(?:\.0+)?%\s+([\d.]+)(us|ms|s)\b", out, re.M)
        if m:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            result[f"p{q}_ms"] = float(m.group(1)) * scale
    non3xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["bad_responses"] = float(non3xx.group(1)) if non3xx else 0.0
    result["socket_errors"] = float(sum(int(g) for g in errors.groups())) if errors else 0.0
    return result


def parse_oha(out: str) -> dict[str, float]:
    data = json.loads(out)
    pct = data.get("latencyPercentiles", {})
    return {
        "rps": float(data["summary"]["requestsPerSec"]),
        "p50_ms": float(pct.get("p50", 0)) * 1000,
        "p90_ms": float(pct.get("p90", 0)) * 1000,
        "p99_ms": float(pct.get("p99", 0)) * 1000,
        "bad_responses": float(
            sum(
                v
                for k, v in data.get("statusCodeDistribution", {}).items()
                if not str(k).startswith("3")
            )
        ),
        "socket_errors": float(sum(data.get("errorDistribution", {}).values())),
    }


def _drive(
    tool: str, served: Served, seconds: float, cfg: Config, workdir: Path, label: str
) -> dict[str, float]:
    url, host = served.url, served.host
    if tool == "wrk":
        argv = ["wrk", "-t1", f"-c{cfg.connections}", f"-d{max(1, round(seconds))}s"]
        argv += ["--latency", "-H", f"Host: {host}", url]
        return parse_wrk(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    if tool == "oha":
        argv = ["oha", "-z", f"{seconds}s", "-c", str(cfg.connections), "--no-tui", "-j"]
        argv += ["--redirect", "0", "-H", f"Host: {host}", url]
        return parse_oha(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    processes = cfg.locust_processes or psutil.cpu_count() or 1
    base, _, path = url.partition("://")[2].partition("/")
    plan = loadgen.Plan(
        label=label,
        locustfile=ROOT / "bench" / "locust_visitors.py",
        host=f"http://{base}",
        processes=processes,
        steps=loadgen.flat_out(cfg.connections, seconds + 1),
        per_user_rate=0,
        env={"BENCH_MIX": json.dumps({"hot": f"/{path}", "host": host})},
    )
    samples = loadgen.run(plan, workdir).samples
    start, end = samples.begin + 1, samples.end  # the first second: users still starting
    stats = loadgen.stats(samples, samples.window(start, end), end - start)
    return {
        "rps": stats.rate,
        "p50_ms": stats.latency_ms["p50"],
        "p90_ms": stats.latency_ms["p90"],
        "p99_ms": stats.latency_ms["p99"],
        "bad_responses": float(stats.errors),
        "socket_errors": 0.0,
    }


def _tree(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    parent = psutil.Process(proc.pid)
    return [parent, *parent.children(recursive=True)]


def cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds used so far by a server and its workers."""
    return cpu_of({p.pid for p in _tree(proc)})


def _rss_mb(pids: set[int]) -> float:
    """The largest RSS among these processes: a Granian worker outgrows its parent."""
    rss = []
    for pid in pids:
        try:
            rss.append(psutil.Process(pid).memory_info().rss)
        except psutil.Error:
            continue
    return float(max(rss, default=0)) / 2**20


def _stop_all(servers: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in servers.values():
        procs.stop(proc, signal.SIGTERM)


def _start(
    name: str, argv: list[str], env: dict[str, str], port: int, logs: Path
) -> subprocess.Popen[bytes]:
    proc = procs.spawn(argv, log=logs / f"{name}.log", env=env, cwd=ROOT)
    if not procs.wait_port(port, time.monotonic() + 30, proc):
        raise RuntimeError(f"{name} did not start:\n{procs.tail(logs / f'{name}.log')}")
    return proc


def run(cfg: Config, workdir: Path, say: Any = print) -> dict[str, Any]:
    """Start Redis, the bare app, two edges (and a whole stack), measure them in rounds."""
    import redis

    from ricochet.embedded import EmbeddedRedis
    from shared.keys import click_streams, link_key
    from shared.records import LinkRecord, encode_link

    tool = pick_tool(cfg.tool)
    logs = workdir / "ceiling-logs"
    servers: dict[str, subprocess.Popen[bytes]] = {}
    ports = {name: procs.free_port(None) for name in SERVERS}
    with ExitStack() as cleanup:
        stack: HotLinkStack | None = None
        if cfg.full_stack:
            say("  ceiling: starting a whole stack (`ricochet up`) for the full-stack row ...")
            stack = cleanup.enter_context(HotLinkStack(cfg.workers, SLUG, DRAIN_TIMEOUT_S))
        store = EmbeddedRedis(workdir / "ceiling-redis", durable=False)
        redis_url = store.start()
        cleanup.callback(store.stop)
        client = redis.Redis.from_url(redis_url)
        record = LinkRecord(
            "00000000-0000-4000-8000-000000000001", "ws", "dom", 1, "https://example.com/landing"
        )
        client.hset(link_key(HOST, SLUG), mapping={"v": 1, "r": encode_link(record)})
        cleanup.callback(_stop_all, servers)
        base = bench_env()
        serve = [sys.executable, "-m", "bench.serve", "bench.bare_app:create_app"]
        servers["bare"] = _start(
            "bare", [*serve, str(ports["bare"]), str(cfg.workers)], base, ports["bare"], logs
        )
        for name, capture in (("edge_capture_on", "true"), ("edge_capture_off", "false")):
            env = {
                **base,
                "RICOCHET_REDIS_URL": redis_url,
                "RICOCHET_CAPTURE": capture,
                "RICOCHET_SPOOL_DIR": str(workdir / f"spool-{name}"),
                "RICOCHET_EDGE_PORT": str(ports[name]),
                "RICOCHET_EDGE_WORKERS": str(cfg.workers),
            }
            argv = [sys.executable, "-m", "ricochet", "edge"]
            servers[name] = _start(name, argv, env, ports[name], logs)
        served = {
            name: Served(f"http://127.0.0.1:{ports[name]}/{SLUG}", HOST, _pids(proc))
            for name, proc in servers.items()
        }
        if stack is not None:
            served[FULL_STACK] = Served(stack.url, stack.host, stack.edge_pids())
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in served}
        for name in served:  # warm-up: caches filled, code paths hot
            _drive(tool, served[name], 2, cfg, workdir, f"ceiling-warm-{name}")
        if stack is not None:
            stack.drain(say)  # the warm-up's clicks stored before anything is measured
        watch = report.CpuWatch()  # how busy the machine was with other work meanwhile
        watch.start()
        for r in range(cfg.rounds):
            for name, where in served.items():
                client.delete(*click_streams(4))  # the captured clicks: nobody ingests them
                pids = stack.edge_pids() if name == FULL_STACK and stack else where.pids
                before, started = cpu_of(pids), time.monotonic()
                pipeline_before = stack.pipeline_cpu() if name == FULL_STACK and stack else 0.0
                result = _drive(tool, where, cfg.seconds, cfg, workdir, f"ceiling-{name}")
                elapsed = time.monotonic() - started
                used = cpu_of(pids) - before
                result["server_cpu"] = used / elapsed / cfg.workers
                result["cpu_us_per_request"] = used / max(result["rps"] * elapsed, 1) * 1e6
                if name == FULL_STACK and stack is not None:
                    result.update(stack.drain(say))
                    pipeline = stack.pipeline_cpu() - pipeline_before
                    result["pipeline_cpu_us_per_click"] = (
                        pipeline / max(result["round_clicks"], 1) * 1e6
                    )
                    # What one redirect costs the whole box: the edge's share plus storing
                    # its click (round and drain), whoever ends up paying for it.
                    result["stack_cpu_us_per_request"] = (
                        (used + pipeline) / max(result["rps"] * elapsed, 1) * 1e6
                    )
                rounds[name].append(result)
                say(
                    f"  ceiling round {r + 1} {name:<17} {result['rps']:>9,.0f} req/s  "
                    f"p50 {result.get('p50_ms', 0):.2f} ms  p99 {result.get('p99_ms', 0):.2f} ms  "
                    f"server cpu {result['server_cpu']:.0%}  "
                    f"{result['cpu_us_per_request']:.0f} us/req"
                )
        roles = {name: where.pids for name, where in served.items()}
        if stack is not None:
            roles = {**stack.local.pids(), **roles, "edge": set()}
            roles[FULL_STACK] = stack.edge_pids()
        cpu = watch.stop(roles)
        rss = {name: _rss_mb(where.pids) for name, where in served.items()}
        if stack is not None:
            rss[FULL_STACK] = _rss_mb(stack.edge_pids())
        clicks = stack.clicks() if stack is not None else None
    out = summarise(cfg, tool, rounds, rss)
    out["cpu"] = cpu
    if clicks is not None:
        out["full_stack_clicks"] = clicks
    return out


def _pids(proc: subprocess.Popen[bytes]) -> set[int]:
    return {p.pid for p in _tree(proc)}


def summarise(
    cfg: Config, tool: str, rounds: dict[str, list[dict[str, float]]], rss: dict[str, float]
) -> dict[str, Any]:
    median = {name: statistics.median(r["rps"] for r in runs) for name, runs in rounds.items()}
    per_server = {
        name: {
            "median_rps": median[name],
            "p50_ms": statistics.median(r.get("p50_ms", 0.0) for r in runs),
            "p99_ms": statistics.median(r.get("p99_ms", 0.0) for r in runs),
            "server_cpu": statistics.median(r["server_cpu"] for r in runs),
            "cpu_us_per_request": statistics.median(r["cpu_us_per_request"] for r in runs),
            "rss_mb": rss.get(name, 0.0),
        }
        for name, runs in rounds.items()
    }
    out = {
        "tool": tool,
        "config": dataclasses.asdict(cfg),
        "servers": per_server,
        "ratio_capture_on": median["edge_capture_on"] / median["bare"],
        "ratio_capture_off": median["edge_capture_off"] / median["bare"],
        "capture_cost": 1 - median["edge_capture_on"] / median["edge_capture_off"],
        "errors": sum(
            r["bad_responses"] + r["socket_errors"] for runs in rounds.values() for r in runs
        ),
        "rounds": rounds,
    }
    if FULL_STACK in rounds:
        full = rounds[FULL_STACK]
        out["ratio_full_stack"] = median[FULL_STACK] / median["bare"]
        per_server[FULL_STACK]["pipeline_cpu_us_per_click"] = statistics.median(
            r["pipeline_cpu_us_per_click"] for r in full
        )
        per_server[FULL_STACK]["drain_s"] = statistics.median(r["drain_s"] for r in full)
        stack_us = statistics.median(r["stack_cpu_us_per_request"] for r in full)
        per_server[FULL_STACK]["stack_cpu_us_per_request"] = stack_us
        # The throughput ratio a CPU-bound box would show: bare's CPU per request over the
        # whole stack's per redirect (a generator or a busy machine cannot move it).
        out["cpu_ratio_full_stack"] = per_server["bare"]["cpu_us_per_request"] / stack_us
    return out


def checks(result: dict[str, Any], budget: dict[str, float]) -> list[Check]:
    # A ratio to the bare app only means something when the bare app was the bottleneck.
    # Locust cannot load it enough; on a 2-core box even wrk (one core of its own) leaves
    # it short whenever other work takes CPU, and then the ratios measure who got the CPU.
    bare_cpu = result["servers"]["bare"]["server_cpu"]
    judged = bare_cpu >= budget["min_bare_cpu"]
    if judged:
        note = ""
    elif result["tool"] == "locust":
        note = f"generator-bound: bare app only {bare_cpu:.0%} busy; install wrk"
    else:
        note = f"bare app only {bare_cpu:.0%} busy: the machine was short of CPU"
    found = [
        Check(
            "edge capture on / bare",
            result["ratio_capture_on"],
            budget["ratio_capture_on"],
            ">=",
            "x",
            judged,
            note,
        ),
        Check(
            "capture cost",
            result["capture_cost"] * 100,
            budget["capture_cost"] * 100,
            "<=",
            " %",
            judged,
            note,
        ),
    ]
    if "ratio_full_stack" in result:
        clicks = result.get("full_stack_clicks", {})
        missing = clicks["captured"] - clicks["stored"] if clicks else None
        found += [
            Check(
                "full stack / bare",
                result["ratio_full_stack"],
                budget["ratio_full_stack"],
                ">=",
                "x",
                judged,
                note,
            ),
            Check("full stack: clicks captured, not stored", missing, 0, "<="),
            Check("full stack: clicks dropped (edge)", clicks.get("dropped"), 0, "<="),
        ]
    found.append(Check("ceiling errors", result["errors"], 0, "<="))
    return found


def render(result: dict[str, Any]) -> str:
    rows = [
        [
            name.replace("_", " "),
            s["median_rps"],
            s["p50_ms"],
            s["p99_ms"],
            f"{s['server_cpu']:.0%}",
            s.get("cpu_us_per_request", math.nan),
            s["rss_mb"],
        ]
        for name, s in result["servers"].items()
    ]
    head = f"ceiling ({result['tool']}, {result['config']['connections']} connections, "
    head += f"{result['config']['workers']} Granian worker(s), median of "
    head += f"{result['config']['rounds']} rounds of {result['config']['seconds']:.0f} s)"
    body = report.table(
        ["server", "req/s", "p50 ms", "p99 ms", "server cpu", "cpu us/req", "RSS MB/worker"],
        rows,
    )
    lines = [
        head,
        body,
        f"edge capture on / bare = {result['ratio_capture_on']:.2f}x, "
        f"capture off / bare = {result['ratio_capture_off']:.2f}x, "
        f"capture cost = {result['capture_cost']:.1%}",
    ]
    if "ratio_full_stack" in result:
        full = result["servers"][FULL_STACK]
        clicks = result.get("full_stack_clicks", {})
        lines.append(
            f"full stack / bare = {result['ratio_full_stack']:.2f}x (the edge of a whole "
            "`ricochet up`, ingest storing clicks as they come)"
        )
        lines.append(
            f"  clicks: {clicks.get('captured', 0):,.0f} captured by its edge, "
            f"{clicks.get('stored', 0):,.0f} stored in PostgreSQL, "
            f"{clicks.get('dropped', 0):,.0f} dropped; ingest + PostgreSQL "
            f"{full['pipeline_cpu_us_per_click']:,.0f} us CPU per click (round + drain), "
            f"the backlog drained in {full['drain_s']:.1f} s after each round"
        )
        lines.append(
            f"  CPU per redirect: bare {result['servers']['bare']['cpu_us_per_request']:.0f} us, "
            f"whole stack {full['stack_cpu_us_per_request']:.0f} us (edge "
            f"{full['cpu_us_per_request']:.0f} + storing the click): CPU-bound, full stack / "
            f"bare = {result['cpu_ratio_full_stack']:.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="Granian workers per server [1]")
    parser.add_argument("--tool", choices=TOOLS, default="auto")
    parser.add_argument("--profile", choices=budgets.PROFILES, default="full")
    parser.add_argument("--no-full-stack", action="store_true", help="isolated rows only")
    args = parser.parse_args()
    cfg = Config(
        args.rounds,
        args.seconds,
        args.connections,
        args.workers,
        args.tool,
        full_stack=not args.no_full_stack,
    )
    sys.exit(measure(cfg, budgets.load(args.profile)["ceiling"], report.RESULTS_DIR))


def measure(cfg: Config, budget: dict[str, float], results_dir: Path) -> int:
    """Run, print, write the result; the exit status (1: a budget missed)."""
    workdir = Path(tempfile.mkdtemp(prefix="ricochet-bench-ceiling-"))
    try:
        result = run(cfg, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    found = checks(result, budget)
    print()
    print(render(result))
    print()
    print(report.checks_table(found))
    print()
    print(report.describe_cpu(result["cpu"]))
    path = report.write(
        "ceiling", {**result, "checks": found, "ok": budgets.all_ok(found)}, results_dir
    )
    print(f"\nwritten {path}")
    return 0 if budgets.all_ok(found) else 1


if __name__ == "__main__":
    main()
