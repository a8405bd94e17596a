"""`clicks` is partitioned by UTC day: clicks land in their day's partition, a day without
one gets it on demand, maintenance adds ahead and drops past the retention, and a click
delivered twice is still stored once."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator

import msgspec
import psycopg
import pytest

from control.clicks import partitions
from control.ingest.consumer import Ingest
from control.settings import ControlSettings
from shared.clicks import BATCH_FIELD, ClickEvent, encode_batch
from shared.ids import uuid7_ms
from shared.keys import click_stream
from tests.conftest import Servers
from tests.integration.conftest import resources, run

DAY = dt.timedelta(days=1)
LINK = str(uuid.uuid4())


def _uuid7_at(ms: int) -> uuid.UUID:
    """A UUIDv7 minted at Unix milliseconds `ms` (as the edge would have, then)."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = ms << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62
    return uuid.UUID(int=value | rand & ((1 << 62) - 1))


def _ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def _event(at: dt.datetime, ts_ms: int | None = None) -> ClickEvent:
    return ClickEvent(
        id=_uuid7_at(_ms(at)).hex,
        ts_ms=_ms(at) if ts_ms is None else ts_ms,
        link_id=LINK,
        workspace_id=str(uuid.uuid4()),
        domain_id=str(uuid.uuid4()),
        user_agent="Mozilla/5.0",
    )


def _today_noon() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def _ingest(settings: ControlSettings, *batches: list[ClickEvent]) -> int:
    async def go() -> int:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "t")
            await ingest.ensure_groups()
            for batch in batches:
                await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch(batch)})
            while await ingest.step():
                pass
            return ingest.stored

    return int(run(go()))


