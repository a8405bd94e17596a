"""10,000 clicks through a real edge, with ingest killed -9 mid-run and restarted: exactly
10,000 rows, per-link totals that add up, and one click event per human click or scan.

Every part is a real process on real servers: control (links and the webhook subscription
through the API), relay (projects links into Redis), edge (redirects and captures), ingest.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx2 as httpx
import psutil
import psycopg

from control.settings import ControlSettings
from ricochet import procs as procs_lib
from ricochet.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.integration.conftest import _make_tenant as make_tenant

CLICKS = 10_000
KILL_AT = 3_000
CLIENTS = 8
SLUGS = ("spring", "summer", "autumn")
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HUMAN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


def _start(
    env: dict[str, str], log: Path, *args: str, ready: Path | str
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ricochet", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        if isinstance(ready, Path):
            if ready.exists():
                return proc
        else:
            try:
                if httpx.get(ready, timeout=1).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM first, so Granian stops its worker processes too; then reap the whole tree
    (killing just the Granian parent would orphan its workers)."""
    if proc.poll() is not None:
        return
    tree = psutil.Process(proc.pid).children(recursive=True)
    procs_lib.stop(proc)
    _, alive = psutil.wait_procs(tree, timeout=10)
    for child in alive:
        child.kill()


def _tenant(env: dict[str, str]) -> str:
    """A workspace and its API key, as the integration tests make them."""
    settings = ControlSettings(
        database_url=env["RICOCHET_DATABASE_URL"],
        redis_url=env["RICOCHET_REDIS_URL"],
        secret_key=env["RICOCHET_SECRET_KEY"],
    )
    return asyncio.run(make_tenant(settings, "load")).api_key


def _counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM clicks), (SELECT count(DISTINCT id) FROM clicks), "
            "(SELECT coalesce(sum(clicks), 0) FROM link_stats), "
            "(SELECT count(*) FROM events WHERE type = 'link.clicked'), "
            "(SELECT count(*) FROM events WHERE type = 'link.qr_scanned'), "
            "(SELECT count(*) FROM clicks WHERE bot)"
        ).fetchone()
    assert row is not None
    names = ("rows", "distinct", "totals", "clicked_events", "scanned_events", "bots")
    return dict(zip(names, map(int, row), strict=True))


def _per_link(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT l.slug, s.clicks FROM link_stats s JOIN links l ON l.id = s.link_id"
        ).fetchall()
    return {slug: int(n) for slug, n in rows}


def _visit(edge: str, numbers: range, statuses: Counter[int], lock: threading.Lock) -> None:
    """Click n: slug n % 3, a QR scan when n % 10 == 0, a bot when n % 7 == 0."""
    seen: Counter[int] = Counter()
    with httpx.Client(follow_redirects=False, timeout=10) as http:
        for n in numbers:
            url = f"{edge}/{SLUGS[n % 3]}" + ("?qr=1" if n % 10 == 0 else "")
            agent = BOT if n % 7 == 0 else HUMAN
            seen[http.get(url, headers={"user-agent": agent}).status_code] += 1
    with lock:
        statuses.update(seen)


