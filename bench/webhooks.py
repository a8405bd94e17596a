"""`ricochet bench webhooks`: signed deliveries per second to a fast local receiver, and how
soon after its event each first attempt arrives.

Only the webhook endpoints API is used (the delivery engine behind it may change): an
endpoint subscribed to `link.created` points at bench/receiver.py on 127.0.0.1 (the stack
needs RICOCHET_ALLOW_PRIVATE_DESTINATIONS, which a bench-owned stack sets), and links
created through the bulk API are the events.

1. Burst, end to end: N events as fast as bulk calls make them, delivered as they come;
   rate = deliveries / (last arrival - first arrival). On one small machine the bulk calls
   (the control plane making links and events) compete with delivery, so this is bounded
   by how fast events are made, not only by delivery. The receiver answers this phase 400,
   so each of these deliveries fails at once (one attempt, nothing retried).
2. Backlog (budget: >= 1,000 deliveries/s): one `POST /webhooks/{id}/recover` replays those
   N failed deliveries at once -- N deliveries due together, as after an outage -- and the
   receiver, answering 204 again, times them: deliveries/s = N / (last - first arrival).
3. Paced (budget: first attempt p95 <= 2 s): events at a steady rate within capacity
   (by default half the backlog's rate, at most 100/s: beyond capacity a backlog builds
   and the latency measures only its length); for each, arrival minus the envelope's
   `created_at`.

Duplicates (at-least-once) are counted apart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench import budgets, report, seed
from bench.budgets import Check
from bench.stack import ROOT, Target, bench_env, given_or_own
from ricochet import procs

Say = Callable[[str], None]
Arrival = tuple[float, str, str, float, str, str]  # as bench/receiver.py answers
WAIT_CAP_S = 600.0
AUTO_PACED_MAX = 100.0


@dataclass(frozen=True)
class Config:
    events: int = 5000  # burst
    paced_rate: float | None = None  # events/s; None: half the burst's rate, at most 100
    paced_seconds: float = 20.0
    profile: str = "full"
    settings: dict[str, str] = field(default_factory=dict)
    target: Target | None = None
    results_dir: Path = report.RESULTS_DIR


class Receiver:
    def __init__(self, workdir: Path) -> None:
        self.port = procs.free_port(None)
        argv = [sys.executable, "-m", "bench.serve", "bench.receiver:create_app"]
        self.log = workdir / "receiver.log"
        self.proc = procs.spawn(
            [*argv, str(self.port), "1"], log=self.log, env=bench_env(), cwd=ROOT
        )
        if not procs.wait_port(self.port, time.monotonic() + 30, self.proc):
            raise RuntimeError(f"the receiver did not start:\n{procs.tail(self.log)}")
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def answer(self, status: int) -> None:
        """Answer every delivery from now on with `status`."""
        httpx.put(f"http://127.0.0.1:{self.port}/_status", content=str(status), timeout=30)

    def arrivals(self, prefix: str, reason: str = "") -> list[Arrival]:
        """Deliveries of link.created events for links whose slug starts with `prefix`, sent
        for `reason` (X-Nim-Delivery-Reason; "" for an event's own delivery)."""
        rows = httpx.get(f"http://127.0.0.1:{self.port}/_arrivals", timeout=30).json()
        return [
            (float(r[0]), str(r[1]), str(r[2]), float(r[3]), str(r[4]), str(r[5]))
            for r in rows
            if str(r[4]).startswith(prefix) and str(r[5]) == reason
        ]

    def wait_for(
        self, prefix: str, count: int, idle_s: float = 15.0, reason: str = ""
    ) -> list[Arrival]:
        """Until `count` events arrived, or none arrived for `idle_s` (stalled or lost), or
        WAIT_CAP_S passed: a slow engine is measured, never waited on forever."""
        now = time.monotonic()
        deadline, progress, seen = now + WAIT_CAP_S, now, 0
        while True:
            got = self.arrivals(prefix, reason)
            events = len({a[1] for a in got})
            now = time.monotonic()
            if events > seen:
                seen, progress = events, now
            if events >= count or now - progress > idle_s or now > deadline:
                return got
            time.sleep(0.5)

    def stop(self) -> None:
        procs.stop(self.proc)


def _create(http: httpx.Client, target: Target, slugs: list[str]) -> None:
    items = [{"destination": f"https://hooks.example/{s}", "slug": s} for s in slugs]
    response = http.post(
        f"{target.control_url}/api/v1/links/bulk", json={"items": items}, headers=target.auth
    )
    if response.status_code != 200 or response.json()["created"] != len(slugs):
        raise RuntimeError(f"bulk create: {response.status_code} {response.text[:300]}")


def _burst(
    http: httpx.Client, target: Target, receiver: Receiver, prefix: str, n: int, say: Say
) -> dict[str, Any]:
    say(f"  burst: {n:,} link.created events from bulk calls of {seed.BULK_MAX:,}")
    receiver.answer(400)
    started = time.time()
    for start in range(0, n, seed.BULK_MAX):
        _create(http, target, [f"{prefix}{i}" for i in range(start, min(n, start + seed.BULK_MAX))])
    created_s = time.time() - started
    try:
        got = receiver.wait_for(prefix, n)
    finally:
        receiver.answer(204)
    last = max((a[0] for a in got), default=started)
    first_created = min((a[3] for a in got), default=started)
    return {
        **_tally(n, got),
        "create_seconds": created_s,
        "end_to_end_per_s": len(got) / (last - first_created) if got else 0.0,
        "first_attempt_s": report.summary(a[0] - a[3] for a in got),
    }


def _tally(n: int, got: list[Arrival]) -> dict[str, Any]:
    """What arrived of n events: deliveries, duplicates, and deliveries/s from the first
    arrival to the last."""
    events = {a[1] for a in got}
    arrived = sorted(a[0] for a in got)
    span = arrived[-1] - arrived[0] if len(arrived) > 1 else 0.0
    return {
        "events": n,
        "delivered_events": len(events),
        "deliveries": len(got),
        "duplicates": len(got) - len(events),
        "deliveries_per_s": len(got) / span if span > 0 else 0.0,
    }


def _backlog(
    http: httpx.Client,
    target: Target,
    receiver: Receiver,
    hook_id: str,
    prefix: str,
    since: float,
    say: Say,
) -> dict[str, Any]:
    """Replay every delivery the burst failed, in one recovery call, and time them."""
    started = time.time()
    response = http.post(
        f"{target.control_url}/api/v1/webhooks/{hook_id}/recover",
        json={"since": dt.datetime.fromtimestamp(since, dt.UTC).isoformat()},
        headers=target.auth,
    )
    if response.status_code != 200:
        raise RuntimeError(f"recover: {response.status_code} {response.text[:300]}")
    n = int(response.json()["replayed"])
    recover_s = time.time() - started
    say(f"  backlog: {n:,} failed deliveries replayed by one recovery call ({recover_s:.1f} s)")
    got = receiver.wait_for(prefix, n, reason="replay")
    return {
        **_tally(n, got),
        "recover_seconds": recover_s,
        "first_arrival_after_s": min(a[0] for a in got) - started if got else None,
    }


def _paced(
    http: httpx.Client,
    target: Target,
    receiver: Receiver,
    prefix: str,
    rate: float,
    seconds: float,
    say: Say,
) -> dict[str, Any]:
    tick = 0.1  # a bulk call every tick, as an integration syncing a campaign would
    per_tick = max(1, round(rate * tick))
    say(f"  paced: {per_tick / tick:,.0f} events/s for {seconds:.0f} s")
    start = time.time()
    n = 0
    ticks = 0
    while (due := start + ticks * tick) < start + seconds:
        time.sleep(max(0.0, due - time.time()))
        _create(http, target, [f"{prefix}{n + i}" for i in range(per_tick)])
        n += per_tick
        ticks += 1
    got = receiver.wait_for(prefix, n)
    firsts: dict[str, Arrival] = {}
    for a in sorted(got):
        firsts.setdefault(a[1], a)
    return {
        "rate": per_tick / tick,
        "seconds": seconds,
        "events": n,
        "delivered_events": len(firsts),
        "duplicates": len(got) - len(firsts),
        "first_attempt_s": report.summary(a[0] - a[3] for a in firsts.values()),
    }


def _drain(http: httpx.Client, target: Target, receiver: Receiver, run_id: str) -> float:
    """Seconds until one more event arrives after the burst. Whatever the burst left in the
    engine's queue (the reconciler may re-enqueue deliveries that were only waiting) is
    ahead of it, so the paced phase then starts on an idle engine."""
    started = time.time()
    _create(http, target, [f"wh{run_id}d"])
    got = receiver.wait_for(f"wh{run_id}d", 1, idle_s=WAIT_CAP_S)
    # From its arrival time: the receiver is polled every 0.5 s, and each poll parses every
    # arrival so far, which would count here.
    return min(a[0] for a in got) - started if got else time.time() - started


def run(cfg: Config, say: Say = print) -> int:
    import shutil
    import tempfile

    budget = budgets.load(cfg.profile)["webhooks"]
    workdir = Path(tempfile.mkdtemp(prefix="ricochet-bench-webhooks-"))
    run_id = uuid.uuid4().hex[:6]
    result: dict[str, Any] = {}
    say("starting the stack ..." if cfg.target is None else "using the given stack ...")
    try:
        with (
            given_or_own(cfg.target, cfg.settings) as (target, stack),
            httpx.Client(timeout=120) as http,
        ):
            receiver = Receiver(workdir)
            try:
                hook = http.post(
                    f"{target.control_url}/api/v1/webhooks",
                    json={
                        "url": receiver.url,
                        "event_types": ["link.created"],
                        "description": "ricochet bench webhooks",
                    },
                    headers=target.auth,
                )
                if hook.status_code != 201:
                    raise RuntimeError(
                        f"creating the webhook: {hook.status_code} {hook.text[:300]}"
                    )
                hook_id = hook.json()["id"]
                try:
                    _create(http, target, [f"wh{run_id}w{i}" for i in range(20)])
                    if len(receiver.wait_for(f"wh{run_id}w", 20, idle_s=60)) < 20:
                        raise RuntimeError("warm-up: 20 deliveries did not arrive")
                    watch = report.CpuWatch()
                    watch.start()
                    since = time.time() - 1.0
                    result["burst"] = _burst(
                        http, target, receiver, f"wh{run_id}b", cfg.events, say
                    )
                    result["backlog"] = _backlog(
                        http, target, receiver, hook_id, f"wh{run_id}b", since, say
                    )
                    result["burst"]["drain_s"] = _drain(http, target, receiver, run_id)
                    # Latency is timed within capacity: a backlog would only measure its length.
                    paced_rate = cfg.paced_rate or max(
                        1.0, min(AUTO_PACED_MAX, result["backlog"]["deliveries_per_s"] / 2)
                    )
                    result["paced"] = _paced(
                        http,
                        target,
                        receiver,
                        f"wh{run_id}p",
                        paced_rate,
                        cfg.paced_seconds,
                        say,
                    )
                    result["cpu"] = watch.stop(stack.pids() if stack else {})
                finally:
                    http.delete(
                        f"{target.control_url}/api/v1/webhooks/{hook_id}", headers=target.auth
                    )
            finally:
                receiver.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["config"] = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "target"}
    result["config"]["results_dir"] = str(cfg.results_dir)
    found = checks(result, budget)
    say("")
    say(render(result))
    say("")
    say(report.checks_table(found))
    say("")
    say(report.describe_cpu(result["cpu"]))
    result["checks"] = found
    result["ok"] = budgets.all_ok(found)
    path = report.write("webhooks", result, cfg.results_dir)
    say(f"\nwritten {path}")
    return 0 if result["ok"] else 1


