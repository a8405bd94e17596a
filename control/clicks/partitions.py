"""Daily partitions of `clicks` (range on `clicked_at`, one per UTC day): all their SQL.

A partition is named `clicks_pYYYYMMDD` and holds [that day 00:00 UTC, the next day 00:00
UTC). There is no DEFAULT partition: the relay's leader creates partitions a week ahead
(`ensure_ahead`, hourly) and drops those past the retention (`drop_older_than`), and
`repository.store` creates the partition of any other day it meets (`ensure_days`), in the
transaction that inserts the click, so no click is ever refused for want of one.

Locking. A new partition is made with CREATE TABLE (LIKE clicks) + ATTACH PARTITION, which
takes only SHARE UPDATE EXCLUSIVE on `clicks` (CREATE TABLE ... PARTITION OF would take
ACCESS EXCLUSIVE and stall every reader and writer until commit). Creators and droppers
serialize on one transaction-level advisory lock and re-read the catalog once they hold it,
so two ingest processes meeting the same new day create it once. Dropping a partition needs
ACCESS EXCLUSIVE on `clicks`; that is done under a short lock_timeout, so it gives up (and
is tried again at the next run) rather than queue traffic behind a long query.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

PARENT = "clicks"
NAME = re.compile(r"^clicks_p(\d{4})(\d{2})(\d{2})$")
LOCK = 7460003  # pg_advisory_xact_lock key (7460001: migrate, 7460002: relay leader)
DROP_LOCK_TIMEOUT = "3s"
DAY = dt.timedelta(days=1)

# Days this process has seen a partition for in the catalog. Only ever a hint: a partition
# dropped since makes an insert fail, and `forget` (called by store on any failure) clears it.
_known: set[dt.date] = set()

_CHILDREN = text(
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = CAST(:parent AS regclass)"
)


def day_of(at: dt.datetime) -> dt.date:
    """The UTC day whose partition holds a click at `at` (timezone-aware)."""
    return at.date() if at.tzinfo is dt.UTC else at.astimezone(dt.UTC).date()


def name_of(day: dt.date) -> str:
    return f"clicks_p{day.year:04d}{day.month:02d}{day.day:02d}"


def _day_from(name: str) -> dt.date | None:
    match = NAME.match(name)
    if match is None:
        return None  # not one of ours (e.g. made by hand): never touched
    return dt.date(*(int(part) for part in match.groups()))


def _today(now: dt.datetime | None) -> dt.date:
    return day_of(now or dt.datetime.now(dt.UTC))


def forget() -> None:
    _known.clear()


async def existing(conn: AsyncConnection) -> dict[dt.date, str]:
    """Partitions of `clicks` named by our scheme, by day."""
    rows = (await conn.execute(_CHILDREN, {"parent": PARENT})).scalars()
    found = {}
    for name in rows:
        day = _day_from(name)
        if day is not None:
            found[day] = name
    return found


async def _create(conn: AsyncConnection, day: dt.date) -> str:
    name = name_of(day)
    start = f"{day.isoformat()} 00:00:00+00"
    end = f"{(day + DAY).isoformat()} 00:00:00+00"
    # Names and bounds come from a date, never from input.
    await conn.execute(text(f'CREATE TABLE "{name}" (LIKE {PARENT} INCLUDING DEFAULTS)'))
    await conn.execute(
        text(
            f'ALTER TABLE {PARENT} ATTACH PARTITION "{name}" '
            f"FOR VALUES FROM ('{start}') TO ('{end}')"
        )
    )
    return name


async def ensure_days(conn: AsyncConnection, days: Iterable[dt.date]) -> list[str]:
    """Make sure each day has its partition; returns the names created.

    Cheap when nothing is missing (a set difference against what this process has already
    seen). Creates in the caller's transaction: the partitions appear at its commit, and
    the advisory lock it takes is held until then.
    """
    missing = set(days) - _known
    if not missing:
        return []
    have = await existing(conn)
    _known.update(have)
    missing -= have.keys()
    if not missing:
        return []
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})
    have = await existing(conn)  # someone may have made them while we waited
    _known.update(have)
    # Not remembered in _known: they exist only once the caller commits.
    return [await _create(conn, day) for day in sorted(missing - have.keys())]


async def ensure_ahead(
    conn: AsyncConnection, days_ahead: int = 7, *, now: dt.datetime | None = None
) -> list[str]:
    """Partitions for yesterday through today + `days_ahead` (UTC); returns those created."""
    today = _today(now)
    forget()  # ask the catalog, not this process's memory
    return await ensure_days(conn, (today + n * DAY for n in range(-1, days_ahead + 1)))


async def drop_older_than(
    conn: AsyncConnection, retention_days: int, *, now: dt.datetime | None = None
) -> list[str]:
    """Drop partitions whose every click is older than `retention_days`; 0 keeps all.

    Returns the names dropped. The hourly and per-link totals are separate tables and keep
    counting the clicks dropped here.
    """
    if retention_days <= 0:
        return []
    cutoff = day_of((now or dt.datetime.now(dt.UTC)) - retention_days * DAY)
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})
    await conn.execute(text(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
    dropped = []
    for day, name in sorted((await existing(conn)).items()):
        if day < cutoff:
            await conn.execute(text(f'DROP TABLE "{name}"'))
            _known.discard(day)
            dropped.append(name)
    return dropped


async def maintain(
    engine: AsyncEngine, retention_days: int, days_ahead: int = 7
) -> tuple[list[str], list[str]]:
    """Create ahead, then drop past the retention, each in its own short transaction.

    Returns (created, dropped). Run hourly by the relay's leader and by
    `ricochet clicks maintain`.
    """
    async with engine.begin() as conn:
        created = await ensure_ahead(conn, days_ahead)
    async with engine.begin() as conn:
        dropped = await drop_older_than(conn, retention_days)
    return created, dropped
