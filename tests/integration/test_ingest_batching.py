"""Adaptive batching: small entries arriving over a short window go into one transaction,
the rollups of a merged batch equal the per-click counts, and a shutdown or a crash while
lingering loses nothing (docs/adr/0012-ingest-adaptive-batching.md)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import msgspec
import psycopg

from control.ingest.consumer import Ingest
from control.settings import ControlSettings
from shared.clicks import BATCH_FIELD, ClickEvent, encode_batch
from shared.ids import uuid7
from shared.keys import INGEST_GROUP, click_stream
from tests.integration.conftest import resources, run

AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
REFERRERS = ["", "https://l.instagram.com/", "https://www.google.com/"]


def _event(link_id: str, workspace_id: str, n: int) -> ClickEvent:
    return ClickEvent(
        id=uuid7().hex,
        ts_ms=int(time.time() * 1000),
        link_id=link_id,
        workspace_id=workspace_id,
        domain_id=str(uuid.UUID(int=1)),
        touch="qr" if n % 4 == 0 else "link",
        user_agent=AGENTS[n % len(AGENTS)],
        referrer=REFERRERS[n % len(REFERRERS)],
        utm_source="news" if n % 2 else "",
    )


def _lingering(settings: ControlSettings, **kw: int) -> ControlSettings:
    return msgspec.structs.replace(settings, **kw)


def _sql(settings: ControlSettings, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(settings.libpq_url) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]


async def _pending(ingest: Ingest) -> int:
    total = 0
    for stream in ingest.streams:
        total += int((await ingest.redis.xpending(stream, INGEST_GROUP))["pending"])
    return total


def test_entries_arriving_in_small_pieces_are_stored_in_one_transaction(
    control_settings: ControlSettings,
) -> None:
    settings = _lingering(control_settings, ingest_linger_ms=1000, ingest_batch_clicks=10_000)
    link, workspace = str(uuid.uuid4()), str(uuid.uuid4())
    pieces = [[_event(link, workspace, 5 * p + i) for i in range(5)] for p in range(6)]

    async def go() -> tuple[int, int, int]:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "t")
            await ingest.ensure_groups()
            # Given the first piece, read by a step that then lingers
            await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch(pieces[0])})
            step = asyncio.create_task(ingest.step())
            # When the rest arrive a few at a time, on every shard, within the window
            for n, piece in enumerate(pieces[1:], start=1):
                await asyncio.sleep(0.05)
                await redis.xadd(click_stream(n % 4), {BATCH_FIELD: encode_batch(piece)})
            stored = await step
            return stored, ingest.metrics.batches, await _pending(ingest)

    stored, transactions, pending = run(go())

    # Then one transaction stored them all, and every shard's entries were acknowledged
    assert stored == 30
    assert transactions == 1
    assert pending == 0
    assert _sql(settings, f"SELECT clicks FROM link_stats WHERE link_id = '{link}'") == [(30,)]


def test_lingering_ends_once_a_batch_holds_enough_clicks(
    control_settings: ControlSettings,
) -> None:
    settings = _lingering(control_settings, ingest_linger_ms=1000, ingest_batch_clicks=20)
    link, workspace = str(uuid.uuid4()), str(uuid.uuid4())

    async def go() -> tuple[int, float, int]:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "t")
            await ingest.ensure_groups()
            for shard in (0, 1):
                events = [_event(link, workspace, i) for i in range(10)]
                await redis.xadd(click_stream(shard), {BATCH_FIELD: encode_batch(events)})
            started = time.monotonic()
            stored = await ingest.step()
            return stored, time.monotonic() - started, ingest.metrics.batches

    stored, took, transactions = run(go())

    assert (stored, transactions) == (20, 1)
    assert took < 0.9  # did not wait out the 1 s window: 20 clicks were a batch's worth


def test_a_read_bigger_than_a_batch_is_stored_in_several_transactions(
    control_settings: ControlSettings,
) -> None:
    settings = _lingering(control_settings, ingest_linger_ms=0, ingest_batch_clicks=25)
    link, workspace = str(uuid.uuid4()), str(uuid.uuid4())

    async def go() -> tuple[int, int, int]:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "t")
            await ingest.ensure_groups()
            for n in range(8):  # 8 entries of 10 clicks over 4 shards: one read
                events = [_event(link, workspace, 10 * n + i) for i in range(10)]
                await redis.xadd(click_stream(n % 4), {BATCH_FIELD: encode_batch(events)})
            stored = await ingest.step()
            return stored, ingest.metrics.batches, await _pending(ingest)

    stored, transactions, pending = run(go())

    assert (stored, pending) == (80, 0)
    assert transactions == 4  # 20 clicks each: a third entry would pass 25


def test_rollups_of_a_merged_batch_equal_the_per_click_counts(
    control_settings: ControlSettings,
) -> None:
    settings = _lingering(control_settings, ingest_linger_ms=500, ingest_batch_clicks=10_000)
    workspaces = [str(uuid.uuid4()) for _ in range(2)]
    links = [(str(uuid.uuid4()), workspaces[n % 2]) for n in range(7)]
    entries = [
        [_event(*links[(e + i) % len(links)], e * 13 + i) for i in range(13)] for e in range(12)
    ]
    # The edge retried a flush: the same clicks once more, on another shard, same window.
    entries.append(entries[3])

    async def go() -> tuple[int, int]:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "t")
            await ingest.ensure_groups()
            for n, events in enumerate(entries):
                await redis.xadd(click_stream(n % 4), {BATCH_FIELD: encode_batch(events)})
            while ingest.stored < 12 * 13:
                await ingest.step()
            return ingest.stored, ingest.metrics.batches

    stored, transactions = run(go())

    assert stored == 12 * 13
    assert transactions == 1
    hourly = _sql(
        settings,
        "SELECT link_id, hour, workspace_id, humans, bots, human_qr, bot_qr FROM click_hourly",
    )
    assert sorted(hourly) == sorted(
        _sql(
            settings,
            "SELECT link_id, date_trunc('hour', clicked_at, 'UTC'), workspace_id, "
            "count(*) FILTER (WHERE NOT bot), count(*) FILTER (WHERE bot), "
            "count(*) FILTER (WHERE NOT bot AND touch = 'qr'), "
            "count(*) FILTER (WHERE bot AND touch = 'qr') FROM clicks GROUP BY 1, 2, 3",
        )
    )
    assert sum(r[3] + r[4] for r in hourly) == 12 * 13  # type: ignore[operator]
    dims = _sql(
        settings,
        "SELECT link_id, hour, dimension, value, workspace_id, humans, bots FROM click_hourly_dims",
    )
    from control.clicks.rollups import DIMENSIONS

    expected = [
        row
        for d in DIMENSIONS
        for row in _sql(
            settings,
            f"SELECT link_id, date_trunc('hour', clicked_at, 'UTC'), '{d}', {d}, workspace_id, "
            "count(*) FILTER (WHERE NOT bot), count(*) FILTER (WHERE bot) "
            "FROM clicks GROUP BY 1, 2, 4, 5",
        )
    ]
    assert sorted(dims) == sorted(expected)
    assert {r[3] for r in dims if r[2] == "utm_source"} == {"", "news"}
    assert sorted(_sql(settings, "SELECT link_id::text, clicks FROM link_stats")) == sorted(
        _sql(settings, "SELECT link_id::text, count(*) FROM clicks GROUP BY 1")
    )


def test_a_shutdown_while_lingering_stores_what_was_read(
    control_settings: ControlSettings,
) -> None:
    settings = _lingering(control_settings, ingest_linger_ms=1000, ingest_batch_clicks=10_000)
    link, workspace = str(uuid.uuid4()), str(uuid.uuid4())
    events = [_event(link, workspace, i) for i in range(9)]

    async def go() -> tuple[int, int, int]:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "t")
            stop = asyncio.Event()
            running = asyncio.create_task(ingest.run(stop))
            await ingest.ensure_groups()
            await redis.xadd(click_stream(2), {BATCH_FIELD: encode_batch(events)})
            # Given the entry read and held while ingest lingers (pending, nothing stored)
            deadline = time.monotonic() + 10
            while not await _pending(ingest):
                assert time.monotonic() < deadline, "never read"
                await asyncio.sleep(0.005)
            held = ingest.stored
            # When asked to stop
            stop.set()
            await asyncio.wait_for(running, 5)
            return held, ingest.stored, await _pending(ingest)

    held, stored, pending = run(go())

    # Then what it held was stored and acknowledged before it ended
    assert held == 0
    assert (stored, pending) == (9, 0)
    assert _sql(settings, "SELECT count(*) FROM clicks") == [(9,)]


def test_a_crash_while_lingering_leaves_the_entries_pending_for_a_restart(
    control_settings: ControlSettings,
) -> None:
    settings = _lingering(control_settings, ingest_linger_ms=1000, ingest_batch_clicks=10_000)
    link, workspace = str(uuid.uuid4()), str(uuid.uuid4())
    events = [_event(link, workspace, i) for i in range(11)]

    async def go() -> tuple[int, int, int, int]:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "same")
            await ingest.ensure_groups()
            await redis.xadd(click_stream(1), {BATCH_FIELD: encode_batch(events)})
            step = asyncio.create_task(ingest.step())
            deadline = time.monotonic() + 10
            while not await _pending(ingest):
                assert time.monotonic() < deadline, "never read"
                await asyncio.sleep(0.005)
            # The process dies mid-linger (its task is torn down, nothing more runs)
            step.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await step
            held = await _pending(ingest)
            restarted = Ingest(settings, engine, redis, "same")
            await restarted.recover_own_pending()
            return ingest.stored, held, restarted.stored, await _pending(restarted)

    before, held, recovered, left = run(go())

    assert (before, held) == (0, 1)  # read, not stored: it stayed pending
    assert (recovered, left) == (11, 0)
    assert _sql(settings, "SELECT count(*), count(DISTINCT id) FROM clicks") == [(11, 11)]


def test_clicks_read_by_a_step_that_failed_are_stored_by_the_next_not_a_minute_later(
    control_settings: ControlSettings,
) -> None:
    # Given clicks on the streams, and an ingest whose first step fails after reading them
    # (as when Redis goes away while it lingers for more)
    settings = _lingering(control_settings, ingest_linger_ms=0)
    link, workspace = str(uuid.uuid4()), str(uuid.uuid4())

    async def go() -> tuple[int, float]:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "flaky")
            await ingest.ensure_groups()
            for shard in range(settings.click_shards):
                batch = [_event(link, workspace, n) for n in range(50)]
                await redis.xadd(click_stream(shard), {BATCH_FIELD: encode_batch(batch)})
            real = ingest.process_read
            failures = 0

            async def fail_once(read: object, **kw: bool) -> int:
                nonlocal failures
                if failures == 0:
                    failures += 1
                    raise ConnectionError("Redis went away")  # after the read: now pending
                return await real(read, **kw)  # type: ignore[arg-type]

            ingest.process_read = fail_once  # type: ignore[method-assign]
            stop = asyncio.Event()
            started = time.monotonic()
            task = asyncio.create_task(ingest.run(stop))
            # When it keeps running; then every click is stored within seconds
            for _ in range(300):  # 15 s at most
                if ingest.stored >= 200:
                    break
                await asyncio.sleep(0.05)
            took = time.monotonic() - started
            stop.set()
            await task
            return ingest.stored, took

    stored, took = run(go())

    assert stored == 200
    assert took < 10  # XAUTOCLAIM would only take them back after 60 s idle
    assert _sql(settings, "SELECT count(*) FROM clicks") == [(200,)]
