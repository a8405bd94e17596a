"""What a bench runs against: a `ricochet up` of its own, or a system someone else runs.

A bench-owned stack lives in a throw-away home on embedded PostgreSQL and Redis, with the
settings a load test needs (no API rate limit, loopback webhook receivers allowed); none of
the caller's RICOCHET_* variables leak in, so a bench never writes into a real database
by accident. It stops as Ctrl-C stops `ricochet up`, and dies with the bench if the bench
is killed outright (procs.spawn asks the kernel for that).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import httpx2 as httpx
import psutil

from ricochet import procs

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0
ROLES = ("edge", "control", "relay", "ingest", "worker")


@dataclass(frozen=True)
class Target:
    edge_url: str
    control_url: str
    api_key: str
    workspace_id: str = ""
    database_url: str | None = None
    redis_url: str | None = None

    @classmethod
    def from_dev_json(cls, path: Path) -> Target:
        info = json.loads(path.read_text())
        return cls(
            edge_url=info["edge_url"],
            control_url=info["control_url"],
            api_key=info["api_key"],
            workspace_id=info.get("workspace_id", ""),
            database_url=info.get("database_url"),
            redis_url=info.get("redis_url"),
        )

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"}

    def described(self) -> dict[str, str]:
        """For result files: where it ran, never the key or database credentials."""
        return {"edge_url": self.edge_url, "control_url": self.control_url}


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment minus RICOCHET_*, plus PYTHONPATH so children can import `bench`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RICOCHET_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


@dataclass
class LocalStack:
    """`ricochet up` for the length of a `with` block; `__enter__` answers its Target."""

    settings: dict[str, str] = field(default_factory=dict)
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ricochet-bench-")))
    proc: subprocess.Popen[bytes] | None = None

    DEFAULTS = {  # noqa: RUF012 - a constant, read only
        "RICOCHET_RATE_LIMIT_PER_MINUTE": "0",  # the bench is one key doing a lot of work
        "RICOCHET_ALLOW_PRIVATE_DESTINATIONS": "true",  # webhook receiver on 127.0.0.1
        "RICOCHET_LOG_LEVEL": "warning",
    }

    def __enter__(self) -> Target:
        env = bench_env({**self.DEFAULTS, **self.settings})
        self.proc = procs.spawn(
            [
                sys.executable,
                "-m",
                "ricochet",
                "up",
                "--home",
                str(self.home / "home"),
                "--edge-port",
                "0",
                "--control-port",
                "0",
            ],
            log=self.home / "up.log",
            env=env,
            cwd=ROOT,
        )
        dev_json = self.home / "home" / "dev.json"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not dev_json.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.logs()
                self.__exit__(None, None, None)
                raise RuntimeError(f"ricochet up did not come up:\n{log}")
            time.sleep(0.1)
        return Target.from_dev_json(dev_json)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            procs.stop(self.proc, signal.SIGINT, timeout=90)
        shutil.rmtree(self.home, ignore_errors=True)

    def pids(self) -> dict[str, set[int]]:
        """Process ids of each part of the stack (an edge's Granian workers included)."""
        roles: dict[str, set[int]] = {role: set() for role in (*ROLES, "postgres", "redis")}
        if self.proc is None:
            return roles
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return roles
        for child in children:
            try:
                cmd = " ".join(child.cmdline())
            except psutil.Error:
                continue
            role = next((r for r in ROLES if f"ricochet {r}" in cmd), None)
            if role is None:
                role = "postgres" if "postgres" in cmd else "redis" if "redis" in cmd else None
            if role is not None:
                roles[role].add(child.pid)
                roles[role].update(_descendant_pids(child))
        return roles

    def logs(self) -> str:
        parts = [procs.tail(self.home / "up.log", 30)]
        for log in sorted((self.home / "home" / "logs").glob("*.log")):
            parts.append(f"--- {log.name}\n{procs.tail(log, 15)}")
        return "\n".join(parts)


@contextlib.contextmanager
def given_or_own(
    target: Target | None, settings: dict[str, str]
) -> Iterator[tuple[Target, LocalStack | None]]:
    """The system a bench was pointed at, or else a `ricochet up` of its own for the block
    (then also answered, for its process ids)."""
    if target is not None:
        yield target, None
        return
    stack = LocalStack(settings)
    with stack as own:
        yield own, stack


def _descendant_pids(proc: psutil.Process) -> set[int]:
    try:
        return {p.pid for p in proc.children(recursive=True)}
    except psutil.Error:
        return set()


def host_of(url: str) -> str:
    """The Host header a short URL is served under (`localhost:8400` for a dev stack)."""
    return urlsplit(url).netloc


def parse_edge_metrics(text: str) -> dict[str, float]:
    """`ricochet_edge_*` samples of the edge's Prometheus page, without the prefix and
    `_total`: {"redirects": 1234.0, "cached_links": 100000.0, ...}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("ricochet_edge_"):
            name, _, value = line.partition(" ")
            name = name.removeprefix("ricochet_edge_").removesuffix("_total")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def edge_metrics(edge_url: str) -> dict[str, float]:
    """The edge's counters (summed over its workers); empty when it does not answer."""
    try:
        return parse_edge_metrics(httpx.get(f"{edge_url}/_/metrics", timeout=5).text)
    except httpx.HTTPError:
        return {}


def stored_clicks(database_url: str, link_ids: list[str]) -> int:
    """Rows in PostgreSQL's `clicks` for these links (bots and QR scans included)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM clicks WHERE link_id = ANY(%s::uuid[])", (link_ids,)
        ).fetchone()
    return int(row[0]) if row else 0


def wait_stored(database_url: str, link_ids: list[str], expected: float, timeout: float) -> int:
    """Poll until PostgreSQL holds `expected` clicks for these links (ingest caught up), or
    the time is up; the count last seen."""
    deadline = time.monotonic() + timeout
    stored = stored_clicks(database_url, link_ids)
    while stored < expected and time.monotonic() < deadline:
        time.sleep(0.25)
        stored = stored_clicks(database_url, link_ids)
    return stored


def cpu_of(pids: set[int]) -> float:
    """CPU seconds used so far by these processes (those gone since count as nothing)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


class HotLinkStack:
    """A `ricochet up` of the bench's own with one link (`slug`) for a generator to hammer:
    the ceiling's full-stack row. Its edge answers while ingest stores the clicks it
    captures (in PostgreSQL, through the real consumer), relay, control and worker beside
    them, as on a box a user runs the whole system on.
    """

    def __init__(self, workers: int, slug: str, drain_timeout_s: float) -> None:
        self.local = LocalStack({"RICOCHET_EDGE_WORKERS": str(workers)})
        self.slug = slug
        self.drain_timeout_s = drain_timeout_s
        self.link_id = ""
        self.host = ""
        self.edge_url = ""
        self.database_url = ""
        self.stored_mark = 0.0  # clicks stored at the end of the last drain

    def __enter__(self) -> HotLinkStack:
        target = self.local.__enter__()
        try:
            assert target.database_url is not None
            self.edge_url, self.database_url = target.edge_url, target.database_url
            response = httpx.post(
                f"{target.control_url}/api/v1/links",
                json={"destination": "https://example.com/landing", "slug": self.slug},
                headers=target.auth,
                timeout=30,
            )
            if response.status_code != 201:
                raise RuntimeError(f"creating the hot link: {response.status_code} {response.text}")
            link = response.json()
            self.link_id, self.host = link["id"], host_of(link["short_url"])
            # The relay projects it after commit: HEAD (no click) until the edge answers it.
            deadline = time.monotonic() + 30
            while True:
                head = httpx.head(self.url, headers={"host": self.host})
                if head.status_code == 302:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the hot link never reached the edge: {head.status_code}")
                time.sleep(0.1)
        except BaseException:
            self.local.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.local.__exit__(None, None, None)

    @property
    def url(self) -> str:
        return f"{self.edge_url}/{self.slug}"

    def edge_pids(self) -> set[int]:
        return self.local.pids()["edge"]

    def pipeline_cpu(self) -> float:
        """CPU seconds so far of what stores clicks: ingest and PostgreSQL."""
        roles = self.local.pids()
        return cpu_of(roles["ingest"] | roles["postgres"])

    def clicks(self) -> dict[str, float]:
        """The edge's click counters and the rows PostgreSQL holds for the hot link."""
        metrics = edge_metrics(self.edge_url)
        return {
            "captured": metrics.get("clicks_captured", 0.0),
            "dropped": metrics.get("clicks_dropped", 0.0),
            "stored": float(stored_clicks(self.database_url, [self.link_id])),
        }

    def drain(self, say: Callable[[str], None]) -> dict[str, float]:
        """Wait until PostgreSQL holds every click the edge captured (or time runs out);
        what the round left behind, and how many clicks were stored since the last drain."""
        started = time.monotonic()
        first = now = self.clicks()
        while now["stored"] < now["captured"] and time.monotonic() - started < self.drain_timeout_s:
            time.sleep(0.25)
            now = self.clicks()
        if now["stored"] < now["captured"]:
            say(f"  full stack: {now['captured'] - now['stored']:,.0f} clicks still not stored")
        round_clicks, self.stored_mark = now["stored"] - self.stored_mark, now["stored"]
        return {
            "drain_s": time.monotonic() - started,
            "backlog_at_end": max(0.0, first["captured"] - first["stored"]),
            "round_clicks": round_clicks,
            "not_stored": now["captured"] - now["stored"],
        }
