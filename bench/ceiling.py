"""Ceiling comparison: the edge against a bare ASGI app answering a constant 302.

Both run under Granian with the same settings (`ricochet.cli._serve`), side by side in one
run, driven by the same raw load generator (wrk, else oha, else locust flat out), in
alternating rounds so machine noise hits all of them alike. Reported:

- edge (cache-hot, capture on) / bare       budget >= 0.60
- edge (cache-hot, capture off) / bare      for reference
- capture cost = 1 - on / off               budget <= 0.10
- latency percentiles, each server's CPU use and worker RSS

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
from bench.stack import ROOT, bench_env
from ricochet import procs

SLUG = "hot"
HOST = "localhost"
SERVERS = ("bare", "edge_capture_on", "edge_capture_off")
TOOLS = ("auto", "wrk", "oha", "locust")


@dataclasses.dataclass(frozen=True)
class Config:
    rounds: int = 3
    seconds: float = 8.0
    connections: int = 64
    workers: int = 1  # Granian workers per server
    tool: str = "auto"
    locust_processes: int = 0  # 0: one per CPU


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
    tool: str, port: int, seconds: float, cfg: Config, workdir: Path, label: str
) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/{SLUG}"
    if tool == "wrk":
        argv = ["wrk", "-t1", f"-c{cfg.connections}", f"-d{max(1, round(seconds))}s"]
        argv += ["--latency", "-H", f"Host: {HOST}", url]
        return parse_wrk(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    if tool == "oha":
        argv = ["oha", "-z", f"{seconds}s", "-c", str(cfg.connections), "--no-tui", "-j"]
        argv += ["--redirect", "0", "-H", f"Host: {HOST}", url]
        return parse_oha(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    processes = cfg.locust_processes or psutil.cpu_count() or 1
    plan = loadgen.Plan(
        label=label,
        locustfile=ROOT / "bench" / "locust_visitors.py",
        host=f"http://127.0.0.1:{port}",
        processes=processes,
        steps=loadgen.flat_out(cfg.connections, seconds + 1),
        per_user_rate=0,
        env={"BENCH_MIX": json.dumps({"hot": f"/{SLUG}", "host": HOST})},
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
    total = 0.0
    for p in _tree(proc):
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def _rss_mb(proc: subprocess.Popen[bytes]) -> float:
    tree = _tree(proc)
    workers = tree[1:] or tree
    return float(max(w.memory_info().rss for w in workers)) / 2**20


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
    """Start Redis, the bare app and two edges, measure them in rounds, stop them."""
    import redis

    from ricochet.embedded import EmbeddedRedis
    from shared.keys import click_streams, link_key
    from shared.records import LinkRecord, encode_link

    tool = pick_tool(cfg.tool)
    logs = workdir / "ceiling-logs"
    servers: dict[str, subprocess.Popen[bytes]] = {}
    ports = {name: procs.free_port(None) for name in SERVERS}
    with ExitStack() as cleanup:
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
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in SERVERS}
        for name in SERVERS:  # warm-up: caches filled, code paths hot
            _drive(tool, ports[name], 2, cfg, workdir, f"ceiling-warm-{name}")
        for r in range(cfg.rounds):
            for name in SERVERS:
                client.delete(*click_streams(4))  # the captured clicks: nobody ingests them
                before, started = cpu_seconds(servers[name]), time.monotonic()
                result = _drive(tool, ports[name], cfg.seconds, cfg, workdir, f"ceiling-{name}")
                busy = (cpu_seconds(servers[name]) - before) / (time.monotonic() - started)
                result["server_cpu"] = busy / cfg.workers
                rounds[name].append(result)
                say(
                    f"  ceiling round {r + 1} {name:<17} {result['rps']:>9,.0f} req/s  "
                    f"p50 {result.get('p50_ms', 0):.2f} ms  p99 {result.get('p99_ms', 0):.2f} ms  "
                    f"server cpu {result['server_cpu']:.0%}"
                )
        rss = {name: _rss_mb(proc) for name, proc in servers.items()}
    return summarise(cfg, tool, rounds, rss)


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
            "rss_mb": rss.get(name, 0.0),
        }
        for name, runs in rounds.items()
    }
    return {
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


def checks(result: dict[str, Any], budget: dict[str, float]) -> list[Check]:
    # wrk and oha outrun any Python server; locust may not, and then the ratios measure it.
    bare_cpu = result["servers"]["bare"]["server_cpu"]
    judged = result["tool"] != "locust" or bare_cpu >= budget["min_bare_cpu"]
    note = "" if judged else f"generator-bound: bare app only {bare_cpu:.0%} busy; install wrk"
    return [
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
        Check("ceiling errors", result["errors"], 0, "<="),
    ]


def render(result: dict[str, Any]) -> str:
    rows = [
        [
            name,
            s["median_rps"],
            s["p50_ms"],
            s["p99_ms"],
            f"{s['server_cpu']:.0%}",
            s["rss_mb"],
        ]
        for name, s in result["servers"].items()
    ]
    head = f"ceiling ({result['tool']}, {result['config']['connections']} connections, "
    head += f"{result['config']['workers']} Granian worker(s), median of "
    head += f"{result['config']['rounds']} rounds of {result['config']['seconds']:.0f} s)"
    body = report.table(
        ["server", "req/s", "p50 ms", "p99 ms", "server cpu", "RSS MB/worker"], rows
    )
    ratios = (
        f"edge capture on / bare = {result['ratio_capture_on']:.2f}x, "
        f"capture off / bare = {result['ratio_capture_off']:.2f}x, "
        f"capture cost = {result['capture_cost']:.1%}"
    )
    return f"{head}\n{body}\n{ratios}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="Granian workers per server [1]")
    parser.add_argument("--tool", choices=TOOLS, default="auto")
    parser.add_argument("--profile", choices=budgets.PROFILES, default="full")
    args = parser.parse_args()
    cfg = Config(args.rounds, args.seconds, args.connections, args.workers, args.tool)
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
    path = report.write(
        "ceiling", {**result, "checks": found, "ok": budgets.all_ok(found)}, results_dir
    )
    print(f"\nwritten {path}")
    return 0 if budgets.all_ok(found) else 1


if __name__ == "__main__":
    main()