def _rows(settings: ControlSettings, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(settings.libpq_url) as conn:
        return conn.execute(sql).fetchall()


def _partitions(settings: ControlSettings) -> set[str]:
    rows = _rows(
        settings,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'clicks'::regclass",
    )
    return {str(r[0]) for r in rows}


def _drop(settings: ControlSettings, day: dt.date) -> None:
    with psycopg.connect(settings.libpq_url) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{partitions.name_of(day)}"')
    partitions.forget()


@pytest.fixture
def settings(control_settings: ControlSettings) -> Iterator[ControlSettings]:
    partitions.forget()  # tests drop partitions behind this process's back
    yield control_settings
    partitions.forget()


def test_clicks_is_partitioned_by_day_with_partitions_ahead(settings: ControlSettings) -> None:
    today = dt.datetime.now(dt.UTC).date()

    [(keydef, pk, default)] = _rows(
        settings,
        "SELECT pg_get_partkeydef('clicks'::regclass), "
        "(SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'pk_clicks'), "
        "partdefid FROM pg_partitioned_table WHERE partrelid = 'clicks'::regclass",
    )

    assert keydef == "RANGE (clicked_at)"
    assert pk == "PRIMARY KEY (clicked_at, id)"
    assert default == 0  # no DEFAULT partition: every day has its own
    expected = {partitions.name_of(today + n * DAY) for n in range(-1, 8)}
    assert expected <= _partitions(settings)


def test_clicks_land_in_the_partition_of_their_utc_day(settings: ControlSettings) -> None:
    midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    times = [
        midnight - dt.timedelta(milliseconds=1),  # last millisecond of yesterday
        midnight,  # first of today
        midnight + 15 * dt.timedelta(hours=1),
        midnight + 3 * DAY + dt.timedelta(hours=6),
        midnight - 20 * DAY,  # no partition yet: made on demand
    ]
    _drop(settings, (midnight - 20 * DAY).date())
    events = [_event(at, ts_ms=_ms(at) + 2) for at in times]  # the edge's clock 2 ms later

    assert _ingest(settings, events) == 5

    rows = _rows(settings, "SELECT id, clicked_at, tableoid::regclass::text FROM clicks")
    where = {r[0]: (r[1], r[2]) for r in rows}
    for event, at in zip(events, times, strict=True):
        clicked_at, partition = where[uuid.UUID(event.id)]
        assert clicked_at == at  # the time in the id, not ts_ms
        assert uuid7_ms(uuid.UUID(event.id)) == _ms(at)
        assert partition == partitions.name_of(at.date())


def test_a_click_thirty_days_ahead_is_stored_in_a_partition_made_for_it(
    settings: ControlSettings,
) -> None:
    ahead = _today_noon() + 30 * DAY
    _drop(settings, ahead.date())
    assert partitions.name_of(ahead.date()) not in _partitions(settings)

    stored = _ingest(settings, [_event(_today_noon()), _event(ahead)])

    assert stored == 2
    assert partitions.name_of(ahead.date()) in _partitions(settings)
    [(where,)] = _rows(
        settings, f"SELECT tableoid::regclass::text FROM clicks WHERE clicked_at > '{ahead.date()}'"
    )
    assert where == partitions.name_of(ahead.date())


def test_drop_older_than_drops_only_partitions_past_the_retention(
    settings: ControlSettings,
) -> None:
    now = _today_noon()
    today = now.date()
    old_days = [today - n * DAY for n in (500, 401, 400, 399)]

    async def go() -> tuple[list[str], list[str]]:
        async with resources(settings) as (engine, _):
            async with engine.begin() as conn:
                await partitions.ensure_days(conn, old_days)
            async with engine.begin() as conn:
                kept_all = await partitions.drop_older_than(conn, 0, now=now)
            async with engine.begin() as conn:
                return kept_all, await partitions.drop_older_than(conn, 400, now=now)

    assert _ingest(settings, [_event(now - 500 * DAY), _event(now - 399 * DAY)]) == 2
    kept_all, dropped = run(go())

    assert kept_all == []  # 0: keep every click
    # Every click in a dropped partition is older than 400 days; today-400 still holds
    # clicks younger than that (its afternoon), so it stays.
    assert partitions.name_of(today - 500 * DAY) in dropped
    assert partitions.name_of(today - 401 * DAY) in dropped
    assert all(name < partitions.name_of(today - 400 * DAY) for name in dropped)
    left = _partitions(settings)
    assert {partitions.name_of(d) for d in old_days[2:]} <= left
    assert partitions.name_of(today) in left
    assert _rows(settings, "SELECT count(*) FROM clicks") == [(1,)]
    # A straggler for a dropped day still finds a home (this process forgot the partition).
    assert _ingest(settings, [_event(now - 500 * DAY)]) == 1


def test_ensure_ahead_is_idempotent(settings: ControlSettings) -> None:
    far = dt.datetime(2100, 1, 1, 12, tzinfo=dt.UTC)

    async def go() -> tuple[list[str], list[str], list[str]]:
        async with resources(settings) as (engine, _):
            async with engine.begin() as conn:
                first = await partitions.ensure_ahead(conn, 3, now=far)
            async with engine.begin() as conn:
                again = await partitions.ensure_ahead(conn, 3, now=far)
            async with engine.begin() as conn:
                await partitions.ensure_ahead(conn)
            async with engine.begin() as conn:
                today = await partitions.ensure_ahead(conn)
            return first, again, today

    first, again, today = run(go())

    assert first == [
        "clicks_p20991231",
        "clicks_p21000101",
        "clicks_p21000102",
        "clicks_p21000103",
        "clicks_p21000104",
    ]
    assert again == []
    assert today == []
    assert set(first) <= _partitions(settings)


def test_a_click_delivered_again_is_stored_once_whatever_its_ts_ms(
    settings: ControlSettings,
) -> None:
    click = _event(_today_noon())
    # The edge retried a flush (same entry twice), and a producer re-stamped ts_ms.
    restamped = msgspec.structs.replace(click, ts_ms=click.ts_ms + 5_000)

    first = _ingest(settings, [click], [click])
    second = _ingest(settings, [restamped])

    assert (first, second) == (1, 0)
    assert _rows(settings, "SELECT count(*), min(clicked_at) FROM clicks") == [(1, _today_noon())]
    assert _rows(settings, f"SELECT clicks FROM link_stats WHERE link_id = '{LINK}'") == [(1,)]


def test_migration_partitions_existing_clicks_and_downgrades(servers: Servers) -> None:
    from control.migrate import upgrade

    name = f"ricochet_partitions_{os.environ.get('PYTEST_XDIST_WORKER', 'gw0')}"
    base = servers.admin_url.rpartition("/")[0]
    url = f"{base}/{name}"
    with psycopg.connect(servers.admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(url, "0004")
        noon = _today_noon()
        v7 = {_uuid7_at(_ms(noon - n * DAY)): noon - n * DAY for n in (0, 3, 40)}
        v4, v4_at = uuid.uuid4(), noon - 7 * DAY
        with psycopg.connect(url) as conn:
            for click_id, at in [*v7.items(), (v4, v4_at)]:
                conn.execute(
                    "INSERT INTO clicks (id, link_id, workspace_id, domain_id, clicked_at, "
                    "touch, user_agent, referrer, country) "
                    "VALUES (%s, %s, %s, %s, %s, 'link', '', '', '')",
                    # Stored before: clicked_at was the edge's clock, 3 ms after the id's.
                    (
                        click_id,
                        uuid.uuid4(),
                        uuid.uuid4(),
                        uuid.uuid4(),
                        at + dt.timedelta(0, 0, 3000),
                    ),
                )

        upgrade(url)

        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT id, clicked_at, tableoid::regclass::text FROM clicks")
            after = {r[0]: (r[1], r[2]) for r in rows}
            kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'clicks'").fetchone()
        assert kind == ("p",)
        assert len(after) == 4
        for click_id, at in v7.items():  # now the time in the id, in that day's partition
            assert after[click_id] == (at, partitions.name_of(at.date()))
        moved = v4_at + dt.timedelta(0, 0, 3000)  # not a UUIDv7: kept as it was
        assert after[v4] == (moved, partitions.name_of(moved.date()))

        from alembic import command

        from control.migrate import alembic_config

        command.downgrade(alembic_config(url), "0004")
        with psycopg.connect(url) as conn:
            kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'clicks'").fetchone()
            count = conn.execute("SELECT count(*) FROM clicks").fetchone()
            leftovers = conn.execute(
                "SELECT count(*) FROM pg_class WHERE relname LIKE 'clicks\\_%' AND relkind = 'r'"
            ).fetchone()
        assert (kind, count, leftovers) == (("r",), (4,), (0,))

        upgrade(url)  # and up again
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM clicks").fetchone() == (4,)
    finally:
        with psycopg.connect(servers.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_clicks_maintain_command_prints_what_it_created_and_dropped(
    settings: ControlSettings,
) -> None:
    from click.testing import CliRunner

    from ricochet.cli import main

    ancient = dt.datetime.now(dt.UTC).date() - 1000 * DAY

    async def make_ancient() -> None:
        async with resources(settings) as (engine, _), engine.begin() as conn:
            await partitions.ensure_days(conn, [ancient])

    run(make_ancient())
    _drop(settings, dt.datetime.now(dt.UTC).date() + 9 * DAY)
    env = {
        "RICOCHET_DATABASE_URL": settings.database_url,
        "RICOCHET_REDIS_URL": settings.redis_url,
        "RICOCHET_SECRET_KEY": settings.secret_key,
    }

    first = CliRunner().invoke(main, ["clicks", "maintain", "--days-ahead", "9"], env=env)
    again = CliRunner().invoke(
        main, ["clicks", "maintain", "--days-ahead", "9", "--retention-days", "0"], env=env
    )

    assert first.exit_code == 0, first.output
    ahead = partitions.name_of(dt.datetime.now(dt.UTC).date() + 9 * DAY)
    assert f"created {ahead}" in first.output.splitlines()
    assert f"dropped {partitions.name_of(ancient)}" in first.output.splitlines()
    assert "dropped (older than 400 days)" in first.output
    assert again.exit_code == 0, again.output
    assert again.output == "0 partitions created, 0 dropped (none: retention is off)\n"
