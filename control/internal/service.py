"""The edge's miss fill (resolve + throttled projection repair) and the cache rebuild."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from control.db import session_factory
from control.internal import repository
from control.links.state import PROJECTION_TOPIC, record, upsert_message
from control.outbox import repository as outbox
from control.relay.projector import Projector
from shared.keys import link_key
from shared.records import encode_link

REPAIR_INTERVAL_S = 10.0
REBUILD_PAGE = 1_000
_DEADLOCK = "40P01"
_RETRIES = 5


class RepairThrottle:
    """Per process: at most one projection repair per key per `interval` seconds, so a flood
    of misses for one link writes one outbox row, not thousands.

    Keys are kept in the order they were last repaired (the clock only moves forward), so
    expired entries drop off the front as new ones come: it holds the keys repaired in the
    last interval and never more than `max_keys` (the oldest go first).
    """

    def __init__(
        self,
        interval: float = REPAIR_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.max_keys = max_keys
        self._last: OrderedDict[str, float] = OrderedDict()

    def due(self, key: str) -> bool:
        last = self._last.get(key)
        return last is None or self.clock() - last >= self.interval

    def claim(self, key: str) -> bool:
        """True (and remembered) when `key` is due; check and mark with no await between."""
        if not self.due(key):
            return False
        now = self.clock()
        self._last[key] = now
        self._last.move_to_end(key)
        while self._last and (
            len(self._last) > self.max_keys
            or now - next(iter(self._last.values())) >= self.interval
        ):
            self._last.popitem(last=False)
        return True


@dataclass(frozen=True)
class Resolved:
    key: str
    version: int
    body: bytes  # the msgpack LinkRecord, exactly as the relay writes it into Redis


async def resolve(
    session: AsyncSession, throttle: RepairThrottle, host: str, slug: str
) -> Resolved | None:
    """The live link at `host`/`slug` (normalised), queueing a re-projection when due.

    Taken-down and expired links are answered too: the edge decides what visitors see.
    """
    key = link_key(host, slug)
    repair = throttle.due(key)
    found = await repository.find_live(session, host, slug, lock=repair)
    if found is None:
        return None
    link, domain = found
    if repair and throttle.claim(key):
        await outbox.add(session, PROJECTION_TOPIC, upsert_message(link, domain))
    return Resolved(link_key(domain, link.slug), link.version, encode_link(record(link)))


async def rebuild(
    engine: AsyncEngine,
    redis: Redis,
    progress: Callable[[int], None],
    page_size: int = REBUILD_PAGE,
) -> int:
    """Write every live link into Redis, page by page in id order; returns how many.

    Each page is written with the relay's version guard while its rows are held FOR SHARE:
    a newer version in Redis is kept, and a delete or slug change of a link on the page waits
    until the page is written, so its outbox message applies after ours (nothing deleted comes
    back). Only upserts: keys of deleted links still in Redis are the relay's to remove.
    """
    sessions = session_factory(engine)
    projector = Projector(redis)
    after: uuid.UUID | None = None
    total = 0
    while True:
        for attempt in range(_RETRIES):
            try:
                async with sessions.begin() as session:
                    page = await repository.live_links_page(session, after, page_size, lock=True)
                    await projector.apply([upsert_message(link, name) for link, name in page])
                break
            except DBAPIError as exc:
                # A writer locking several links out of id order can deadlock with the page
                # lock; PostgreSQL aborts one side. If it is us, take the page again.
                if getattr(exc.orig, "sqlstate", None) != _DEADLOCK or attempt + 1 == _RETRIES:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))
        if not page:
            return total
        after = page[-1][0].id
        total += len(page)
        progress(total)
