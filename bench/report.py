"""What every bench prints and writes: percentiles, tables, checks, machine context, JSON."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.budgets import Check

RESULTS_DIR = Path(__file__).with_name("results")


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..1); NaN when empty."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: Iterable[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "count": float(len(ordered)),
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p95": percentile(ordered, 0.95),
        "p99": percentile(ordered, 0.99),
        "p999": percentile(ordered, 0.999),
        "max": ordered[-1] if ordered else math.nan,
    }


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Plain text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    return str(value)


def checks_table(checks: Sequence[Check]) -> str:
    rows = []
    for check in checks:
        measured = "n/a" if check.measured is None else _count(check.measured) + check.unit
        limit = f"{check.op} {_count(check.limit)}{check.unit}"
        rows.append([check.name, measured, limit, check.verdict + _note(check)])
    return table(["budget", "measured", "limit", "verdict"], rows)


def _count(value: float) -> str:
    """Whole numbers (errors, clicks) without decimals; anything else as a cell."""
    if float(value).is_integer() and abs(value) < 1000:
        return str(int(value))
    return _cell(float(value))


def _note(check: Check) -> str:
    return f" ({check.note})" if check.note else ""


STATS_HEADERS = [
    "share",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "errors",
    "sent late p99 ms",
]


def stats_row(name: str, s: dict[str, Any], overall: dict[str, Any] | None) -> list[object]:
    """A row under STATS_HEADERS from loadgen.Stats.as_dict(); share of `overall`'s requests."""
    lat = s["latency_ms"]
    share = f"{s['requests'] / max(overall['requests'], 1):.1%}" if overall else "-"
    errors: object = s["errors"]
    if errors:
        kinds = ", ".join(f"{k}: {v}" for k, v in s["error_kinds"].items())
        errors = f"{errors} ({kinds})"
    return [
        name,
        share,
        s["rate"],
        lat["p50"],
        lat["p95"],
        lat["p99"],
        lat["p999"],
        lat["max"],
        errors,
        s["late_ms"]["p99"],
    ]


# -- what else the machine was doing ---------------------------------------------------------


_SECRET_HINTS = ("key", "token", "secret", "pass", "://", "=")


def _hint(cmdline: list[str], name: str) -> str:
    """A short, secret-free description of a process: `python -m pytest tests/unit`."""
    if not cmdline:
        return name
    if any("exec(eval(sys.stdin.readline()))" in arg for arg in cmdline):
        return "pytest-xdist worker"  # execnet's bootstrap: what `pytest -n` runs tests in
    words = [Path(cmdline[0]).name.split(":")[0]]  # "postgres: user db addr state" -> postgres
    if len(cmdline) == 1:
        return words[0]
    for arg in cmdline[1:]:
        if len(words) >= 4:
            break
        if len(arg) > 60 or any(h in arg.lower() for h in _SECRET_HINTS):
            continue
        words.append(arg)
    return " ".join(words)


@dataclass
class CpuWatch:
    """CPU used by every process on the machine between `start()` and `stop()`.

    Split into the processes this bench started (by role, from their pids) and everything
    else, so a report says how busy the box was with other work while it measured.
    """

    started: float = 0.0
    _before: dict[int, tuple[float, str]] = field(default_factory=dict)
    _machine_before: tuple[float, float] = (0.0, 0.0)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def start(self) -> None:
        self._before = _cpu_by_pid()
        self._machine_before = _machine_busy()
        self.load_before = os.getloadavg()
        self.started = time.monotonic()

    def stop(self, roles: dict[str, set[int]]) -> dict[str, Any]:
        seconds = max(time.monotonic() - self.started, 1e-6)
        after = _cpu_by_pid()
        busy, steal = (a - b for a, b in zip(_machine_busy(), self._machine_before, strict=True))
        mine = os.getpid()
        ours = {mine} | {p.pid for p in _descendants(mine)}
        used: dict[str, float] = {role: 0.0 for role in roles}
        used["bench (other of ours)"] = 0.0
        others: dict[str, float] = {}
        for pid, (cpu, hint) in after.items():
            delta = cpu - self._before.get(pid, (0.0, ""))[0]
            if delta <= 0:
                continue
            role = next((r for r, pids in roles.items() if pid in pids), None)
            if role is not None:
                used[role] += delta
            elif pid in ours:
                used["bench (other of ours)"] += delta
            else:
                others[hint] = others.get(hint, 0.0) + delta
        top = sorted(others.items(), key=lambda kv: -kv[1])
        return {
            "seconds": seconds,
            "cores": psutil.cpu_count() or 0,
            # Every CPU second on the machine, short-lived processes included (a test run
            # starts many; they never show up in the per-process figures).
            "machine_busy_cores": busy / seconds,
            "steal_cores": steal / seconds,
            "load_avg_before": list(self.load_before),
            "load_avg_after": list(os.getloadavg()),
            "ours_cores": {role: cpu / seconds for role, cpu in used.items()},
            "others_cores": sum(others.values()) / seconds,
            "others_top": [
                {"process": hint, "cores": cpu / seconds}
                for hint, cpu in top[:6]
                if cpu / seconds >= 0.02
            ],
        }


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    return children


def _machine_busy() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy, and stolen by the hypervisor, so far."""
    t = psutil.cpu_times()
    steal = getattr(t, "steal", 0.0)
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle - steal, steal


def _cpu_by_pid() -> dict[int, tuple[float, str]]:
    out = {}
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        times = proc.info.get("cpu_times")
        if times is None:
            continue
        cmdline = proc.info.get("cmdline") or []
        out[proc.pid] = (times.user + times.system, _hint(cmdline, proc.info.get("name") or "?"))
    return out


def describe_cpu(cpu: dict[str, Any]) -> str:
    """One paragraph for the terminal: who used the cores while the bench measured."""
    ours = ", ".join(f"{role} {cores:.2f}" for role, cores in cpu["ours_cores"].items() if cores)
    lines = [
        f"cpu over {cpu['seconds']:.0f} s on {cpu['cores']} cores (in cores): {ours}; "
        f"other processes {cpu['others_cores']:.2f}; the whole machine busy "
        f"{cpu['machine_busy_cores']:.2f} of {cpu['cores']}"
        + (f" (+{cpu['steal_cores']:.2f} stolen)" if cpu["steal_cores"] >= 0.01 else "")
        + f"; load avg {cpu['load_avg_before'][0]:.2f} -> {cpu['load_avg_after'][0]:.2f}"
    ]
    for other in cpu["others_top"]:
        lines.append(f"  also running: {other['process']} ({other['cores']:.2f} cores)")
    return "\n".join(lines)


# -- results ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "cpus": psutil.cpu_count() or 0,
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write(kind: str, payload: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """bench/results/<kind>-<local time>.json with the date and the machine added."""
    results_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now().astimezone()
    path = results_dir / f"{kind}-{now.strftime('%Y%m%d-%H%M%S')}.json"
    body = {"bench": kind, "date": now.isoformat(timespec="seconds"), "machine": machine()}
    body.update(payload)
    path.write_text(json.dumps(jsonable(body), indent=2, allow_nan=False) + "\n")
    return path


def jsonable(value: object) -> object:
    """JSON has no NaN (an empty percentile) and no Check: null and plain dicts instead."""
    if isinstance(value, Check):
        return jsonable(value.as_dict())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
