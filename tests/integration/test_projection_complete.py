"""The relay keeps the projection known to be complete (ADR 0013), on real PostgreSQL + Redis.

The marker must exist only while every live link is in Redis: it comes back by itself after
a flush or lost writes, and never appears before a link created during the rebuild is there.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
from redis.asyncio import Redis
from starlette.testclient import TestClient

from control.relay.service import Relay
from control.settings import ControlSettings
from shared.keys import PROJECTION_MARKER, PROJECTION_REBUILD, link_key
from tests.integration.conftest import Seed, resources, run


def _create(api: TestClient, seed: Seed, slug: str) -> None:
    response = api.post(
        "/api/v1/links",
        json={"destination": "a.example/x", "slug": slug},
        headers=seed.alice.auth,
    )
    assert response.status_code == 201, response.text


def _watermark(settings: ControlSettings) -> int:
    with psycopg.connect(settings.libpq_url, autocommit=True) as conn:
        row = conn.execute("SELECT seq FROM projection_watermark WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def _relay(settings: ControlSettings, engine: Any, redis: Redis) -> Relay:
    relay = Relay(settings, engine, redis, enqueue=lambda ids: None)
    relay.completeness.check_every = 0.0  # every step checks: the test decides the pace
    return relay


async def _settle(relay: Relay) -> float:
    """Step the relay until the projection is complete again; returns the seconds it took."""
    start, timeout = time.monotonic(), 20.0
    while True:
        await relay.step()
        if relay.completeness.complete and not relay.completeness.rebuilt():
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, "the projection never became complete"
        await asyncio.sleep(0.01)


def test_a_fresh_relay_rebuilds_then_marks_the_projection_complete(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    # Given links in PostgreSQL and an empty Redis (never relayed)
    for n in range(5):
        _create(api, seed, f"fresh-{n}")

    async def go() -> tuple[Any, list[Any]]:
        async with resources(control_settings) as (engine, redis):
            await redis.flushdb()
            relay = _relay(control_settings, engine, redis)
            # When the relay leads
            await relay.step()
            assert not relay.completeness.complete
            assert await redis.exists(PROJECTION_MARKER) == 0  # no marker while rebuilding
            await _settle(relay)
            keys = [await redis.exists(link_key("sho.rt", f"fresh-{n}")) for n in range(5)]
            return await redis.hgetall(PROJECTION_MARKER), keys

    marker, keys = run(go())

    # Then every link is in Redis and the marker carries the relay's watermark
    assert keys == [1] * 5
    assert int(marker[b"seq"]) == _watermark(control_settings) > 0
    assert int(marker[b"since"]) > 0


def test_after_a_flush_the_marker_is_gone_and_comes_back_with_every_link(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    _create(api, seed, "survivor")

    async def go() -> tuple[int, int, int]:
        async with resources(control_settings) as (engine, redis):
            relay = _relay(control_settings, engine, redis)
            await _settle(relay)
            # When Redis loses everything
            await redis.flushdb()
            gone = await redis.exists(PROJECTION_MARKER)
            await _settle(relay)
            return gone, await redis.exists(PROJECTION_MARKER), relay.completeness.rebuilds

    gone, back, rebuilds = run(go())

    assert gone == 0
    assert back == 1
    assert rebuilds == 2  # the first start, then after the flush

    async def key() -> int:
        async with resources(control_settings) as (_, redis):
            return int(await redis.exists(link_key("sho.rt", "survivor")))

    assert run(key()) == 1


def test_a_marker_behind_the_watermark_is_dropped_at_once_and_the_lost_link_restored(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    async def go() -> tuple[int, int, int]:
        async with resources(control_settings) as (engine, redis):
            relay = _relay(control_settings, engine, redis)
            await _settle(relay)
            # Given a link relayed after the projection was complete
            _create(api, seed, "late")
            await relay.step()
            key = link_key("sho.rt", "late")
            assert await redis.exists(key) == 1
            seq = int(await redis.hget(PROJECTION_MARKER, "seq"))
            assert seq == _watermark(control_settings)
            # When a failover loses the last batch: its key and its marker update
            await redis.delete(key)
            await redis.hset(PROJECTION_MARKER, "seq", seq - 1)
            relay.completeness._next_check = 0.0
            await relay.completeness.check()
            # Then edges stop trusting misses before the rebuild has written anything
            dropped = await redis.exists(PROJECTION_MARKER)
            await _settle(relay)
            return dropped, await redis.exists(key), await redis.exists(PROJECTION_MARKER)

    assert run(go()) == (0, 1, 1)


def test_a_link_created_behind_the_rebuild_is_in_redis_before_the_marker_appears(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    _create(api, seed, "early")

    async def go() -> list[tuple[int, int]]:
        async with resources(control_settings) as (engine, redis):
            relay = _relay(control_settings, engine, redis)
            real = relay.completeness._rebuild

            async def rebuild_then_create(progress: Any) -> int:
                done = await real(progress)
                # Committed after the rebuild's cursor passed: only its outbox row brings it.
                await asyncio.to_thread(_create, api, seed, "behind")
                return done

            relay.completeness._rebuild = rebuild_then_create
            real_finish = relay.completeness.finish
            seen = []

            async def finish_and_look() -> None:
                # The moment the marker can appear: is the late link there already?
                await real_finish()
                marker = await redis.exists(PROJECTION_MARKER)
                seen.append((marker, await redis.exists(link_key("sho.rt", "behind"))))

            relay.completeness.finish = finish_and_look  # type: ignore[method-assign]
            await _settle(relay)
            return seen

    seen = run(go())

    assert seen[-1] == (1, 1), seen
    assert all(key == 1 for marker, key in seen if marker)


def test_a_flush_during_the_rebuild_starts_it_again(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    _create(api, seed, "twice")

    async def go() -> tuple[int, int]:
        async with resources(control_settings) as (engine, redis):
            relay = _relay(control_settings, engine, redis)
            real = relay.completeness._rebuild
            calls = 0

            async def rebuild_then_flush(progress: Any) -> int:
                nonlocal calls
                calls += 1
                done = await real(progress)
                if calls == 1:
                    await redis.flushdb()  # the pages just written are gone, and the token
                return done

            relay.completeness._rebuild = rebuild_then_flush
            await _settle(relay)
            assert await redis.get(PROJECTION_REBUILD) is None
            return calls, await redis.exists(link_key("sho.rt", "twice"))

    assert run(go()) == (2, 1)
