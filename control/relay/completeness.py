"""Keeping the projection known to be complete, so that a miss in Redis is a 404 (ADR 0013).

The marker (`ricochet:projection`) exists only while Redis holds every live link. The
relay's leader checks it about once a second and restores it by rebuilding:

- marker missing (FLUSHALL, Redis restarted without persistence, a fresh install);
- marker behind the watermark PostgreSQL keeps (a failover lost acknowledged writes);
- Redis evicted keys, or became another server (run id changed: a restart or failover).

While it rebuilds there is no marker, so edges ask the control plane for misses (capped).
The marker is set only when the rebuild's token survived it (no flush meanwhile), the
server is the one it started on, and a full drain of the outbox ran after the rebuild
ended: a link created behind the rebuild's cursor is then in Redis through its outbox row.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio import Redis

from shared.keys import PROJECTION_MARKER, PROJECTION_REBUILD

log = logging.getLogger("ricochet.relay")
CHECK_EVERY_S = 1.0
RETRY_AFTER_FAILURE_S = 5.0
TOKEN_TTL_S = 24 * 3600  # a token of a relay that died mid-rebuild must not live forever
# Set the marker only if our rebuild token is still there (nothing flushed it meanwhile).
_COMPLETE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'since', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"""

Rebuild = Callable[[Callable[[int], None]], Coroutine[Any, Any, int]]


class Completeness:
    """The leader's view of the marker: checks it, rebuilds, and sets it again."""

    def __init__(self, redis: Redis, rebuild: Rebuild, clock: Callable[[], float] = time.monotonic):
        self.redis = redis
        self._rebuild = rebuild
        self.clock = clock
        self.check_every = CHECK_EVERY_S
        self.seq = 0  # projection batches applied; loaded from PostgreSQL when leading
        self.complete = False
        self.rebuilds = 0  # finished rebuilds (tests and logs)
        self._complete_script = redis.register_script(_COMPLETE)
        self._next_check = 0.0
        self._task: asyncio.Task[int] | None = None
        self._token = ""
        self._server: str | None = None  # run id the rebuild started on
        self._evicted: int | None = None
        self._started = 0.0

    async def _server_facts(self) -> tuple[str, int]:
        server: Any = await self.redis.info("server")
        stats: Any = await self.redis.info("stats")
        return str(server.get("run_id", "")), int(stats.get("evicted_keys", 0))

    async def check(self) -> None:
        """At most once a second: is the marker still right? If not, (re)start a rebuild."""
        now = self.clock()
        if now < self._next_check:
            return
        self._next_check = now + self.check_every
        run_id, evicted = await self._server_facts()
        evictions = self._evicted is not None and evicted > self._evicted
        self._evicted = evicted
        if evictions:
            log.warning("Redis evicted keys: the projection may have lost links")
        if self._task is not None:
            if run_id != self._server or evictions:
                log.warning("Redis changed under the rebuild (restart, failover or eviction)")
                await self._restart(run_id)
            return
        seq: Any = await self.redis.hget(PROJECTION_MARKER, "seq")
        reason = None
        if seq is None:
            reason = "the projection marker is missing"
        elif int(seq) < self.seq:
            reason = f"Redis lost projection writes (marker at {int(seq)}, applied {self.seq})"
        elif evictions:
            reason = "Redis evicted keys"
        if reason is None:
            if not self.complete:
                log.info("projection complete: misses are authoritative")
            self.complete = True
            self._server = run_id
            return
        log.warning("%s; rebuilding the projection", reason)
        await self._restart(run_id)

    async def _restart(self, run_id: str) -> None:
        self.complete = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        # Edges stop trusting misses now, before anything else is written.
        await self.redis.delete(PROJECTION_MARKER)
        self._token = secrets.token_hex(16)
        await self.redis.set(PROJECTION_REBUILD, self._token, ex=TOKEN_TTL_S)
        self._server = run_id
        self._started = self.clock()
        self._task = asyncio.create_task(self._rebuild(self._progress))

    def _progress(self, done: int) -> None:
        if done % 100_000 < 1_000:
            log.info("projection rebuild: %d links written", done)

    def rebuilt(self) -> bool:
        """True when a rebuild has finished; call before a drain, and `finish` after it."""
        return self._task is not None and self._task.done()

    async def finish(self) -> None:
        """After a drain that began once the rebuild had ended: set the marker."""
        task = self._task
        if task is None or not task.done():
            return
        self._task = None
        if task.cancelled() or task.exception() is not None:
            log.error("projection rebuild failed; trying again", exc_info=task.exception())
            self._next_check = self.clock() + RETRY_AFTER_FAILURE_S
            return
        run_id, _ = await self._server_facts()
        set_ = run_id == self._server and await self._complete_script(
            keys=[PROJECTION_MARKER, PROJECTION_REBUILD],
            args=[self._token, self.seq, int(time.time() * 1000)],
        )
        if not set_:
            log.warning("Redis was flushed or replaced during the rebuild; rebuilding again")
            await self._restart(run_id)
            return
        self.complete = True
        self.rebuilds += 1
        log.info(
            "projection rebuilt: %d links in %.1f s; misses are authoritative again",
            task.result(),
            self.clock() - self._started,
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
