"""Settling pending attribution in the background of each control process.

An outcome can arrive before ingest has stored its click (about a second normally, longer
in an outage). It is kept as `pending`; this loop attributes it once the click is stored,
or settles it as unattributed once RICOCHET_CONVERSION_PENDING_S has passed since the
click. Every control process runs the loop; rows are locked with SKIP LOCKED, so they
share the work and never settle a row twice. When nothing is pending, a pass is one query
on a partial index of pending rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control.conversions import service
from control.settings import ControlSettings

log = logging.getLogger("ricochet.conversions")
STOP_TIMEOUT_S = 5.0


async def settle_all(
    sessions: async_sessionmaker[AsyncSession],
    settings: ControlSettings,
    now: dt.datetime | None = None,
) -> int:
    """One pass over every pending outcome, a page per transaction; returns how many were
    settled."""
    after = None
    total = 0
    while True:
        async with sessions.begin() as session:
            after, settled = await service.settle_page(
                session, settings, now or dt.datetime.now(dt.UTC), after
            )
        total += settled
        if after is None:
            return total


async def _loop(
    sessions: async_sessionmaker[AsyncSession], settings: ControlSettings, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            settled = await settle_all(sessions, settings)
            if settled:
                log.info("settled the attribution of %d conversions", settled)
        except Exception:  # a bad pass must not end the loop: the next one retries
            log.exception("settling conversion attribution failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.conversion_settle_poll_s)


@contextlib.asynccontextmanager
async def settling(
    sessions: async_sessionmaker[AsyncSession], settings: ControlSettings
) -> AsyncIterator[None]:
    """Run the settle loop for the life of the block (not at all when the poll is 0)."""
    if settings.conversion_settle_poll_s <= 0:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(_loop(sessions, settings, stop))
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, STOP_TIMEOUT_S)
        except TimeoutError:  # a pass stuck on the database: shutdown must not wait for it
            log.warning("conversion settle loop did not stop in time; cancelled")
