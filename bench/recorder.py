"""Imported by the locustfiles: exact latencies per request, pacing, and the load schedule.

Locust's own statistics round response times below 100 ms to whole milliseconds, which is
too coarse for a 1.5 ms budget, so every locust process also keeps each request's float
latency (FastHttpUser times it with perf_counter), its kind and whether it answered as
expected, and writes them to BENCH_OUT when it quits. bench/loadgen.py merges the files.

Environment (set by bench/loadgen.py):
  BENCH_OUT             where this process writes its samples (msgpack)
  BENCH_SCHEDULE        JSON [[until_s, users], ...]: this process's users over run time
  BENCH_PER_USER_RATE   requests per second per user (constant_throughput); 0: no pacing
"""

from __future__ import annotations

import json
import os
import random
import resource
import time
from array import array
from collections.abc import Callable
from typing import Any

import msgspec
from locust import LoadTestShape, constant, events

OUT = os.environ.get("BENCH_OUT", "")
STEPS: list[list[float]] = json.loads(os.environ.get("BENCH_SCHEDULE", "[]"))
PER_USER_RATE = float(os.environ.get("BENCH_PER_USER_RATE", "0"))
CATCH_UP_LIMIT_S = 1.0


class Recorder:
    def __init__(self) -> None:
        self.kinds: dict[str, int] = {}
        self.errors: dict[str, int] = {"": 0}
        self.t = array("d")  # wall-clock time the answer was complete
        self.ms = array("d")  # latency in milliseconds
        self.kind = array("H")
        self.err = array("H")  # 0: as expected; else an index into errors
        self.late = array("d")  # how late the request left against its timetable, ms
        self.started = self.stopped = 0.0
        self.cpu_started = 0.0

    def on_request(
        self,
        name: str,
        response_time: float,
        response: Any,
        context: dict[str, Any],
        exception: BaseException | None,
        **_: Any,
    ) -> None:
        status = getattr(response, "status_code", 0) or 0
        expect = context.get("expect")
        if status and expect is not None:
            reason = "" if status == expect else f"status {status}"
        elif exception is not None:
            reason = type(exception).__name__
        else:
            reason = ""
        self.t.append(time.time())
        self.ms.append(response_time)
        self.kind.append(self.kinds.setdefault(name, len(self.kinds)))
        self.err.append(self.errors.setdefault(reason, len(self.errors)) if reason else 0)
        self.late.append(context.get("late_ms", 0.0))

    def save(self) -> None:
        if not OUT:
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        body = {
            "started": self.started,
            "stopped": self.stopped or time.time(),
            "cpu_s": usage.ru_utime + usage.ru_stime - self.cpu_started,
            "kinds": sorted(self.kinds, key=self.kinds.__getitem__),
            "errors": sorted(self.errors, key=self.errors.__getitem__),
            "t": self.t.tobytes(),
            "ms": self.ms.tobytes(),
            "kind": self.kind.tobytes(),
            "err": self.err.tobytes(),
            "late": self.late.tobytes(),
        }
        with open(OUT, "wb") as out:
            out.write(msgspec.msgpack.encode(body))


recorder = Recorder()
events.request.add_listener(recorder.on_request)


@events.test_start.add_listener
def _started(**_: Any) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    recorder.cpu_started = usage.ru_utime + usage.ru_stime
    recorder.started = time.time()


@events.test_stop.add_listener
def _stopped(**_: Any) -> None:
    recorder.stopped = time.time()


@events.quitting.add_listener
def _quitting(**_: Any) -> None:
    recorder.save()


def pacing() -> Callable[[Any], float]:
    """Each user sends BENCH_PER_USER_RATE requests a second on a fixed timetable; 0: flat out.

    Unlike locust's constant_throughput, a user that fell behind (a slow answer, a busy
    generator) catches up by sending its overdue requests at once, so the offered rate
    stays the target rate; how late each request left is recorded as `late_ms`, the
    generator's own health: when it grows, the generator, not the server, is saturated.
    """
    if PER_USER_RATE <= 0:
        return constant(0)
    period = 1.0 / PER_USER_RATE

    def wait(user: Any) -> float:
        now = time.monotonic()
        due = getattr(user, "bench_due", None)
        # A random first phase, so users of one process do not fire in lockstep.
        due = now + random.random() * period if due is None else due + period
        if due < now - CATCH_UP_LIMIT_S:
            due = now  # too far behind to catch up without a burst: start afresh
        user.bench_due = due
        return max(0.0, due - now)

    return wait


def lateness_ms(user: Any) -> float:
    """How late this request leaves against its timetable slot (0 when unpaced)."""
    due = getattr(user, "bench_due", None)
    return 0.0 if due is None else max(0.0, (time.monotonic() - due) * 1000)


class Schedule(LoadTestShape):
    """Users over run time as BENCH_SCHEDULE says; the run ends after the last step."""

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        for until, users in STEPS:
            if elapsed < until:
                # Start (or add) all of a step's users within about a second.
                return int(users), max(float(users), 1.0)
        return None
