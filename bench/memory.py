"""`ricochet bench memory`: the RSS of one real Granian edge worker with 100,000 links cached.

1. An embedded Redis of its own; N campaign-shaped link records (UUIDs, a destination with
   a query, three UTM values: what `control.links.state.record` makes of a bulk-created
   link) written into the projection by the relay's own `Projector`, so keys, hash fields
   (`v`, `r`) and encoding are exactly what production edges read.
2. `ricochet edge` with one Granian worker, a cache of at least N entries and a TTL longer
   than the run (nothing expires while we count), capture on as in production.
3. The worker's RSS (the Granian worker child, not the parent) right after it is ready,
   again after a first 1 % of the links were visited (code paths warm, modules imported),
   and after every link was visited once by GET (aiohttp, keep-alive connections). The
   edge's own `ricochet_edge_cached_links` must then say N.

Budget (design.md): <= 120 MB RSS per worker with 100,000 links cached. MB per 1,000 links
is the growth from the warm point to the end, over the links visited in between.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import budgets, report
from bench.budgets import Check
from bench.stack import ROOT, bench_env, parse_edge_metrics
from ricochet import procs

Say = Callable[[str], None]
HOST = "localhost"  # the edge's default domain
WARM_FRACTION = 0.01
PROJECT_BATCH = 1000  # messages per Projector.apply, as the relay applies an outbox batch


@dataclass(frozen=True)
class Config:
    links: int | None = None  # None: the budget's
    concurrency: int = 32  # connections visiting
    profile: str = "full"
    results_dir: Path = field(default_factory=lambda: report.RESULTS_DIR)


def upsert_messages(run: str, start: int, count: int) -> list[dict[str, Any]]:
    """Projection messages as `control.links.state.upsert_message` writes them to the outbox
    for links made by `bench/seed.py`'s bulk items (same destinations, UTM values)."""
    import msgspec

    from shared.keys import link_key
    from shared.records import LinkRecord

    workspace, domain = str(uuid.uuid4()), str(uuid.uuid4())
    out = []
    for i in range(start, start + count):
        record = LinkRecord(
            link_id=str(uuid.uuid4()),
            workspace_id=workspace,
            domain_id=domain,
            version=1,
            destination=f"https://brand{i % 5}.example/launch?ref={i}",
            utm={
                "utm_source": f"channel-{i % 10}",
                "utm_medium": "cpc",
                "utm_campaign": f"brand{i % 5}-q2",
            },
        )
        out.append(
            {
                "op": "upsert",
                "key": link_key(HOST, slug(run, i)),
                "version": 1,
                "record": msgspec.to_builtins(record),
            }
        )
    return out


def slug(run: str, i: int) -> str:
    return f"m{run}-{i}"


