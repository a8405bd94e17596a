"""Password attempts (edge/password.py) against real Redis: reserved before the check."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from control.settings import ControlSettings
from edge.password import ATTEMPT_WINDOW_S, PREFIX_FACTOR, Attempts, Reservation

LINK = "11111111-1111-4111-8111-111111111111"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _reserve_many(attempts: Attempts, ips: list[str]) -> list[Reservation | None]:
    return list(await asyncio.gather(*(attempts.reserve(LINK, ip) for ip in ips)))


def test_concurrent_attempts_reserve_at_most_the_limit(control_settings: ControlSettings) -> None:
    async def scenario() -> tuple[int, int]:
        redis = Redis.from_url(control_settings.redis_url)
        try:
            # Given a limit of 10 / When 300 attempts from one address arrive at once
            got = await _reserve_many(Attempts(redis, 10), ["198.51.100.7"] * 300)
            ttl = await redis.ttl(f"ricochet:pwtries:{{{LINK}}}:198.51.100.7")
        finally:
            await redis.aclose()
        return sum(r is not None for r in got), ttl

    granted, ttl = run(scenario())

    # Then exactly 10 may go on to the hash, and the window is set
    assert granted == 10
    assert 0 < ttl <= ATTEMPT_WINDOW_S


def test_an_ipv6_64_is_limited_as_a_whole(control_settings: ControlSettings) -> None:
    async def scenario() -> tuple[int, int, int]:
        redis = Redis.from_url(control_settings.redis_url)
        try:
            attempts = Attempts(redis, 3)
            # Given 50 addresses of one /64, 5 attempts each, all at once
            ips = [f"2001:db8:1:2::{n:x}" for n in range(50) for _ in range(5)]
            got = await _reserve_many(attempts, ips)
            # And one address of the neighbouring /64
            other = await attempts.reserve(LINK, "2001:db8:1:3::1")
        finally:
            await redis.aclose()
        per_address = max(
            sum(1 for ip, r in zip(ips, got, strict=True) if r is not None and ip == one)
            for one in set(ips)
        )
        return sum(r is not None for r in got), per_address, int(other is not None)

    granted, per_address, neighbour = run(scenario())

    # Then the /64 gets its budget in all, no address more than its own, the next /64 its own
    assert granted == 3 * PREFIX_FACTOR
    assert per_address <= 3
    assert neighbour == 1


def test_a_refused_attempt_is_not_counted(control_settings: ControlSettings) -> None:
    async def scenario() -> bytes | None:
        redis = Redis.from_url(control_settings.redis_url)
        try:
            attempts = Attempts(redis, 2)
            await _reserve_many(attempts, ["2001:db8::1"] * 20)
            return await redis.get(f"ricochet:pwtries:{{{LINK}}}:2001:db8::/64")
        finally:
            await redis.aclose()

    # Then the /64 counter holds the two that were granted, not the 18 refused
    assert run(scenario()) == b"2"


def test_a_refund_gives_one_attempt_back_and_never_goes_below_zero(
    control_settings: ControlSettings,
) -> None:
    async def scenario() -> tuple[bool, bool, bytes | None]:
        redis = Redis.from_url(control_settings.redis_url)
        try:
            attempts = Attempts(redis, 1)
            first = await attempts.reserve(LINK, "198.51.100.7")
            assert first is not None
            locked = await attempts.reserve(LINK, "198.51.100.7") is None
            await attempts.refund(first)  # the password was right
            again = await attempts.reserve(LINK, "198.51.100.7")
            assert again is not None
            await attempts.refund(again)
            await attempts.refund(again)  # a second refund of the same one
            count = await redis.get(f"ricochet:pwtries:{{{LINK}}}:198.51.100.7")
        finally:
            await redis.aclose()
        return locked, again is not None, count

    locked, reopened, count = run(scenario())

    assert locked
    assert reopened
    assert count == b"0"


def test_without_redis_the_worker_counts_before_the_check(
    control_settings: ControlSettings,
) -> None:
    async def scenario() -> tuple[int, bool]:
        # Given a Redis nobody listens on
        redis = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
        try:
            attempts = Attempts(redis, 4)
            got = await _reserve_many(attempts, ["198.51.100.7"] * 50)
            granted = [r for r in got if r is not None]
            await attempts.refund(granted[0])
            reopened = await attempts.reserve(LINK, "198.51.100.7") is not None
        finally:
            await redis.aclose()
        return len(granted), reopened

    granted, reopened = run(scenario())

    # Then the limit still holds within the worker, and a refund still gives one back
    assert granted == 4
    assert reopened


def test_falling_back_halfway_never_grants_a_worker_more_than_the_limit(
    control_settings: ControlSettings,
) -> None:
    async def scenario() -> int:
        # Given a connection pool smaller than the attempts in flight: some reservations are
        # made in Redis, the others fail over to the worker's own count
        redis = Redis.from_url(control_settings.redis_url, max_connections=2)
        try:
            got = await _reserve_many(Attempts(redis, 10), ["198.51.100.7"] * 300)
        finally:
            await redis.aclose()
        assert any(r is not None and r.local for r in got)  # the fallback really happened
        return sum(r is not None for r in got)

    # Then the two together still let only the limit through
    assert run(scenario()) == 10
