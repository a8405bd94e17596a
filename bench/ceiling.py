"""Ceiling comparison: the edge against a bare ASGI app answering a constant 302.

Both run under Granian with the same settings (`ricochet.cli._serve`), side by side in one
run, driven by the same load generator (wrk; oha when wrk is missing), in alternating
rounds so machine noise hits all of them alike. Reported:

- edge (cache-hot, capture on) / bare       budget >= 0.60
- edge (cache-hot, capture off) / bare      for reference
- capture cost = 1 - on / off               budget <= 0.10
- latency percentiles and worker RSS

    .venv/bin/python -m bench.ceiling --rounds 3 --seconds 8

Exits 1 when a budget is missed; writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from ricochet import procs
from ricochet.embedded import EmbeddedRedis
from shared.keys import link_key
from shared.records import LinkRecord, encode_link

BUDGET_RATIO = 0.60
BUDGET_CAPTURE_COST = 0.10
SLUG = "hot"


def _wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            "Host: localhost",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for q in ("50", "90", "99"):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if m:
            value = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            lat[f"p{q}_ms"] = value
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return {
        "rps": rps,
        **lat,
        "bad_responses": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def _oha(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "oha",
            "-z",
            f"{seconds}s",
            "-c",
            str(connections),
            "--no-tui",
            "-j",
            "--redirect",
            "0",
            "-H",
            "Host: localhost",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    pct = data.get("latencyPercentiles", {})
    return {
        "rps": data["summary"]["requestsPerSec"],
        "p50_ms": pct.get("p50", 0) * 1000,
        "p90_ms": pct.get("p90", 0) * 1000,
        "p99_ms": pct.get("p99", 0) * 1000,
        "bad_responses": float(
            sum(
                v
                for k, v in data.get("statusCodeDistribution", {}).items()
                if not k.startswith("3")
            )
        ),
        "socket_errors": float(len(data.get("errorDistribution", {}))),
    }


def _driver() -> tuple[str, object]:
    if shutil.which("wrk"):
        return "wrk", _wrk
    if shutil.which("oha"):
        return "oha", _oha
    sys.exit(
        "bench.ceiling needs wrk or oha on PATH (Debian: apt install wrk). "
        "`ricochet bench redirect` drives load with locust when neither is present."
    )


def _start(
    name: str, argv: list[str], env: dict[str, str], port: int, logs: Path
) -> subprocess.Popen[bytes]:
    proc = procs.spawn(argv, log=logs / f"{name}.log", env=env)
    if not procs.wait_port(port, time.monotonic() + 30, proc):
        raise SystemExit(f"{name} did not start:\n{procs.tail(logs / f'{name}.log')}")
    return proc


def _rss_mb(proc: subprocess.Popen[bytes]) -> float:
    parent = psutil.Process(proc.pid)
    workers = parent.children(recursive=True) or [parent]
    return max(w.memory_info().rss for w in workers) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="Granian workers per server [1]")
    args = parser.parse_args()
    tool, drive = _driver()
    home = Path(tempfile.mkdtemp(prefix="ricochet-bench-"))
    logs = home / "logs"
    store = EmbeddedRedis(home, durable=False)
    redis_url = store.start()
    import redis

    client = redis.Redis.from_url(redis_url)
    record = LinkRecord(
        "00000000-0000-4000-8000-000000000001", "ws", "dom", 1, "https://example.com/landing"
    )
    client.hset(link_key("localhost", SLUG), mapping={"v": 1, "r": encode_link(record)})
    python = sys.executable
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("RICOCHET_")}
    servers: dict[str, subprocess.Popen[bytes]] = {}
    names = ("bare", "edge_capture_on", "edge_capture_off")
    ports = {name: procs.free_port(None) for name in names}
    try:
        servers["bare"] = _start(
            "bare",
            [
                python,
                "-m",
                "bench.serve",
                "bench.bare_app:create_app",
                str(ports["bare"]),
                str(args.workers),
            ],
            base_env,
            ports["bare"],
            logs,
        )
        for name, capture in (("edge_capture_on", "true"), ("edge_capture_off", "false")):
            env = {
                **base_env,
                "RICOCHET_REDIS_URL": redis_url,
                "RICOCHET_CAPTURE": capture,
                "RICOCHET_SPOOL_DIR": str(home / f"spool-{name}"),
                "RICOCHET_EDGE_PORT": str(ports[name]),
                "RICOCHET_EDGE_WORKERS": str(args.workers),
            }
            servers[name] = _start(name, [python, "-m", "ricochet", "edge"], env, ports[name], logs)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in ports}
        for port in ports.values():  # warm-up: caches filled, code paths hot
            drive(f"http://127.0.0.1:{port}/{SLUG}", 2, args.connections)  # type: ignore[operator]
        for r in range(args.rounds):
            for name, port in ports.items():
                result = drive(f"http://127.0.0.1:{port}/{SLUG}", args.seconds, args.connections)  # type: ignore[operator]
                results[name].append(result)
                print(
                    f"round {r + 1} {name:<18} {result['rps']:>9.0f} req/s  "
                    f"p50 {result.get('p50_ms', 0):.2f} ms  p99 {result.get('p99_ms', 0):.2f} ms",
                    flush=True,
                )
        rss = {name: _rss_mb(proc) for name, proc in servers.items()}
    finally:
        for proc in servers.values():
            procs.stop(proc, signal.SIGTERM)
        store.stop()
        shutil.rmtree(home, ignore_errors=True)

    median = {name: statistics.median(r["rps"] for r in runs) for name, runs in results.items()}
    ratio_on = median["edge_capture_on"] / median["bare"]
    ratio_off = median["edge_capture_off"] / median["bare"]
    capture_cost = 1 - median["edge_capture_on"] / median["edge_capture_off"]
    bad = sum(r["bad_responses"] + r["socket_errors"] for runs in results.values() for r in runs)
    ok = ratio_on >= BUDGET_RATIO and capture_cost <= BUDGET_CAPTURE_COST and bad == 0
    print()
    print(f"{'server':<18}{'median req/s':>14}{'p50 ms':>9}{'p99 ms':>9}{'RSS MB':>9}")
    for name in ports:
        p50 = statistics.median(r.get("p50_ms", 0) for r in results[name])
        p99 = statistics.median(r.get("p99_ms", 0) for r in results[name])
        print(f"{name:<18}{median[name]:>14.0f}{p50:>9.2f}{p99:>9.2f}{rss[name]:>9.1f}")
    print(f"\nedge (capture on) / bare  = {ratio_on:.2f}   budget >= {BUDGET_RATIO}")
    print(f"edge (capture off) / bare = {ratio_off:.2f}")
    print(f"capture cost              = {capture_cost:.1%}  budget <= {BUDGET_CAPTURE_COST:.0%}")
    print(f"errors                    = {bad:.0f}")
    print("verdict:", "ok" if ok else "BUDGET MISSED")
    out = Path("bench/results") / f"ceiling-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "tool": tool,
                "rounds": args.rounds,
                "seconds": args.seconds,
                "connections": args.connections,
                "workers": args.workers,
                "cpus": os.cpu_count(),
                "median_rps": median,
                "ratio_capture_on": ratio_on,
                "ratio_capture_off": ratio_off,
                "capture_cost": capture_cost,
                "rss_mb": rss,
                "runs": results,
                "ok": ok,
                "budgets": {"ratio": BUDGET_RATIO, "capture_cost": BUDGET_CAPTURE_COST},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written {out}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
