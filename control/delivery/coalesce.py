"""Group commit for the delivery engine's statements.

Hundreds of attempts run at once in a worker process, each needing the same few statements
(look up the target, claim, record). Sent one by one, their round trips, pool check-outs
and per-statement overhead cost far more than the HTTP requests they serve. A `Coalescer`
runs one statement for many callers: a call arriving while no statement is in flight goes
at once (no added latency when idle); calls arriving meanwhile wait for it to end and then
go together, so the batch grows with the load and never waits for a timer. The resource a
run needs (a database connection) is taken once per busy spell, not once per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Resource = TypeVar("Resource")


class Coalescer(Generic[Resource, Item, Result]):
    """`await coalescer(item)` answers `run(resource, [..., item, ...])[i]`; at most one run
    at a time.

    `run` gets the items in call order and answers one result per item, in that order; an
    exception it raises is raised to every caller of that batch (and the resource is given
    up: the next batch opens a new one). A caller cancelled before its batch starts is left
    out of it. `open` makes the resource; it is kept while batches keep coming.
    """

    def __init__(
        self,
        open_: Callable[[], AbstractAsyncContextManager[Resource]],
        run: Callable[[Resource, list[Item]], Awaitable[Sequence[Result]]],
        limit: int = 500,
    ) -> None:
        self._open = open_
        self._run = run
        self._limit = limit
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            batch: list[tuple[Item, asyncio.Future[Result]]] = []
            try:
                async with self._open() as resource:
                    while self._waiting:
                        batch = [(i, f) for i, f in self._waiting[: self._limit] if not f.done()]
                        del self._waiting[: self._limit]
                        if batch:
                            results = await self._run(resource, [item for item, _ in batch])
                            if len(results) != len(batch):
                                raise RuntimeError(f"{len(results)} results, {len(batch)} items")
                            for (_, future), result in zip(batch, results, strict=True):
                                if not future.done():
                                    future.set_result(result)
                        batch = []
            except asyncio.CancelledError:  # the loop is closing: nobody gets an answer
                for _, future in batch + self._waiting:
                    future.cancel()
                self._waiting.clear()
                raise
            except Exception as exc:  # handed to every caller of the batch
                if not batch:  # opening the resource failed: the next batch was waiting
                    batch = self._waiting[: self._limit]
                    del self._waiting[: self._limit]
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
