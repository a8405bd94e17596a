"""Drives locust: N independent headless processes sharing one schedule, samples merged.

Independent processes rather than locust's master/workers: at a few thousand requests a
second on a small machine the master's own work would compete with the generators, and
nothing here needs live aggregation (bench/recorder.py writes every sample to a file).
A rate is held by a timetable: each user sends `per_user_rate` requests a second and
catches up when it falls behind (bench/recorder.py), so U users offer U x per_user_rate.
Few users with a high rate each keep the generator's own queueing small (many users firing
at once inflate what it measures); enough users that a slow answer never stalls the rate.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from bench.stack import ROOT, bench_env
from ricochet import procs


@dataclass(frozen=True)
class Step:
    until_s: float  # run time at which this step ends
    rate: float  # offered requests/s over all processes (0: flat out)
    users: int  # over all processes


def fixed(rate: float, per_user_rate: float, warmup_s: float, duration_s: float) -> list[Step]:
    users = max(1, math.ceil(rate / per_user_rate))
    return [Step(warmup_s + duration_s, users * per_user_rate, users)]


def ramp(start: float, step: float, steps: int, step_s: float, per_user_rate: float) -> list[Step]:
    out = []
    for n in range(steps):
        users = max(1, math.ceil((start + n * step) / per_user_rate))
        out.append(Step((n + 1) * step_s, users * per_user_rate, users))
    return out


def flat_out(users: int, seconds: float) -> list[Step]:
    return [Step(seconds, 0.0, users)]


@dataclass(frozen=True)
class Plan:
    label: str
    locustfile: Path
    host: str  # base URL
    processes: int
    steps: list[Step]
    per_user_rate: float  # 0: no pacing
    env: dict[str, str] = field(default_factory=dict)  # e.g. BENCH_MIX

    def schedule_for(self, process: int) -> list[list[float]]:
        """This process's share of each step's users (the first ones take the remainder)."""
        out = []
        for step in self.steps:
            share = step.users // self.processes + (process < step.users % self.processes)
            out.append([step.until_s, float(share)])
        return out


@dataclass
class Samples:
    """Every request of a run: answer time, latency, kind and error, in parallel arrays."""

    kinds: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=lambda: [""])
    t: array[float] = field(default_factory=lambda: array("d"))
    ms: array[float] = field(default_factory=lambda: array("d"))
    kind: array[int] = field(default_factory=lambda: array("H"))
    err: array[int] = field(default_factory=lambda: array("H"))
    late: array[float] = field(default_factory=lambda: array("d"))
    started: list[float] = field(default_factory=list)  # per process, wall clock
    stopped: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # per process, over its run

    def add(self, body: dict[str, Any]) -> None:
        """Merge one process's file, renumbering its kinds and errors into ours."""
        kind_map = array("H", (self._index(self.kinds, k) for k in body["kinds"]))
        err_map = array("H", (self._index(self.errors, e) for e in body["errors"]))
        t, ms, kind, err, late = array("d"), array("d"), array("H"), array("H"), array("d")
        late.frombytes(body["late"])
        t.frombytes(body["t"])
        ms.frombytes(body["ms"])
        kind.frombytes(body["kind"])
        err.frombytes(body["err"])
        self.t.extend(t)
        self.ms.extend(ms)
        self.kind.extend(kind_map[k] for k in kind)
        self.err.extend(err_map[e] for e in err)
        self.late.extend(late)
        self.started.append(body["started"])
        self.stopped.append(body["stopped"])
        self.cpu_s.append(body["cpu_s"])

    @staticmethod
    def _index(names: list[str], name: str) -> int:
        if name not in names:
            names.append(name)
        return names.index(name)

    def window(self, start: float, end: float) -> list[int]:
        """Indexes of the requests answered in [start, end) (wall clock)."""
        return [i for i, t in enumerate(self.t) if start <= t < end]

    @property
    def begin(self) -> float:
        """When the last process started: from then on, the whole plan was running."""
        return max(self.started) if self.started else 0.0

    @property
    def end(self) -> float:
        return min(self.stopped) if self.stopped else 0.0


