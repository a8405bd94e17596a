"""Click streams -> ingest -> PostgreSQL: exactly once, whatever is re-delivered."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest

from control.ingest.consumer import DEAD_STREAM, Ingest
from control.settings import ControlSettings
from shared.clicks import BATCH_FIELD, ClickEvent, encode_batch
from shared.ids import uuid7
from shared.keys import INGEST_GROUP, click_stream
from tests.integration.conftest import resources, run

LINK = str(uuid.uuid4())


def _event(link_id: str = LINK) -> ClickEvent:
    return ClickEvent(
        id=uuid7().hex,
        ts_ms=int(time.time() * 1000),
        link_id=link_id,
        workspace_id=str(uuid.uuid4()),
        domain_id=str(uuid.uuid4()),
        user_agent="Mozilla/5.0",
        referrer="https://news.example/",
    )


def _count(settings: ControlSettings, sql: str) -> int:
    with psycopg.connect(settings.libpq_url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def test_batches_on_every_shard_are_stored_and_counted(control_settings: ControlSettings) -> None:
    events = [_event() for _ in range(40)]

    async def go() -> None:
        async with resources(control_settings) as (engine, redis):
            ingest = Ingest(control_settings, engine, redis, "t")
            await ingest.ensure_groups()
            for shard in range(control_settings.click_shards):
                chunk = events[shard * 10 : (shard + 1) * 10]
                await redis.xadd(click_stream(shard), {BATCH_FIELD: encode_batch(chunk)})
            while ingest.stored < 40:
                await ingest.step()

    run(go())

    assert _count(control_settings, "SELECT count(*) FROM clicks") == 40
    assert _count(control_settings, f"SELECT clicks FROM link_stats WHERE link_id = '{LINK}'") == 40


def test_redelivered_clicks_are_stored_once(control_settings: ControlSettings) -> None:
    events = [_event() for _ in range(5)]

    async def go() -> int:
        async with resources(control_settings) as (engine, redis):
            ingest = Ingest(control_settings, engine, redis, "t")
            await ingest.ensure_groups()
            # The edge retried a flush whose first XADD had in fact succeeded.
            for _ in range(2):
                await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch(events)})
            for _ in range(3):
                await ingest.step()
            return ingest.stored

    assert run(go()) == 5
    assert _count(control_settings, "SELECT count(*) FROM clicks") == 5
    assert _count(control_settings, f"SELECT clicks FROM link_stats WHERE link_id = '{LINK}'") == 5


def test_entries_read_but_not_acked_are_finished_after_a_restart(
    control_settings: ControlSettings,
) -> None:
    events = [_event() for _ in range(7)]

    async def go() -> tuple[int, int]:
        async with resources(control_settings) as (engine, redis):
            await Ingest(control_settings, engine, redis, "same").ensure_groups()
            await redis.xadd(click_stream(1), {BATCH_FIELD: encode_batch(events)})
            # A consumer read the entry, then died before storing or acking it.
            await redis.xreadgroup(INGEST_GROUP, "same", {click_stream(1): ">"})
            restarted = Ingest(control_settings, engine, redis, "same")
            await restarted.recover_own_pending()
            pending = await redis.xpending(click_stream(1), INGEST_GROUP)
            return restarted.stored, pending["pending"]

    assert run(go()) == (7, 0)
    assert _count(control_settings, "SELECT count(*) FROM clicks") == 7


def test_entries_of_a_dead_consumer_are_claimed(control_settings: ControlSettings) -> None:
    events = [_event() for _ in range(3)]

    async def go() -> int:
        async with resources(control_settings) as (engine, redis):
            await Ingest(control_settings, engine, redis, "x").ensure_groups()
            await redis.xadd(click_stream(2), {BATCH_FIELD: encode_batch(events)})
            await redis.xreadgroup(INGEST_GROUP, "dead-host", {click_stream(2): ">"})
            survivor = Ingest(control_settings, engine, redis, "survivor")
            import control.ingest.consumer as consumer

            original = consumer.CLAIM_IDLE_MS
            consumer.CLAIM_IDLE_MS = 0  # treat any idle time as abandoned for this test
            try:
                await survivor.claim_abandoned()
            finally:
                consumer.CLAIM_IDLE_MS = original
            return survivor.stored

    assert run(go()) == 3


def test_undecodable_entry_is_parked_not_dropped(control_settings: ControlSettings) -> None:
    async def go() -> tuple[int, int]:
        async with resources(control_settings) as (engine, redis):
            ingest = Ingest(control_settings, engine, redis, "t")
            await ingest.ensure_groups()
            await redis.xadd(click_stream(0), {BATCH_FIELD: b"\xc1 not msgpack"})
            await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch([_event()])})
            for _ in range(2):
                await ingest.step()
            pending = await redis.xpending(click_stream(0), INGEST_GROUP)
            return await redis.xlen(DEAD_STREAM), pending["pending"]

    assert run(go()) == (1, 0)
    assert _count(control_settings, "SELECT count(*) FROM clicks") == 1


def test_ingest_derives_the_visitor_context_and_never_stores_the_address(
    control_settings: ControlSettings,
) -> None:
    import msgspec

    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
    )
    human = msgspec.structs.replace(
        _event(),
        user_agent=iphone,
        ip="8.8.8.8",
        referrer="https://l.instagram.com/x",
        utm_source="news",
        variant=1,
        tracked=True,
    )
    bot = msgspec.structs.replace(
        _event(),
        user_agent="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    )

    async def go() -> None:
        async with resources(control_settings) as (engine, redis):
            ingest = Ingest(control_settings, engine, redis, "t")
            await ingest.ensure_groups()
            await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch([human, bot])})
            while ingest.stored < 2:
                await ingest.step()

    run(go())

    with psycopg.connect(control_settings.libpq_url) as conn:
        rows = conn.execute(
            "SELECT id, country, device, browser, os, bot, referrer_host, social, variant, "
            "utm_source, tracked FROM clicks"
        ).fetchall()
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'clicks'"
            )
        ]
    by_id = {r[0].hex: r[1:] for r in rows}
    assert by_id[human.id] == (
        "US",
        "mobile",
        "Mobile Safari",
        "iOS",
        False,
        "l.instagram.com",
        "instagram",
        1,
        "news",
        True,
    )
    assert by_id[bot.id][1] == "bot"
    assert by_id[bot.id][4] is True
    assert not any(c == "ip" or "address" in c for c in columns)


def test_trim_drops_only_what_every_group_has_acknowledged(
    control_settings: ControlSettings,
) -> None:
    async def go() -> tuple[int, int, int]:
        async with resources(control_settings) as (engine, redis):
            ingest = Ingest(control_settings, engine, redis, "t")
            await ingest.ensure_groups()
            # A second group (say, a future consumer) that has read nothing yet.
            await redis.xgroup_create(click_stream(0), "other", id="0")
            for _ in range(3):
                await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch([_event()])})
            while ingest.stored < 3:
                await ingest.step()
            kept_for_other = await ingest.trim()
            length_while_other_lags = await redis.xlen(click_stream(0))
            await redis.xgroup_destroy(click_stream(0), "other")
            removed = await ingest.trim()
            return kept_for_other, length_while_other_lags, removed

    kept, length, removed = run(go())

    assert (kept, length) == (0, 3)  # "other" still needs all three
    assert removed == 3


# -- entries that fail on their content ------------------------------------------------


def _poison() -> ClickEvent:
    import msgspec

    # A variant no SMALLINT holds: the database refuses the row every time.
    return msgspec.structs.replace(_event(), variant=40_000)


def test_a_bad_row_does_not_keep_the_other_entries_of_its_batch_out(
    control_settings: ControlSettings,
) -> None:
    import msgspec

    nul = msgspec.structs.replace(_event(), user_agent="Mozilla\x00")  # no NUL in text

    async def go() -> tuple[int, list[bytes], list[bytes], int]:
        async with resources(control_settings) as (engine, redis):
            ingest = Ingest(control_settings, engine, redis, "t")
            await ingest.ensure_groups()
            await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch([_event()])})
            bad = [
                await redis.xadd(
                    click_stream(0), {BATCH_FIELD: encode_batch([_event(), _poison()])}
                ),
                await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch([nul])}),
            ]
            await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch([_event(), _event()])})
            await ingest.step()  # all four entries in one read
            pending = await redis.xpending_range(click_stream(0), INGEST_GROUP, "-", "+", 10)
            return (
                ingest.stored,
                bad,
                [p["message_id"] for p in pending],
                await redis.xlen(DEAD_STREAM),
            )

    stored, bad, pending, dead = run(go())

    assert stored == 3  # the good entries, stored and acked
    assert pending == bad  # the failing ones wait for another delivery
    assert dead == 0
    assert _count(control_settings, "SELECT count(*) FROM clicks") == 3
    assert _count(control_settings, f"SELECT clicks FROM link_stats WHERE link_id = '{LINK}'") == 3


def test_an_entry_failing_every_time_is_dead_lettered_after_max_deliveries(
    control_settings: ControlSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import msgspec

    import control.ingest.consumer as consumer

    settings = msgspec.structs.replace(control_settings, ingest_max_deliveries=2)
    monkeypatch.setattr(consumer, "CLAIM_IDLE_MS", 0)  # any idle time counts as abandoned
    poisoned = encode_batch([_event(), _poison()])

    async def go() -> tuple[int, int, Any, Any]:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "t")
            await ingest.ensure_groups()
            entry = await redis.xadd(click_stream(0), {BATCH_FIELD: poisoned})
            await redis.xadd(click_stream(0), {BATCH_FIELD: encode_batch([_event()])})
            await ingest.step()  # delivery 1: the good entry is stored
            claims = 0
            while (await redis.xpending(click_stream(0), INGEST_GROUP))["pending"]:
                claims += 1  # deliveries 2, 3, ...
                assert claims < 10, "never dead-lettered"
                await ingest.claim_abandoned()
            dead = await redis.xrange(DEAD_STREAM)
            return ingest.stored, claims, entry, dead

    stored, claims, entry, dead = run(go())

    assert stored == 1
    assert claims == 2  # delivered 3 times: more than 2, so parked at the third
    [(_, fields)] = dead
    assert fields[BATCH_FIELD] == poisoned  # as it was: it can be replayed once fixed
    assert fields[b"stream"] == click_stream(0).encode()
    assert fields[b"entry"] == entry
    assert fields[b"reason"] == b"delivered 3 times (limit 2)"
    assert b"smallint" in fields[b"error"]
    assert _count(control_settings, "SELECT count(*) FROM clicks") == 1


def test_an_outage_never_dead_letters_an_entry(control_settings: ControlSettings) -> None:
    from control.db import create_engine

    events = [_event() for _ in range(4)]

    async def go() -> tuple[bool, int, int, int, int]:
        async with resources(control_settings) as (engine, redis):
            await Ingest(control_settings, engine, redis, "same").ensure_groups()
            await redis.xadd(click_stream(3), {BATCH_FIELD: encode_batch(events)})
            # Read, then read again from the history, past the limit (5) of deliveries.
            for start in [">"] * 1 + ["0"] * 6:
                await redis.xreadgroup(INGEST_GROUP, "same", {click_stream(3): start})
            # PostgreSQL unreachable: nothing is the entry's fault.
            down = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", 1)
            failed = False
            try:
                await Ingest(control_settings, down, redis, "same").recover_own_pending()
            except Exception:
                failed = True
            finally:
                await down.dispose()
            pending = (await redis.xpending(click_stream(3), INGEST_GROUP))["pending"]
            dead = await redis.xlen(DEAD_STREAM)
            back = Ingest(control_settings, engine, redis, "same")
            await back.recover_own_pending()  # over the limit, but it works now: stored
            left = (await redis.xpending(click_stream(3), INGEST_GROUP))["pending"]
            return failed, pending, dead, back.stored, left

    assert run(go()) == (True, 1, 0, 4, 0)
    assert _count(control_settings, "SELECT count(*) FROM clicks") == 4


def test_ingest_metrics_line() -> None:
    import datetime as dt

    from control.ingest.metrics import METRICS_EVERY_S, IngestMetrics

    metrics = IngestMetrics()
    start = time.monotonic()
    newest = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    metrics.batch([{"clicked_at": newest}] * 3, 2)

    early = metrics.report(start + 1)
    line = metrics.report(start + METRICS_EVERY_S + 1)
    idle = metrics.report(start + 3 * METRICS_EVERY_S)

    assert early is None
    assert line is not None
    assert line.startswith("ingest: 0 clicks/s, lag 2.0 s, 2 stored, 1 duplicates skipped")
    assert "0 dead-lettered, 0 click events, 1 batches" in line
    assert idle is None  # nothing happened since the last line


def test_ingest_metrics_are_served_for_prometheus() -> None:
    import datetime as dt

    import httpx2

    from control.ingest.metrics import IngestMetrics
    from ricochet.procs import free_port

    port = free_port()
    metrics = IngestMetrics()
    metrics.serve("127.0.0.1", port)
    newest = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=3)
    metrics.batch([{"clicked_at": newest}] * 5, 4, events=3)
    metrics.dead_letter()

    text = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

    assert "ricochet_ingest_clicks_stored_total 4.0" in text
    assert "ricochet_ingest_clicks_duplicate_total 1.0" in text
    assert "ricochet_ingest_click_events_total 3.0" in text
    assert "ricochet_ingest_dead_lettered_total 1.0" in text
    assert "ricochet_ingest_batches_total 1.0" in text
    lag = next(line for line in text.splitlines() if line.startswith("ricochet_ingest_lag_seconds"))
    assert 3.0 <= float(lag.split()[1]) < 10.0


def test_two_ingest_processes_side_by_side_share_the_work_and_store_each_click_once(
    control_settings: ControlSettings,
) -> None:
    import asyncio

    import msgspec

    # Two entries per read and shard, and no lingering for more (which would let the first
    # consumer to read take this whole small backlog into one batch, as it should), so
    # neither consumer can take everything in one step.
    settings = msgspec.structs.replace(
        control_settings, ingest_batch=2, ingest_linger_ms=0, ingest_batch_clicks=200
    )
    links = [str(uuid.uuid4()) for _ in range(5)]
    batches = [[_event(links[(b + i) % 5]) for i in range(100)] for b in range(40)]

    async def go() -> tuple[int, int]:
        async with (
            resources(settings) as (engine_a, redis),
            resources(settings) as (engine_b, _),
        ):
            a = Ingest(settings, engine_a, redis, "a")
            b = Ingest(settings, engine_b, redis, "b")
            await a.ensure_groups()
            for n, batch in enumerate(batches):
                shard = n % settings.click_shards
                await redis.xadd(click_stream(shard), {BATCH_FIELD: encode_batch(batch)})

            async def drain(ingest: Ingest) -> None:
                while a.stored + b.stored < 4_000:
                    await ingest.step()

            await asyncio.wait_for(asyncio.gather(drain(a), drain(b)), 60)
            return a.stored, b.stored

    stored_a, stored_b = run(go())

    assert stored_a + stored_b == 4_000
    assert stored_a > 0  # both took a share
    assert stored_b > 0
    assert _count(control_settings, "SELECT count(DISTINCT id) FROM clicks") == 4_000
    assert _count(control_settings, "SELECT sum(clicks) FROM link_stats") == 4_000
    assert _count(control_settings, "SELECT sum(humans + bots) FROM click_hourly") == 4_000
