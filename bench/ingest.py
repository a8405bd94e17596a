"""`ricochet bench ingest`: clicks into PostgreSQL through the real `ricochet ingest` process.

Clicks are written straight into the `clicks:{n}` streams, shaped as the edge writes them
(msgpack batches, realistic user agents and referrers), so only ingest is measured:

1. Lag at a fixed rate (budget: p99 <= 2 s at 2,000 clicks/s): every flush interval one
   batch goes to the next shard, as an edge worker does, its clicks spread over the
   interval before it and shaped like `ricochet bench redirect`'s visitors (a Zipf choice
   among `lag_links` links with campaign UTM values, its user agents, referrers, QR scans
   and bots), so the rollups see as many distinct keys as real traffic makes. One click
   of each batch is for a link of its own (a marker), and ingest advances that link's
   `link_stats` row in the transaction that stores the batch, so the moment the row
   appears is the moment the batch became visible; a click's lag is that moment minus the
   click's own time (flush wait included).
2. Throughput from a backlog (budget: >= 20,000 clicks/s): N clicks written as fast as
   Redis takes them, timed from the first write until all are stored.

Each phase also reports the CPU it cost per click (budget: ingest + PostgreSQL <= 100 us
at the steady rate): the ingest process's, and that of every process of the PostgreSQL
cluster (postmaster, backends, background workers) but the bench's own polling
connection, which is shown apart; and, before both, what the two use idle.

It writes synthetic clicks (for random link ids) into the target's database: use a stack
of the bench's own (the default) or a disposable one, never production.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import budgets, report
from bench.budgets import Check
from bench.stack import LocalStack, Target, given_or_own

Say = Callable[[str], None]
AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
REFERRERS = ["", "https://l.instagram.com/", "https://t.co/", "https://www.google.com/"]
POLL_S = 0.01
SHARDS = 4  # RICOCHET_CLICK_SHARDS of the stack (the default)
IDLE_S = 5.0  # CPU of ingest and PostgreSQL with no clicks, measured before the phases
CPU_US_PER_CLICK = 100.0  # design.md; budgets.toml [ingest] cpu_us_per_click overrides it


@dataclass(frozen=True)
class Config:
    clicks: int = 100_000  # throughput phase
    batch: int = 1024  # clicks per stream entry in the throughput phase (the edge's maximum)
    lag_rate: float | None = None  # None: the budget's
    lag_seconds: float = 30.0
    flush_ms: float = 50.0  # RICOCHET_CAPTURE_FLUSH_MS of the edge being imitated
    links: int = 500  # links the throughput phase's clicks spread over
    lag_links: int = 10_000  # links the lag phase's visitors choose among (Zipf, as redirect's)
    zipf: float = 1.0
    profile: str = "full"
    settings: dict[str, str] = field(default_factory=dict)
    target: Target | None = None
    results_dir: Path = report.RESULTS_DIR


def _event(ms: int, link: str, workspace: str, domain: str, n: int) -> Any:
    from shared.clicks import ClickEvent
    from shared.ids import uuid7

    return ClickEvent(
        uuid7().hex,
        ms,
        link,
        workspace,
        domain,
        "qr" if n % 10 == 0 else "link",
        AGENTS[n % len(AGENTS)],
        REFERRERS[n % len(REFERRERS)],
        "",
        f"81.2.69.{n % 250}",
        -1,
        "newsletter",
        "email",
        "spring",
        False,
    )


Roles = Callable[[], dict[str, set[int]]]


class PhaseCpu:
    """CPU seconds (user + system, from /proc via psutil) each role's processes used
    between `start()` and `stop()`. A process that appeared meanwhile counts whole."""

    def __init__(self, roles: Roles) -> None:
        self.roles = roles
        self._before: dict[int, float] = {}
        self._started = 0.0

    def start(self) -> None:
        self._before = {pid: cpu for pids in self._sample().values() for pid, cpu in pids.items()}
        self._started = time.monotonic()

    def stop(self) -> dict[str, float]:
        seconds = max(time.monotonic() - self._started, 1e-6)
        used = {
            role: sum(max(0.0, cpu - self._before.get(pid, 0.0)) for pid, cpu in pids.items())
            for role, pids in self._sample().items()
        }
        return {"seconds": seconds, **used}

    def _sample(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for role, pids in self.roles().items():
            out[role] = {}
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    t = psutil.Process(pid).cpu_times()
                    out[role][pid] = t.user + t.system
        return out


def cluster_roles(stack: LocalStack | None, bench_backend: int) -> Roles:
    """Where to look, asked afresh at each sample: the stack's ingest process (none known
    for a stack of someone else's), the PostgreSQL cluster (the parent of the bench's own
    backend and all its children: nothing when the server is not on this machine) without
    that backend, and that backend alone."""
    try:
        postmaster: int | None = psutil.Process(bench_backend).ppid()
    except psutil.Error:
        postmaster = None

    def roles() -> dict[str, set[int]]:
        cluster: set[int] = set()
        if postmaster is not None:
            with contextlib.suppress(psutil.Error):
                children = psutil.Process(postmaster).children(recursive=True)
                cluster = {postmaster} | {c.pid for c in children}
        return {
            "ingest": stack.pids()["ingest"] if stack else set(),
            "postgres": cluster - {bench_backend},
            "bench_conn": cluster & {bench_backend},
        }

    return roles


def per_click(cpu: dict[str, float], clicks: int) -> dict[str, Any]:
    """A phase's CPU as cores and as microseconds per click."""
    out: dict[str, Any] = dict(cpu)
    seconds = cpu["seconds"]
    for role in ("ingest", "postgres", "bench_conn"):
        out[f"{role}_cores"] = cpu[role] / seconds
        out[f"{role}_us_per_click"] = cpu[role] / clicks * 1e6 if clicks else math.nan
    out["us_per_click"] = out["ingest_us_per_click"] + out["postgres_us_per_click"]
    return out


