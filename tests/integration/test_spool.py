"""Clicks survive Redis being unreachable: spooled to disk, replayed once it answers."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from redis.asyncio import Redis

from control.settings import ControlSettings
from edge.capture import ClickCapture
from edge.metrics import Counters
from edge.spool import Spool
from shared.clicks import BATCH_FIELD, ClickEvent, decode_batch
from shared.ids import uuid7
from shared.keys import click_streams
from tests.integration.conftest import run


def _clicks(n: int) -> list[ClickEvent]:
    return [
        ClickEvent(
            id=uuid7().hex,
            ts_ms=int(time.time() * 1000),
            link_id=str(uuid.uuid4()),
            workspace_id="w",
            domain_id="d",
        )
        for _ in range(n)
    ]


def _capture(redis: Redis, spool_dir: Path, name: str, counters: Counters) -> ClickCapture:
    return ClickCapture(
        redis, Spool(spool_dir, name), counters, shards=4, batch=10, flush_ms=10, limit=1000
    )


async def _stream_ids(redis: Redis) -> list[str]:
    ids = []
    for stream in click_streams(4):
        for _, fields in await redis.xrange(stream):
            ids.extend(e.id for e in decode_batch(fields[BATCH_FIELD]))
    return ids


def test_clicks_spool_while_redis_is_down_and_arrive_once_after(
    control_settings: ControlSettings, tmp_path: Path
) -> None:
    clicks = _clicks(25)

    async def go() -> tuple[Counters, Counters, list[str], bool]:
        down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        while_down = Counters()
        capture = _capture(down, tmp_path, "worker-a", while_down)
        for click in clicks:
            capture.record(click)
        await capture.flush()
        await capture.drain()
        await down.aclose()
        live = Redis.from_url(control_settings.redis_url)
        after = Counters()
        revived = _capture(live, tmp_path, "worker-b", after)  # any worker replays any spool
        revived._next_probe = 0.0
        await revived.recover()
        ids = await _stream_ids(live)
        leftovers = revived.spool.has_files()
        await live.aclose()
        return while_down, after, ids, leftovers

    while_down, after, ids, leftovers = run(go())

    assert while_down.clicks_spooled == 25
    assert while_down.clicks_dropped == 0
    assert after.clicks_replayed == 25
    assert sorted(ids) == sorted(c.id for c in clicks)
    assert leftovers is False


def test_a_spool_left_mid_replay_by_a_dead_worker_is_replayed(
    control_settings: ControlSettings, tmp_path: Path
) -> None:
    clicks = _clicks(5)

    async def go() -> list[str]:
        spool = Spool(tmp_path, "dead")
        from shared.clicks import encode_batch

        spool.append(encode_batch(clicks))
        spool.close()
        # A worker that claimed it and died (pid 999999 is not alive).
        spool.path.rename(spool.path.with_suffix(".replaying-999999"))
        live = Redis.from_url(control_settings.redis_url)
        capture = _capture(live, tmp_path, "survivor", Counters())
        capture.spool.orphans_of_dead()
        await capture.recover()
        ids = await _stream_ids(live)
        await live.aclose()
        return ids

    assert sorted(run(go())) == sorted(c.id for c in clicks)
