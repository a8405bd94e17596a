"""Test servers: real PostgreSQL and Redis for the integration and e2e tiers.

Embedded servers (the same ones `ricochet up` uses) start once per test process in a
throw-away directory, unless RICOCHET_TEST_DATABASE_URL / RICOCHET_TEST_REDIS_URL point at
servers of your own. Each xdist worker gets its own database and Redis db number; each test
starts from empty tables and an empty Redis db.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

TEST_SECRET = "test-secret-key-which-is-long-enough-0123456789"


@dataclass(frozen=True)
class Servers:
    admin_url: str  # a database to issue CREATE/DROP DATABASE from
    database_url: str
    redis_url: str
    home: Path


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") else 0


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    from ricochet.embedded import EmbeddedPostgres, EmbeddedRedis

    home = Path(tempfile.mkdtemp(prefix="ricochet-test-"))
    pg = redis_server = None
    admin_url = os.environ.get("RICOCHET_TEST_DATABASE_URL")
    redis_base = os.environ.get("RICOCHET_TEST_REDIS_URL")
    try:
        if not admin_url:
            pg = EmbeddedPostgres(home, durable=False)
            pg.start()
            admin_url = pg.url("postgres")
        if not redis_base:
            redis_server = EmbeddedRedis(home, durable=False)
            redis_server.start()
            redis_base = redis_server.url()
        index = _worker_index()
        db_name = f"ricochet_test_{index}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db_name}"')
        database_url = _with_database(admin_url, db_name)
        from control.migrate import upgrade

        upgrade(database_url)
        redis_url = f"{redis_base.rstrip('/').rsplit('/', 1)[0]}/{1 + index}"
        yield Servers(admin_url, database_url, redis_url, home)
    finally:
        if pg is not None:
            pg.stop()
        if redis_server is not None:
            redis_server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename <> 'alembic_version'"
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def clean(servers: Servers) -> Servers:
    """Empty tables and Redis db before the test: each test starts from nothing."""
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        tables = _tables(conn)
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
    client = redis.Redis.from_url(servers.redis_url)
    client.flushdb()
    client.close()
    return servers


@pytest.fixture
def control_settings(clean: Servers):  # type: ignore[no-untyped-def]
    from control.settings import ControlSettings

    return ControlSettings(
        database_url=clean.database_url,
        redis_url=clean.redis_url,
        secret_key=TEST_SECRET,
        short_url_scheme="http",
        default_domain="sho.rt",
        relay_poll_s=0.2,
        ingest_block_ms=100,
    )