@dataclass
class Run:
    plan: Plan
    samples: Samples
    wall_s: float
    pids: set[int]
    logs: list[Path]

    def generator_cpu(self) -> list[float]:
        """Each locust process's CPU use over its run, in cores (1.0: one core flat out)."""
        return [
            cpu / max(stop - start, 1e-6)
            for cpu, start, stop in zip(
                self.samples.cpu_s, self.samples.started, self.samples.stopped, strict=True
            )
        ]


class Started:
    """Locust processes running a plan; `finish()` waits for them and merges their samples."""

    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.began = time.monotonic()
        self.outs: list[Path] = []
        self.logs: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        workdir.mkdir(parents=True, exist_ok=True)
        for n in range(plan.processes):
            out = workdir / f"{plan.label}-{n}.msgpack"
            out.unlink(missing_ok=True)
            log = workdir / f"{plan.label}-{n}.log"
            env = bench_env(
                {
                    **plan.env,
                    "BENCH_OUT": str(out),
                    "BENCH_SCHEDULE": json.dumps(plan.schedule_for(n)),
                    "BENCH_PER_USER_RATE": str(plan.per_user_rate),
                }
            )
            argv = [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(plan.locustfile),
                "--headless",
                "--host",
                plan.host,
                "--only-summary",
                "--loglevel",
                "WARNING",
                "--exit-code-on-error",
                "0",
                "--stop-timeout",
                "5",
            ]
            self.procs.append(procs.spawn(argv, log=log, env=env, cwd=ROOT))
            self.outs.append(out)
            self.logs.append(log)

    @property
    def pids(self) -> set[int]:
        return {p.pid for p in self.procs}

    def finish(self) -> Run:
        limit = self.plan.steps[-1].until_s + 60
        for proc in self.procs:
            remaining = max(1.0, limit - (time.monotonic() - self.began))
            try:
                proc.wait(remaining)
            except subprocess.TimeoutExpired:
                procs.stop(proc)
        samples = Samples()
        for out, log in zip(self.outs, self.logs, strict=True):
            if not out.exists():
                raise RuntimeError(f"a locust process wrote no samples:\n{procs.tail(log)}")
            samples.add(msgspec.msgpack.decode(out.read_bytes()))
        return Run(self.plan, samples, time.monotonic() - self.began, self.pids, list(self.logs))


def run(plan: Plan, workdir: Path) -> Run:
    return Started(plan, workdir).finish()


@dataclass(frozen=True)
class Stats:
    """What a window of samples says, overall or for one kind."""

    requests: int
    rate: float  # answered per second
    errors: int
    error_kinds: dict[str, int]
    latency_ms: dict[str, float]
    late_ms: dict[str, float]  # how late requests left against the timetable (generator lag)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rate": self.rate,
            "errors": self.errors,
            "error_kinds": self.error_kinds,
            "latency_ms": self.latency_ms,
            "late_ms": self.late_ms,
        }


def stats(samples: Samples, idx: list[int], seconds: float) -> Stats:
    from bench.report import summary

    errors: dict[str, int] = {}
    for i in idx:
        e = samples.err[i]
        if e:
            name = samples.errors[e]
            errors[name] = errors.get(name, 0) + 1
    return Stats(
        requests=len(idx),
        rate=len(idx) / seconds if seconds > 0 else 0.0,
        errors=sum(errors.values()),
        error_kinds=errors,
        latency_ms=summary(samples.ms[i] for i in idx),
        late_ms=summary(samples.late[i] for i in idx),
    )


def by_kind(samples: Samples, idx: list[int], seconds: float) -> dict[str, Stats]:
    groups: dict[str, list[int]] = {}
    for i in idx:
        groups.setdefault(samples.kinds[samples.kind[i]], []).append(i)
    return {name: stats(samples, group, seconds) for name, group in sorted(groups.items())}


def processes_for(rate: float, per_process: float = 1000.0) -> int:
    """Enough locust processes that none offers more than `per_process` requests/s: well
    below what one can send, so its own scheduling adds little to what it measures."""
    return max(1, math.ceil(rate / per_process))