class Visible:
    """Polls link_stats for the marker links of batches not yet seen stored."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pending: dict[str, float] = {}  # marker link id -> when its batch was written
        self.seen: dict[str, float] = {}  # marker link id -> when its row was first seen

    async def poll(self) -> None:
        if not self.pending:
            return
        ids = [uuid.UUID(link) for link in self.pending]
        cur = await self.conn.execute(
            "SELECT link_id FROM link_stats WHERE link_id = ANY(%s)", (ids,)
        )
        now = time.time()
        for (link_id,) in await cur.fetchall():
            key = str(link_id)
            if key in self.pending:
                del self.pending[key]
                self.seen[key] = now


class Visitors:
    """Clicks as the redirect bench's visitors make them (bench/visits.py's mix)."""

    def __init__(self, cfg: Config, workspace: str, domain: str) -> None:
        from bench import visits

        self.visits = visits
        self.workspace, self.domain = workspace, domain
        self.links = [str(uuid.uuid4()) for _ in range(cfg.lag_links)]
        self.rank = {link: n for n, link in enumerate(self.links)}
        self.mix = visits.Mix(self.links, "bench", zipf=cfg.zipf, qr=0.10, bots=0.05)
        self.rng = random.Random(15)

    def click(self, ms: int, link: str | None = None) -> Any:
        """A visit of a popular link, or of `link` (a marker, never seen before)."""
        from shared.clicks import ClickEvent
        from shared.ids import uuid7

        v, rng = self.visits, self.rng
        link = link or self.mix.popular()
        n = self.rank.get(link, 0)
        roll = rng.random()
        qr = roll < 0.10
        agent = rng.choice(v.PHONES if qr else v.BOTS if roll < 0.15 else v.PHONES + v.DESKTOPS)
        return ClickEvent(
            uuid7().hex,
            ms,
            link,
            self.workspace,
            self.domain,
            "qr" if qr else "link",
            agent,
            "" if qr else rng.choice(v.REFERRERS),
            "",
            "127.0.0.1",  # the redirect bench's visitors are local: the country is ""
            -1,
            f"channel-{n % 10}",  # bench/seed.py's campaign links
            "cpc",
            f"brand{n % 5}-q2",
            False,
        )


async def _lag(cfg: Config, rate: float, redis: Any, conn: Any, say: Say) -> dict[str, Any]:
    from shared.clicks import BATCH_FIELD, encode_batch
    from shared.keys import click_stream

    workspace, domain = str(uuid.uuid4()), str(uuid.uuid4())
    visitors = Visitors(cfg, workspace, domain)
    interval = cfg.flush_ms / 1000
    per_batch = rate * interval
    visible = Visible(conn)
    clicks: dict[str, list[float]] = {}  # batch (its marker link) -> its clicks' times
    written: dict[str, float] = {}
    late: list[float] = []
    stop = asyncio.Event()

    async def poller() -> None:
        while not stop.is_set():
            await visible.poll()
            await asyncio.sleep(POLL_S)
        deadline = time.time() + 30  # the last batches, or those never stored
        while visible.pending and time.time() < deadline:
            await visible.poll()
            await asyncio.sleep(POLL_S)

    polling = asyncio.create_task(poller())
    say(
        f"  lag: {rate:,.0f} clicks/s for {cfg.lag_seconds:.0f} s, flushed every "
        f"{interval:.2f} s, over {cfg.lag_links:,} links (Zipf {cfg.zipf:g})"
    )
    start = time.time()
    carry = 0.0
    n = 0
    shard = 0
    while (due := start + (n + 1) * interval) < start + cfg.lag_seconds:
        await asyncio.sleep(max(0.0, due - time.time()))
        now = time.time()
        late.append(now - due)
        carry += per_batch
        count, carry = int(carry), carry - int(carry)
        n += 1
        if not count:
            continue
        # The clicks arrived over the interval before the flush, as at the edge.
        times = sorted(due - interval * random.random() for _ in range(count))
        marker = str(uuid.uuid4())
        events = [visitors.click(int(t * 1000)) for t in times[1:]]
        events.insert(0, visitors.click(int(times[0] * 1000), marker))
        await redis.xadd(click_stream(shard), {BATCH_FIELD: encode_batch(events)})
        shard = (shard + 1) % SHARDS
        written[marker] = time.time()
        visible.pending[marker] = written[marker]
        clicks[marker] = times
    stop.set()
    await polling
    lost = len(visible.pending)
    from_click = [
        visible.seen[batch] - t for batch, ts in clicks.items() if batch in visible.seen for t in ts
    ]
    from_write = [visible.seen[batch] - written[batch] for batch in visible.seen]
    produced = sum(len(ts) for ts in clicks.values())
    return {
        "rate": rate,
        "seconds": cfg.lag_seconds,
        "clicks": produced,
        "achieved_rate": produced / cfg.lag_seconds,
        "batches": len(clicks),
        "batches_not_visible": lost,
        "links": cfg.lag_links,
        "zipf": cfg.zipf,
        "lag_from_click_s": report.summary(from_click),
        "lag_from_write_s": report.summary(from_write),
        "producer_late_s": report.summary(late),
        "poll_interval_s": POLL_S,
    }


async def _throughput(cfg: Config, redis: Any, conn: Any, say: Say) -> dict[str, Any]:
    from shared.clicks import BATCH_FIELD, encode_batch
    from shared.keys import click_stream

    workspace, domain = str(uuid.uuid4()), str(uuid.uuid4())
    links = [str(uuid.uuid4()) for _ in range(cfg.links)]
    now_ms = int(time.time() * 1000)
    payloads = []
    for start in range(0, cfg.clicks, cfg.batch):
        events = [
            _event(now_ms, links[i % len(links)], workspace, domain, i)
            for i in range(start, min(start + cfg.batch, cfg.clicks))
        ]
        payloads.append(encode_batch(events))
    say(f"  throughput: {cfg.clicks:,} clicks as a backlog of {len(payloads)} entries")
    ids = [uuid.UUID(link) for link in links]
    started = time.perf_counter()
    async with redis.pipeline(transaction=False) as pipe:
        for n, payload in enumerate(payloads):
            pipe.xadd(click_stream(n % SHARDS), {BATCH_FIELD: payload})
        await pipe.execute()
    written_s = time.perf_counter() - started
    stored = 0
    deadline = time.perf_counter() + max(120.0, cfg.clicks / 1000)
    while stored < cfg.clicks and time.perf_counter() < deadline:
        await asyncio.sleep(0.02)
        cur = await conn.execute(
            "SELECT coalesce(sum(clicks), 0) FROM link_stats WHERE link_id = ANY(%s)", (ids,)
        )
        row = await cur.fetchone()
        stored = int(row[0]) if row else 0
    elapsed = time.perf_counter() - started
    return {
        "clicks": cfg.clicks,
        "stored": stored,
        "seconds": elapsed,
        "write_seconds": written_s,
        "per_second": stored / elapsed,
    }


async def _measure(
    cfg: Config, rate: float, target: Target, stack: LocalStack | None, say: Say
) -> dict[str, Any]:
    import psycopg
    from redis.asyncio import Redis

    assert target.database_url is not None
    assert target.redis_url is not None
    redis = Redis.from_url(target.redis_url)
    conn = await psycopg.AsyncConnection.connect(target.database_url, autocommit=True)
    try:
        cpu = PhaseCpu(cluster_roles(stack, conn.info.backend_pid))
        say(f"  idle: {IDLE_S:.0f} s without clicks")
        cpu.start()
        await asyncio.sleep(IDLE_S)
        idle = per_click(cpu.stop(), 0)
        cpu.start()
        lag = await _lag(cfg, rate, redis, conn, say)
        lag["cpu"] = per_click(cpu.stop(), lag["clicks"])
        cpu.start()
        throughput = await _throughput(cfg, redis, conn, say)
        throughput["cpu"] = per_click(cpu.stop(), throughput["stored"])
    finally:
        await conn.close()
        await redis.aclose()
    return {"idle_cpu": idle, "lag": lag, "throughput": throughput}


@contextlib.contextmanager
def _target(cfg: Config) -> Iterator[tuple[Target, LocalStack | None]]:
    if cfg.target is not None and not (cfg.target.database_url and cfg.target.redis_url):
        raise SystemExit("the ingest bench needs --dev-json with database_url and redis_url")
    with given_or_own(cfg.target, cfg.settings) as pair:
        yield pair


def run(cfg: Config, say: Say = print) -> int:
    budget = budgets.load(cfg.profile)["ingest"]
    rate = cfg.lag_rate or budget["lag_rate"]
    say("starting the stack ..." if cfg.target is None else "using the given stack ...")
    with _target(cfg) as (target, stack):
        watch = report.CpuWatch()
        watch.start()
        result = asyncio.run(_measure(cfg, rate, target, stack, say))
        result["cpu"] = watch.stop(stack.pids() if stack else {})
    result["config"] = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "target"}
    result["config"]["results_dir"] = str(cfg.results_dir)
    found = checks(result, budget, judge_cpu=cfg.profile == "full")
    say("")
    say(render(result))
    say("")
    say(report.checks_table(found))
    say("")
    say(report.describe_cpu(result["cpu"]))
    result["checks"] = found
    result["ok"] = budgets.all_ok(found)
    path = report.write("ingest", result, cfg.results_dir)
    say(f"\nwritten {path}")
    return 0 if result["ok"] else 1


def checks(
    result: dict[str, Any], budget: dict[str, float], *, judge_cpu: bool = True
) -> list[Check]:
    lag, tp = result["lag"], result["throughput"]
    cost = lag["cpu"]["us_per_click"]
    known = not math.isnan(cost) and lag["cpu"]["ingest"] > 0 and lag["cpu"]["postgres"] > 0
    return [
        Check("ingest throughput", tp["per_second"], budget["throughput_per_s"], ">=", "/s"),
        Check(
            f"lag p99 at {lag['rate']:,.0f}/s",
            lag["lag_from_click_s"]["p99"],
            budget["lag_p99_s"],
            "<=",
            " s",
        ),
        Check(
            f"ingest + PostgreSQL CPU per click at {lag['rate']:,.0f}/s",
            cost if known else None,
            budget.get("cpu_us_per_click", CPU_US_PER_CLICK),
            "<=",
            " us",
            judged=judge_cpu and known,
            note=""
            if judge_cpu and known
            else ("smoke profile" if known else "processes not on this machine"),
        ),
        Check("batches never stored", lag["batches_not_visible"], 0, "<="),
        Check("backlog clicks never stored", tp["clicks"] - tp["stored"], 0, "<="),
    ]


def render(result: dict[str, Any]) -> str:
    lag, tp = result["lag"], result["throughput"]
    rows = []
    for name, key in (
        ("click -> visible", "lag_from_click_s"),
        ("XADD -> visible", "lag_from_write_s"),
    ):
        s = lag[key]
        rows.append([name, s["p50"], s["p95"], s["p99"], s["max"]])
    return "\n".join(
        [
            f"click ingest lag at {lag['achieved_rate']:,.0f} clicks/s for {lag['seconds']:.0f} s "
            f"({lag['batches']:,} batches, polled every {lag['poll_interval_s'] * 1000:.0f} ms)",
            report.table(["seconds", "p50", "p95", "p99", "max"], rows),
            "",
            f"click ingest throughput: {tp['stored']:,} of {tp['clicks']:,} clicks stored in "
            f"{tp['seconds']:.2f} s = {tp['per_second']:,.0f} clicks/s "
            f"(backlog written in {tp['write_seconds']:.2f} s)",
            "",
            "cpu per click (us; cores in brackets; the bench's polling connection apart)",
            report.table(
                ["phase", "ingest", "postgres", "ingest + postgres", "bench conn"],
                [
                    _cpu_row(f"steady {lag['rate']:,.0f}/s", lag["cpu"]),
                    _cpu_row("backlog", tp["cpu"]),
                    _cpu_row("idle (cores only)", result["idle_cpu"]),
                ],
            ),
        ]
    )


def _cpu_row(name: str, cpu: dict[str, Any]) -> list[object]:
    def cell(role: str) -> str:
        us = cpu[f"{role}_us_per_click"]
        cores = f"({cpu[f'{role}_cores']:.3f})"
        return cores if math.isnan(us) else f"{us:.1f} {cores}"

    total = cpu["us_per_click"]
    return [
        name,
        cell("ingest"),
        cell("postgres"),
        "-" if math.isnan(total) else f"{total:.1f}",
        cell("bench_conn"),
    ]