def test_clicks_through_the_edge_are_stored_once_across_an_ingest_kill9(tmp_path: Path) -> None:
    started = time.monotonic()
    pg = EmbeddedPostgres(tmp_path / "home", durable=False)
    store = EmbeddedRedis(tmp_path / "home", durable=False)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    log = tmp_path / "stack.log"
    try:
        database_url, redis_url = pg.start(), store.start()
        edge_port, control_port = procs_lib.free_port(), procs_lib.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RICOCHET_")}
        env.update(
            {
                "RICOCHET_DATABASE_URL": database_url,
                "RICOCHET_REDIS_URL": redis_url,
                "RICOCHET_SECRET_KEY": "k" * 40,
                "RICOCHET_EDGE_PORT": str(edge_port),
                "RICOCHET_CONTROL_PORT": str(control_port),
                "RICOCHET_SHORT_URL_SCHEME": "http",
                "RICOCHET_SPOOL_DIR": str(tmp_path / "spool"),
                "RICOCHET_INGEST_BLOCK_MS": "100",
                "RICOCHET_RATE_LIMIT_PER_MINUTE": "0",
                "RICOCHET_DEFAULT_DOMAIN_ALIASES": "127.0.0.1",  # requests name 127.0.0.1
            }
        )
        subprocess.run(
            [sys.executable, "-m", "ricochet", "migrate"],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        api_key = _tenant(env)
        control = f"http://127.0.0.1:{control_port}"
        edge = f"http://127.0.0.1:{edge_port}"
        procs["control"] = _start(env, log, "control", ready=f"{control}/_/readyz")
        procs["relay"] = _start(
            env, log, "relay", "--ready-file", str(tmp_path / "relay"), ready=tmp_path / "relay"
        )
        procs["edge"] = _start(env, log, "edge", ready=f"{edge}/_/readyz")
        procs["ingest"] = _start(
            env,
            log,
            "ingest",
            "--consumer",
            "c1",
            "--ready-file",
            str(tmp_path / "ingest-1"),
            ready=tmp_path / "ingest-1",
        )

        # Given three links and a workspace subscribed to click and scan events
        auth = {"authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=control, headers=auth, timeout=10) as api:
            for slug in SLUGS:
                body = {"destination": f"https://shop.example/{slug}", "slug": slug}
                assert api.post("/api/v1/links", json=body).status_code == 201
            hook = {
                "url": "https://hooks.example.com/in",
                "event_types": ["link.clicked", "link.qr_scanned"],
            }
            assert api.post("/api/v1/webhooks", json=hook).status_code == 201
        deadline = time.monotonic() + 20
        for slug in SLUGS:  # HEAD: the relay has projected it, and HEAD is never counted
            while httpx.head(f"{edge}/{slug}").status_code != 302:
                assert time.monotonic() < deadline, f"{slug} never reached the edge"
                time.sleep(0.05)

        # When 10,000 clicks go through the edge, and ingest is killed -9 a third of the way
        statuses: Counter[int] = Counter()
        lock = threading.Lock()
        visitors = [
            threading.Thread(target=_visit, args=(edge, range(i, CLICKS, CLIENTS), statuses, lock))
            for i in range(CLIENTS)
        ]
        for visitor in visitors:
            visitor.start()
        deadline = time.monotonic() + 60
        while _counts(database_url)["rows"] < KILL_AT:
            assert time.monotonic() < deadline, f"{_counts(database_url)}\n{log.read_text()}"
            time.sleep(0.01)
        procs["ingest"].kill()  # SIGKILL: no chance to finish or acknowledge anything
        procs["ingest"].wait(10)
        at_kill = _counts(database_url)["rows"]
        procs["ingest"] = _start(
            env,
            log,
            "ingest",
            "--consumer",
            "c1",
            "--ready-file",
            str(tmp_path / "ingest-2"),
            ready=tmp_path / "ingest-2",
        )
        for visitor in visitors:
            visitor.join(90)
            assert not visitor.is_alive()

        # Then every click is stored exactly once, and every human click made one event
        while _counts(database_url)["rows"] < CLICKS:
            assert time.monotonic() < deadline, f"{_counts(database_url)}\n{log.read_text()}"
            time.sleep(0.05)
        time.sleep(0.5)  # would a duplicate arrive late?
        counts = _counts(database_url)
        assert statuses == {302: CLICKS}
        assert at_kill < CLICKS  # killed mid-run indeed
        bots = sum(1 for n in range(CLICKS) if n % 7 == 0)
        scans = sum(1 for n in range(CLICKS) if n % 10 == 0 and n % 7 != 0)
        assert counts == {
            "rows": CLICKS,
            "distinct": CLICKS,
            "totals": CLICKS,
            "clicked_events": CLICKS - bots - scans,
            "scanned_events": scans,
            "bots": bots,
        }
        assert _per_link(database_url) == {
            slug: sum(1 for n in range(CLICKS) if n % 3 == i) for i, slug in enumerate(SLUGS)
        }
        metrics = httpx.get(f"{edge}/_/metrics").text
        assert "ricochet_edge_clicks_dropped_total 0.0" in metrics
        assert time.monotonic() - started < 150
    finally:
        for proc in procs.values():
            _stop(proc)
        store.stop()
        pg.stop()
