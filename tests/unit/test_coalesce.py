"""Group commit (control/delivery/coalesce.py): calls made while a run is in flight share the
next run; errors reach the callers of the failing batch only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from control.delivery.coalesce import Coalescer


class Recorder:
    """A fake statement: records each batch and how many resources were opened."""

    def __init__(self, fail_on: int | None = None, delay: float = 0.01) -> None:
        self.batches: list[list[int]] = []
        self.opened = 0
        self.fail_on = fail_on
        self.delay = delay

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[str]:
        self.opened += 1
        yield f"conn{self.opened}"

    async def run(self, resource: str, items: list[int]) -> list[str]:
        self.batches.append(items)
        await asyncio.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"batch with {self.fail_on}")
        return [f"{resource}:{i * 10}" for i in items]


def test_a_lone_call_runs_at_once_in_a_batch_of_its_own() -> None:
    async def go() -> tuple[str, Recorder]:
        rec = Recorder()
        c = Coalescer[str, int, str](rec.open, rec.run)
        return await c(1), rec

    result, rec = asyncio.run(go())
    assert result == "conn1:10"
    assert rec.batches == [[1]]


def test_calls_arriving_during_a_run_share_the_next_one_and_keep_their_order() -> None:
    async def go() -> tuple[list[str], Recorder]:
        rec = Recorder()
        c = Coalescer[str, int, str](rec.open, rec.run)
        first = asyncio.ensure_future(c(0))
        await asyncio.sleep(0)  # the first batch is in flight
        rest = [asyncio.ensure_future(c(i)) for i in range(1, 6)]
        return await asyncio.gather(first, *rest), rec

    results, rec = asyncio.run(go())
    assert rec.batches == [[0], [1, 2, 3, 4, 5]]
    # Each caller gets its own result; one connection served the busy spell.
    assert results == [f"conn1:{i * 10}" for i in range(6)]
    assert rec.opened == 1


def test_the_batch_size_is_capped() -> None:
    async def go() -> Recorder:
        rec = Recorder()
        c = Coalescer[str, int, str](rec.open, rec.run, limit=2)
        await asyncio.gather(*(c(i) for i in range(5)))
        return rec

    assert asyncio.run(go()).batches == [[0, 1], [2, 3], [4]]


def test_an_error_reaches_every_caller_of_its_batch_and_no_other() -> None:
    async def go() -> tuple[list[object], Recorder]:
        rec = Recorder(fail_on=2)
        c = Coalescer[str, int, str](rec.open, rec.run)
        first = asyncio.ensure_future(c(0))
        await asyncio.sleep(0)
        second = [asyncio.ensure_future(c(i)) for i in (1, 2)]
        await asyncio.sleep(0.015)  # while the second batch runs, one more call
        third = asyncio.ensure_future(c(3))
        return list(await asyncio.gather(first, *second, third, return_exceptions=True)), rec

    results, rec = asyncio.run(go())
    assert results[0] == "conn1:0"
    assert [type(r) for r in results[1:3]] == [ValueError, ValueError]
    # The failed batch gave up its connection; the next batch opened another.
    assert results[3] == "conn2:30"
    assert rec.batches == [[0], [1, 2], [3]]


def test_a_caller_cancelled_before_its_batch_starts_is_left_out() -> None:
    async def go() -> Recorder:
        rec = Recorder()
        c = Coalescer[str, int, str](rec.open, rec.run)
        first = asyncio.ensure_future(c(0))
        await asyncio.sleep(0)
        gone = asyncio.ensure_future(c(1))
        kept = asyncio.ensure_future(c(2))
        await asyncio.sleep(0)
        gone.cancel()
        await first
        assert await kept == "conn1:20"
        with pytest.raises(asyncio.CancelledError):
            await gone
        return rec

    assert asyncio.run(go()).batches == [[0], [2]]


def test_a_result_count_that_does_not_match_is_an_error_for_the_batch() -> None:
    async def short(resource: str, items: list[int]) -> list[str]:
        return ["only one"]

    async def go() -> None:
        rec = Recorder()
        c = Coalescer[str, int, str](rec.open, short)
        first = asyncio.ensure_future(c(0))
        await asyncio.sleep(0)
        others = [asyncio.ensure_future(c(i)) for i in (1, 2)]
        assert await first == "only one"
        for other in others:
            with pytest.raises(RuntimeError, match="1 results, 2 items"):
                await other

    asyncio.run(go())