def checks(result: dict[str, Any], budget: dict[str, float]) -> list[Check]:
    burst, backlog, paced = result["burst"], result["backlog"], result["paced"]
    missing = sum(p["events"] - p["delivered_events"] for p in (burst, backlog, paced))
    return [
        Check(
            f"deliveries/s (backlog of {backlog['events']:,})",
            backlog["deliveries_per_s"],
            budget["deliveries_per_s"],
            ">=",
            "/s",
        ),
        Check(
            f"first attempt p95 at {paced['rate']:,.0f}/s",
            paced["first_attempt_s"]["p95"],
            budget["first_attempt_p95_s"],
            "<=",
            " s",
        ),
        Check("events never delivered", missing, 0, "<="),
    ]


def render(result: dict[str, Any]) -> str:
    burst, backlog, paced = result["burst"], result["backlog"], result["paced"]
    rows = []
    for name, part in (
        (f"burst of {burst['events']:,}", burst),
        (f"paced {paced['rate']:,.0f}/s", paced),
    ):
        s = part["first_attempt_s"]
        rows.append(
            [
                name,
                part["delivered_events"],
                part["duplicates"],
                s["p50"],
                s["p95"],
                s["p99"],
                s["max"],
            ]
        )
    return "\n".join(
        [
            f"webhook deliveries, backlog: {backlog['deliveries_per_s']:,.0f}/s first to last "
            f"arrival ({backlog['deliveries']:,} replays due at once; {backlog['duplicates']:,} "
            "duplicates)",
            f"burst, end to end: {burst['deliveries_per_s']:,.0f}/s first to last arrival "
            f"({burst['end_to_end_per_s']:,.0f}/s from the first event; its {burst['events']:,} "
            f"events were created in {burst['create_seconds']:.1f} s); one more event "
            f"after the backlog arrived {burst['drain_s']:.1f} s later",
            "event created_at -> first attempt arriving, seconds:",
            report.table(["phase", "delivered", "duplicates", "p50", "p95", "p99", "max"], rows),
        ]
    )
