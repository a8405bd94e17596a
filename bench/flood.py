"""`ricochet bench flood`: a scan of unknown slugs and hosts while visitors follow real links.

1. A stack of its own (or `--dev-json`), 1,000 links (one bulk call), the projection marker
   awaited, 20 of the links warmed into the edge's cache.
2. Quiet: visitors follow the 20 links at `--visit-rate` for as long as the flood will last.
3. Flood: the same visitors, plus 20,000 distinct unknown slugs and 2,000 random `Host`s at
   `--flood-rate`. The edge's `control_fallbacks` must not move (ADR 0013), every scan
   request must be a 404, and the visitors' p99 must stay within 1.5 x the quiet p99.
4. Flush: FLUSHALL on the stack's Redis, a scan again; the time until the relay has
   rebuilt the projection and set the marker, and the control-plane look-ups meanwhile
   (capped per edge worker), are reported; visitors must keep getting 302s throughout.

Each phase's requests are scheduled at a fixed rate over keep-alive connections (aiohttp);
latency is from sending to the answer's end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench import budgets, report
from bench.budgets import Check
from bench.stack import LocalStack, Target, given_or_own, parse_edge_metrics

Say = Callable[[str], None]
KNOWN = 20


@dataclass
class Config:
    links: int = 1000
    slugs: int = 20_000
    hosts: int = 2_000
    visit_rate: float = 400.0
    flood_rate: float = 2000.0
    profile: str = "full"
    target: Target | None = None
    results_dir: Path = report.RESULTS_DIR
    settings: dict[str, str] = field(default_factory=dict)


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)  # the visitors', seconds
    visitor_statuses: dict[int, int] = field(default_factory=dict)
    scan_statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "visitors": report.summary(x * 1000 for x in self.latencies),
            "visitor_statuses": self.visitor_statuses,
            "scan_statuses": self.scan_statuses,
            "seconds": self.seconds,
            "cpu": self.cpu,
        }

    def edge_us_per_request(self) -> float | None:
        cores = self.cpu.get("ours_cores", {}).get("edge")
        total = len(self.latencies) + sum(self.scan_statuses.values())
        if cores is None or not total:
            return None
        return float(cores * self.cpu["seconds"] / total * 1e6)


async def _paced(
    session: Any,
    urls: list[tuple[str, dict[str, str]]],
    rate: float,
    seconds: float,
    phase: Phase,
    statuses: dict[int, int],
    timed: bool,
    connections: int,
) -> None:
    """Request `urls` round-robin at `rate` for `seconds` (or until each was sent once
    when `seconds` is 0), over `connections` concurrent senders."""
    start = time.perf_counter() + 0.05
    total = int(rate * seconds) if seconds else len(urls)

    async def sender(offset: int) -> None:
        for n in range(offset, total, connections):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            url, headers = urls[n % len(urls)]
            sent = time.perf_counter()
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                await response.read()
                status = response.status
            if timed:
                phase.latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(sender(i) for i in range(connections)))


async def _phase(
    edge: str, known: list[str], scan: list[tuple[str, dict[str, str]]], cfg: Config
) -> Phase:
    import aiohttp

    phase = Phase()
    seconds = (cfg.slugs + cfg.hosts) / cfg.flood_rate
    visits: list[tuple[str, dict[str, str]]] = [(f"{edge}/{slug}", {}) for slug in known]
    connector = aiohttp.TCPConnector(limit=0)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        jobs = [
            _paced(session, visits, cfg.visit_rate, seconds, phase, phase.visitor_statuses, True, 8)
        ]
        if scan:
            jobs.append(
                _paced(session, scan, cfg.flood_rate, 0, phase, phase.scan_statuses, False, 32)
            )
        await asyncio.gather(*jobs)
    phase.seconds = time.perf_counter() - started
    return phase


def _metric(http: httpx.Client, edge: str, name: str) -> float:
    time.sleep(1.2)  # workers mirror their counters once a second
    return parse_edge_metrics(http.get(f"{edge}/_/metrics").text).get(name, 0.0)


def _watched(stack: LocalStack | None, go: Callable[[], Phase]) -> Phase:
    """Run a phase, recording the CPU every part of the stack (and the generator) used."""
    watch = report.CpuWatch()
    watch.start()
    phase = go()
    phase.cpu = watch.stop(stack.pids() if stack is not None else {})
    return phase


def _marker_present(redis_url: str) -> bool:
    import redis

    from shared.keys import PROJECTION_MARKER

    with redis.Redis.from_url(redis_url) as client:
        return bool(client.exists(PROJECTION_MARKER))


def _wait_marker(redis_url: str, timeout: float) -> float | None:
    """Monotonic time the marker is seen, polling every 10 ms; None past the timeout."""
    deadline = time.monotonic() + timeout
    while not _marker_present(redis_url):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    return time.monotonic()


def _scan(
    host: str, prefix: str, slugs: int, hosts: int, edge: str
) -> list[tuple[str, dict[str, str]]]:
    out = [(f"{edge}/{prefix}-{uuid.uuid4().hex[:12]}", {"host": host}) for _ in range(slugs)]
    out += [(f"{edge}/live-1", {"host": f"{uuid.uuid4().hex[:10]}.example"}) for _ in range(hosts)]
    return out


def run(cfg: Config, say: Say = print) -> int:
    budget = budgets.load(cfg.profile)["flood"]
    with (
        given_or_own(cfg.target, cfg.settings) as (target, stack),
        httpx.Client(timeout=60, follow_redirects=False) as http,
    ):
        redis_url = target.redis_url
        if not redis_url:
            raise SystemExit("bench flood needs the stack's Redis URL (dev.json redis_url)")
        edge = target.edge_url
        host = edge.split("//", 1)[1]
        say(f"creating {cfg.links:,} links ...")
        tag = uuid.uuid4().hex[:6]
        for first in range(0, cfg.links, 1000):
            items = [
                {"destination": f"https://example.com/{n}", "slug": f"fl-{tag}-{n}"}
                for n in range(first, min(cfg.links, first + 1000))
            ]
            response = http.post(
                f"{target.control_url}/api/v1/links/bulk",
                json={"items": items},
                headers=target.auth,
            )
            response.raise_for_status()
        last = f"{edge}/fl-{tag}-{cfg.links - 1}"
        deadline = time.monotonic() + 30
        while http.get(last).status_code != 302:
            if time.monotonic() > deadline:
                raise SystemExit("links never reached the edge")
            time.sleep(0.05)
        if _wait_marker(redis_url, 60) is None:
            raise SystemExit("the projection never became complete (no marker after 60 s)")
        known = [f"fl-{tag}-{n}" for n in range(KNOWN)]
        for slug in known:
            http.get(f"{edge}/{slug}")
        seconds = (cfg.slugs + cfg.hosts) / cfg.flood_rate
        say(f"quiet: visitors at {cfg.visit_rate:,.0f}/s for {seconds:.1f} s ...")
        quiet = _watched(stack, lambda: asyncio.run(_phase(edge, known, [], cfg)))
        before = _metric(http, edge, "control_fallbacks")
        say(
            f"flood: {cfg.slugs:,} unknown slugs + {cfg.hosts:,} unknown hosts at "
            f"{cfg.flood_rate:,.0f}/s, visitors as before ..."
        )
        scan = _scan(host, "nope", cfg.slugs, cfg.hosts, edge)
        flood = _watched(stack, lambda: asyncio.run(_phase(edge, known, scan, cfg)))
        during = _metric(http, edge, "control_fallbacks") - before

        say("flush: FLUSHALL, then a scan again while the relay rebuilds ...")
        import redis

        with redis.Redis.from_url(redis_url) as client:
            client.flushall()
        flushed = time.monotonic()
        back: list[float | None] = []
        watcher = threading.Thread(target=lambda: back.append(_wait_marker(redis_url, 120)))
        watcher.start()
        small = dataclasses.replace(cfg, slugs=cfg.slugs // 4, hosts=0)
        after = asyncio.run(_phase(edge, known, _scan(host, "again", small.slugs, 0, edge), small))
        watcher.join()
        rebuilt_s = back[0] - flushed if back and back[0] is not None else None
        flush_fallbacks = _metric(http, edge, "control_fallbacks") - before - during

    q99, f99 = (
        report.percentile(sorted(quiet.latencies), 0.99),
        report.percentile(sorted(flood.latencies), 0.99),
    )
    expected_scan = cfg.slugs + cfg.hosts
    visitor_errors = sum(
        n for phase in (quiet, flood, after) for s, n in phase.visitor_statuses.items() if s != 302
    )
    scan_errors = expected_scan - flood.scan_statuses.get(404, 0)
    rows = [
        ["quiet", *_row(quiet)],
        ["flood", *_row(flood)],
        ["after FLUSHALL", *_row(after)],
    ]
    say(
        report.table(
            ["phase", "visitor p50 ms", "p99 ms", "max ms", "visits", "scan answers"], rows
        )
    )
    for name, phase in (("quiet", quiet), ("flood", flood)):
        if phase.cpu:
            per = phase.edge_us_per_request()
            say(
                f"{name}: edge {'-' if per is None else f'{per:.0f}'} µs CPU per request; "
                + report.describe_cpu(phase.cpu)
            )
    say(
        f"control-plane look-ups: {during:.0f} during the flood, {flush_fallbacks:.0f} after "
        f"FLUSHALL; projection authoritative again after "
        f"{'-' if rebuilt_s is None else f'{rebuilt_s:.2f} s'}"
    )
    checks = [
        Check("control-plane look-ups during the flood", during, budget["control_fallbacks"], "<="),
        Check("scan answers other than 404", float(scan_errors), budget["scan_errors"], "<="),
        Check(
            "visitor answers other than 302", float(visitor_errors), budget["visitor_errors"], "<="
        ),
        Check(
            "visitor p99 flood / quiet", f99 / q99 if q99 else None, budget["p99_ratio"], "<=", "x"
        ),
        Check("rebuilt after FLUSHALL", rebuilt_s, budget["rebuild_s"], "<=", " s"),
    ]
    say(report.checks_table(checks))
    path = report.write(
        "flood",
        {
            "config": {
                k: v
                for k, v in dataclasses.asdict(cfg).items()
                if k not in ("target", "results_dir")
            },
            "quiet": quiet.summary(),
            "flood": flood.summary(),
            "after_flush": after.summary(),
            "control_fallbacks": {"flood": during, "after_flush": flush_fallbacks},
            "rebuilt_s": rebuilt_s,
            "checks": [c.as_dict() for c in checks],
        },
        cfg.results_dir,
    )
    say(f"written {path}")
    return 0 if budgets.all_ok(checks) else 1


def _row(phase: Phase) -> list[object]:
    ordered = sorted(x * 1000 for x in phase.latencies)
    scan = ", ".join(f"{n:,} x {s}" for s, n in sorted(phase.scan_statuses.items())) or "-"
    return [
        report.percentile(ordered, 0.5),
        report.percentile(ordered, 0.99),
        ordered[-1] if ordered else float("nan"),
        len(ordered),
        scan,
    ]