async def _project(redis_url: str, run: str, links: int, say: Say) -> float:
    from redis.asyncio import Redis

    from control.relay.projector import Projector

    redis = Redis.from_url(redis_url)
    started = time.perf_counter()
    try:
        projector = Projector(redis)
        gate = asyncio.Semaphore(8)
        done = 0

        async def batch(start: int) -> None:
            nonlocal done
            async with gate:
                await projector.apply(
                    upsert_messages(run, start, min(PROJECT_BATCH, links - start))
                )
                done += min(PROJECT_BATCH, links - start)
                if done % (links // 10 or 1) < PROJECT_BATCH or done == links:
                    say(f"  projected {done:,} / {links:,}")

        await asyncio.gather(*(batch(s) for s in range(0, links, PROJECT_BATCH)))
        keys = await redis.dbsize()
    finally:
        await redis.aclose()
    if keys < links:
        raise RuntimeError(f"the projection holds {keys:,} keys, expected {links:,}")
    return time.perf_counter() - started


async def _visit(edge_url: str, slugs: list[str], concurrency: int, say: Say) -> dict[str, Any]:
    """GET every slug once over `concurrency` keep-alive connections; status counts."""
    import aiohttp

    statuses: dict[int, int] = {}
    failures: dict[str, int] = {}
    queue = iter(slugs)
    done = 0
    step = max(1, len(slugs) // 10)
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {
        "Host": HOST,
        "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    }
    async with aiohttp.ClientSession(edge_url, connector=connector, headers=headers) as http:

        async def worker() -> None:
            nonlocal done
            for s in queue:
                try:
                    async with http.get(f"/{s}", allow_redirects=False) as response:
                        await response.read()
                        statuses[response.status] = statuses.get(response.status, 0) + 1
                except aiohttp.ClientError as exc:
                    name = type(exc).__name__
                    failures[name] = failures.get(name, 0) + 1
                done += 1
                if done % step == 0:
                    rate = done / (time.perf_counter() - started)
                    say(f"  visited {done:,} / {len(slugs):,} ({rate:,.0f}/s)")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {
        "visits": len(slugs),
        "seconds": seconds,
        "per_second": len(slugs) / seconds if seconds else 0.0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "failures": failures,
        "errors": sum(v for k, v in statuses.items() if k != 302) + sum(failures.values()),
    }


def cache_footprint_mb(messages: list[dict[str, Any]]) -> float:
    """MiB the edge's own LocalCache takes in this process for these records, decoded from
    Redis bytes as the edge decodes them: how much of the worker's growth is the cache."""
    import gc
    import tracemalloc

    import msgspec

    from edge.cache import LocalCache
    from shared.keys import LINK_PREFIX, link_key
    from shared.records import LinkRecord, decode_link, encode_link

    raw = [(m["key"], encode_link(msgspec.convert(m["record"], LinkRecord))) for m in messages]
    cache = LocalCache(len(raw), 3600, 2)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key, data in raw:
            # The key as the edge builds it per request: a fresh string, counted here.
            domain, slug_ = key.removeprefix(LINK_PREFIX).split("/", 1)
            cache.put(link_key(domain, slug_), decode_link(data))
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return used / 2**20


def worker_pid(edge: subprocess.Popen[bytes], deadline: float) -> int:
    """The Granian worker serving requests: the edge parent's (only) child process."""
    while time.monotonic() < deadline:
        try:
            children = psutil.Process(edge.pid).children(recursive=True)
        except psutil.Error:
            children = []
        if len(children) == 1:
            return int(children[0].pid)
        if len(children) > 1:
            raise RuntimeError(f"expected one Granian worker, found {len(children)}")
        time.sleep(0.1)
    raise RuntimeError("the edge started no Granian worker")


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process from /proc, in MiB; psutil elsewhere."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        fields = {}
        for line in status.read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = float(value.split()[0]) / 1024  # kB
        return {"rss_mb": fields["VmRSS"], "peak_mb": fields["VmHWM"]}
    rss = psutil.Process(pid).memory_info().rss / 2**20
    return {"rss_mb": rss, "peak_mb": rss}


def _metrics(edge_url: str) -> dict[str, float]:
    import httpx2 as httpx

    return parse_edge_metrics(httpx.get(f"{edge_url}/_/metrics", timeout=10).text)


def _wait_ready(edge_url: str, edge: subprocess.Popen[bytes], deadline: float) -> None:
    """Until the worker answers and has subscribed to invalidations (it clears its cache
    when the subscription is confirmed, so visits before that could be thrown away)."""
    import httpx2 as httpx

    while time.monotonic() < deadline:
        if edge.poll() is not None:
            raise RuntimeError("the edge exited while starting")
        try:
            body = httpx.get(f"{edge_url}/_/readyz", timeout=2).json()
            if body.get("status") == "ok" and body.get("invalidations"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError("the edge did not become ready")


def _wait_cached(edge_url: str, links: int, deadline: float) -> dict[str, float]:
    """The edge's metrics once every link is cached and every click has left the buffer."""
    metrics = _metrics(edge_url)
    while time.monotonic() < deadline:
        if metrics.get("cached_links", 0) >= links and metrics.get("clicks_buffered", 0) == 0:
            break
        time.sleep(0.2)
        metrics = _metrics(edge_url)
    return metrics


def measure(cfg: Config, links: int, workdir: Path, say: Say = print) -> dict[str, Any]:
    from ricochet.embedded import EmbeddedRedis

    store = EmbeddedRedis(workdir / "redis", durable=False)
    redis_url = store.start()
    edge: subprocess.Popen[bytes] | None = None
    try:
        run = uuid.uuid4().hex[:6]
        say(f"projecting {links:,} link records into Redis (the relay's Projector) ...")
        project_s = asyncio.run(_project(redis_url, run, links, say))
        port = procs.free_port(None)
        edge_url = f"http://127.0.0.1:{port}"
        env = bench_env(
            {
                "RICOCHET_REDIS_URL": redis_url,
                "RICOCHET_EDGE_PORT": str(port),
                "RICOCHET_EDGE_WORKERS": "1",
                "RICOCHET_CACHE_SIZE": str(max(links, 100_000)),
                "RICOCHET_CACHE_TTL_S": "3600",  # nothing expires while we count
                "RICOCHET_SPOOL_DIR": str(workdir / "spool"),
                "RICOCHET_LOG_LEVEL": "warning",
            }
        )
        log = workdir / "edge.log"
        say("starting `ricochet edge` (one Granian worker) ...")
        edge = procs.spawn([sys.executable, "-m", "ricochet", "edge"], log=log, env=env, cwd=ROOT)
        deadline = time.monotonic() + 60
        if not procs.wait_port(port, deadline, edge):
            raise RuntimeError(f"the edge did not start:\n{procs.tail(log)}")
        _wait_ready(edge_url, edge, deadline)
        pid = worker_pid(edge, deadline)
        idle = memory_mb(pid)
        say(f"  worker pid {pid}: {idle['rss_mb']:.1f} MB RSS, ready, nothing visited yet")
        slugs = [slug(run, i) for i in range(links)]
        warm = max(1, int(links * WARM_FRACTION))
        say(f"visiting {warm:,} links to warm the code paths ...")
        first = asyncio.run(_visit(edge_url, slugs[:warm], cfg.concurrency, lambda _: None))
        _wait_cached(edge_url, warm, time.monotonic() + 10)
        warmed = memory_mb(pid)
        say(f"  {warmed['rss_mb']:.1f} MB RSS with {warm:,} links cached")
        say(f"visiting the other {links - warm:,} links once each ...")
        rest = asyncio.run(_visit(edge_url, slugs[warm:], cfg.concurrency, say))
        metrics = _wait_cached(edge_url, links, time.monotonic() + 30)
        loaded = memory_mb(pid)
        parent = memory_mb(edge.pid)
        say(
            f"  {loaded['rss_mb']:.1f} MB RSS with {metrics.get('cached_links', 0):,.0f} "
            "links cached"
        )
        say("measuring the cache's own structures in this process (tracemalloc) ...")
        structures = cache_footprint_mb(upsert_messages(run, 0, links))
    finally:
        if edge is not None:
            procs.stop(edge, signal.SIGTERM)  # the parent stops its worker
        store.stop()
    result = summarise(links, idle, warmed, loaded, parent, first, rest, metrics, project_s, warm)
    result["cache_structures_mb"] = structures
    return result


def summarise(
    links: int,
    idle: dict[str, float],
    warmed: dict[str, float],
    loaded: dict[str, float],
    parent: dict[str, float],
    first: dict[str, Any],
    rest: dict[str, Any],
    metrics: dict[str, float],
    project_s: float,
    warm: int,
) -> dict[str, Any]:
    grown = loaded["rss_mb"] - warmed["rss_mb"]
    visited = links - warm
    return {
        "links": links,
        "rss_mb": {
            "started": idle["rss_mb"],
            "warm": warmed["rss_mb"],
            "loaded": loaded["rss_mb"],
            "peak": loaded["peak_mb"],
            "parent": parent["rss_mb"],
        },
        "warm_links": warm,
        "mb_per_1000_links": grown / visited * 1000 if visited else 0.0,
        "cached_links": metrics.get("cached_links", 0.0),
        "clicks_captured": metrics.get("clicks_captured", 0.0),
        "clicks_dropped": metrics.get("clicks_dropped", 0.0),
        "visits": {"warm": first, "rest": rest},
        "errors": first["errors"] + rest["errors"],
        "project_seconds": project_s,
    }


def checks(result: dict[str, Any], budget: dict[str, float]) -> list[Check]:
    # The budget is for a full cache: a smaller run shows its figure but proves nothing.
    judged = result["links"] >= budget["links"]
    note = "" if judged else f"fewer links than the budget's {budget['links']:,.0f}"
    return [
        Check(
            f"worker RSS with {result['links']:,} links cached",
            result["rss_mb"]["loaded"],
            budget["rss_mb"],
            "<=",
            " MB",
            judged,
            note,
        ),
        Check("links in the worker's cache", result["cached_links"], result["links"], ">="),
        Check("visit errors", result["errors"], 0, "<="),
    ]


def render(result: dict[str, Any]) -> str:
    rss = result["rss_mb"]
    rows = [
        ["started, nothing visited", "0", rss["started"]],
        [
            f"warm ({result['warm_links']:,} links visited)",
            f"{result['warm_links']:,}",
            rss["warm"],
        ],
        ["every link visited once", f"{result['cached_links']:,.0f}", rss["loaded"]],
    ]
    rest = result["visits"]["rest"]
    return "\n".join(
        [
            f"edge memory: one Granian worker, {result['links']:,} links in the Redis projection",
            report.table(["point", "links cached", "worker RSS MB"], rows),
            f"{result['mb_per_1000_links']:.3f} MB per 1,000 links cached "
            f"(growth from the warm point); worker peak {rss['peak']:.1f} MB, "
            f"Granian parent {rss['parent']:.1f} MB",
            f"of which the cache's own structures (key, entry, decoded LinkRecord, measured "
            f"with tracemalloc outside the edge): {result.get('cache_structures_mb', 0):.1f} MB "
            f"for {result['links']:,} links",
            f"visits: {rest['per_second']:,.0f}/s, statuses {rest['statuses']}, "
            f"{result['clicks_captured']:,.0f} clicks captured, "
            f"{result['clicks_dropped']:,.0f} dropped; projection written in "
            f"{result['project_seconds']:.1f} s",
        ]
    )


def run(cfg: Config, say: Say = print) -> int:
    budget = budgets.load(cfg.profile)["memory"]
    links = cfg.links or int(budget["links"])
    workdir = Path(tempfile.mkdtemp(prefix="ricochet-bench-memory-"))
    try:
        result = measure(cfg, links, workdir, say)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["config"] = {**dataclasses.asdict(cfg), "results_dir": str(cfg.results_dir)}
    result["config"]["links"] = links
    found = checks(result, budget)
    say("")
    say(render(result))
    say("")
    say(report.checks_table(found))
    result["checks"] = found
    result["ok"] = budgets.all_ok(found)
    path = report.write("memory", result, cfg.results_dir)
    say(f"\nwritten {path}")
    return 0 if result["ok"] else 1
