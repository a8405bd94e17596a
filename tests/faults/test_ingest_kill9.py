"""Ingest killed with -9 mid-stream, restarted under the same consumer name: every click
is stored exactly once (rows, distinct ids and per-link totals all say 10,000)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import redis

from ricochet.embedded import EmbeddedPostgres, EmbeddedRedis
from shared.clicks import BATCH_FIELD, ClickEvent, encode_batch
from shared.ids import uuid7
from shared.keys import INGEST_GROUP, click_stream

CLICKS = 10_000
PER_ENTRY = 100  # clicks per XADD, as the edge batches them
SHARDS = 4
KILL_AT = 3_000


def _stored(database_url: str) -> tuple[int, int, int]:
    """(rows, distinct ids, sum of per-link totals)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT id), "
            "(SELECT coalesce(sum(clicks), 0) FROM link_stats) FROM clicks"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _waiting_on_link_stats(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = 'link_stats'::regclass AND NOT granted"
        ).fetchone()
    return bool(row and row[0])


def _ingest(env: dict[str, str], log: Path, ready: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ricochet", "ingest", "--consumer", "c1", "--ready-file", ready],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.02)
    return proc


def _produce(redis_url: str, links: list[str], done: threading.Event) -> None:
    """What the edge does: batches of clicks XADDed round-robin over the shards."""
    client = redis.Redis.from_url(redis_url)
    try:
        workspace, domain = str(uuid.uuid4()), str(uuid.uuid4())
        for n in range(CLICKS // PER_ENTRY):
            events = [
                ClickEvent(
                    id=uuid7().hex,
                    ts_ms=time.time_ns() // 1_000_000,
                    link_id=links[i % len(links)],
                    workspace_id=workspace,
                    domain_id=domain,
                    user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                )
                for i in range(PER_ENTRY)
            ]
            client.xadd(click_stream(n % SHARDS), {BATCH_FIELD: encode_batch(events)})
            time.sleep(0.02)  # ~5,000 clicks/s: the kill lands mid-stream
    finally:
        client.close()
        done.set()


def test_ingest_killed_with_9_mid_stream_stores_every_click_exactly_once(tmp_path: Path) -> None:
    started = time.monotonic()
    pg = EmbeddedPostgres(tmp_path / "home", durable=False)
    store = EmbeddedRedis(tmp_path / "home", durable=False)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        database_url, redis_url = pg.start(), store.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RICOCHET_")}
        env.update(
            {
                "RICOCHET_DATABASE_URL": database_url,
                "RICOCHET_REDIS_URL": redis_url,
                "RICOCHET_SECRET_KEY": "k" * 40,
                "RICOCHET_CLICK_SHARDS": str(SHARDS),
                "RICOCHET_INGEST_BLOCK_MS": "100",
            }
        )
        subprocess.run(
            [sys.executable, "-m", "ricochet", "migrate"],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        log = tmp_path / "ingest.log"
        procs.append(_ingest(env, log, tmp_path / "ready-1"))
        links = [str(uuid.uuid4()) for _ in range(7)]
        produced = threading.Event()
        producer = threading.Thread(target=_produce, args=(redis_url, links, produced))
        producer.start()

        # When ingest has stored ~3,000 clicks, it is killed -9 at the worst moment: a batch
        # committed in PostgreSQL but not yet acknowledged in Redis. To land there every
        # time: hold its next transaction on a lock, pause Redis writes, let it commit.
        deadline = time.monotonic() + 20
        while _stored(database_url)[0] < KILL_AT:
            assert time.monotonic() < deadline, f"stored {_stored(database_url)}"
            time.sleep(0.01)
        client = redis.Redis.from_url(redis_url)
        with psycopg.connect(database_url) as blocker:
            blocker.execute("LOCK TABLE link_stats IN SHARE MODE")  # its upsert waits
            while not _waiting_on_link_stats(database_url):
                assert time.monotonic() < deadline, "ingest never reached the lock"
                time.sleep(0.01)
            before = _stored(database_url)[0]
            client.client_pause(10_000, all=False)  # XACK (a write) now waits
            blocker.rollback()  # its transaction goes on and commits
        while _stored(database_url)[0] == before:
            assert time.monotonic() < deadline, "ingest never committed"
            time.sleep(0.005)
        time.sleep(0.05)  # at its XACK, held by the pause
        procs[0].kill()  # SIGKILL: no chance to clean up
        procs[0].wait(10)
        client.client_unpause()
        at_kill = _stored(database_url)[0]
        unacked = sum(
            int(client.xpending(click_stream(n), INGEST_GROUP)["pending"]) for n in range(SHARDS)
        )
        client.close()

        # And restarted under the same consumer name while the edge keeps writing
        procs.append(_ingest(env, log, tmp_path / "ready-2"))
        producer.join(30)
        assert produced.is_set()

        # Then every click is there once, and the totals counted each once
        deadline = time.monotonic() + 30
        while _stored(database_url)[0] < CLICKS:
            assert time.monotonic() < deadline, f"stored {_stored(database_url)}\n{log.read_text()}"
            time.sleep(0.05)
        client = redis.Redis.from_url(redis_url)
        try:
            while any(
                client.xpending(click_stream(n), INGEST_GROUP)["pending"] for n in range(SHARDS)
            ):
                assert time.monotonic() < deadline, "entries left unacknowledged"
                time.sleep(0.05)
            dead = client.xlen("clicks:dead")
        finally:
            client.close()
        time.sleep(0.3)  # would a duplicate arrive late?
        assert _stored(database_url) == (CLICKS, CLICKS, CLICKS)
        assert dead == 0
        assert KILL_AT <= at_kill < CLICKS  # killed mid-stream indeed
        assert unacked > 0  # ... with stored entries still pending, delivered again
        assert time.monotonic() - started < 60
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        store.stop()
        pg.stop()
