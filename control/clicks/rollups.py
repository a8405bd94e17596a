"""Hourly rollups kept current by ingest, from the rows it actually inserted.

`apply` runs in the transaction that stores the clicks (`repository.store`), and is given
only the rows that INSERT ... ON CONFLICT DO NOTHING really inserted: a re-delivered click
returns nothing there, so it never counts twice (exactly once, with the clicks themselves).

Two tables, both keyed by link and UTC hour (`clicked_at` truncated to the hour in UTC):

- `click_hourly`: humans, bots, and the QR scans among each (`human_qr`, `bot_qr`).
- `click_hourly_dims`: humans and bots per value of each of `DIMENSIONS`. An empty value
  (no referrer, no UTM, unknown country...) is stored as the value `""`, so the values of
  one dimension always add up to the link's total for that hour.

Clicks are counted in Python first, then each table is advanced by ONE executemany upsert
(`col = table.col + excluded.col`). Rows go in sorted by primary key, so two ingest processes
upserting overlapping keys take the row locks in the same order and cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from control.clicks.models import ClickHourly, ClickHourlyDim
from control.db import table

DIMENSIONS = (
    "country",
    "device",
    "browser",
    "os",
    "referrer_host",
    "social",
    "utm_source",
    "utm_medium",
    "utm_campaign",
)

HourKey = tuple[uuid.UUID, dt.datetime]
DimKey = tuple[uuid.UUID, dt.datetime, str, str]


def hour_of(clicked_at: dt.datetime) -> dt.datetime:
    """The UTC hour a click counts in (`clicked_at` is timezone-aware)."""
    return clicked_at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def aggregate(
    inserted: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows to upsert into click_hourly and click_hourly_dims, each sorted by key."""
    hourly: dict[HourKey, list[int]] = {}  # humans, bots, human_qr, bot_qr
    dims: dict[DimKey, list[int]] = {}  # humans, bots
    workspace: dict[uuid.UUID, uuid.UUID] = {}
    for click in inserted:
        link_id = click["link_id"]
        hour = hour_of(click["clicked_at"])
        workspace.setdefault(link_id, click["workspace_id"])
        bot = bool(click["bot"])
        qr = click["touch"] == "qr"
        counts = hourly.setdefault((link_id, hour), [0, 0, 0, 0])
        counts[1 if bot else 0] += 1
        if qr:
            counts[3 if bot else 2] += 1
        for dimension in DIMENSIONS:
            value = click[dimension] or ""
            pair = dims.setdefault((link_id, hour, dimension, value), [0, 0])
            pair[1 if bot else 0] += 1
    hourly_rows = [
        {
            "link_id": link_id,
            "hour": hour,
            "workspace_id": workspace[link_id],
            "humans": humans,
            "bots": bots,
            "human_qr": human_qr,
            "bot_qr": bot_qr,
        }
        for (link_id, hour), (humans, bots, human_qr, bot_qr) in sorted(hourly.items())
    ]
    dim_rows = [
        {
            "link_id": link_id,
            "hour": hour,
            "dimension": dimension,
            "value": value,
            "workspace_id": workspace[link_id],
            "humans": humans,
            "bots": bots,
        }
        for (link_id, hour, dimension, value), (humans, bots) in sorted(dims.items())
    ]
    return hourly_rows, dim_rows


async def apply(conn: AsyncConnection, inserted: list[dict[str, Any]]) -> None:
    """Advance the hourly counters by exactly the clicks in `inserted` (same transaction)."""
    if not inserted:
        return
    hourly_rows, dim_rows = aggregate(inserted)
    hourly = table(ClickHourly)
    stmt = insert(hourly)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[hourly.c.link_id, hourly.c.hour],
            set_={
                name: hourly.c[name] + stmt.excluded[name]
                for name in ("humans", "bots", "human_qr", "bot_qr")
            },
        ),
        hourly_rows,
    )
    dims = table(ClickHourlyDim)
    dim_stmt = insert(dims)
    await conn.execute(
        dim_stmt.on_conflict_do_update(
            index_elements=[dims.c.link_id, dims.c.hour, dims.c.dimension, dims.c.value],
            set_={name: dims.c[name] + dim_stmt.excluded[name] for name in ("humans", "bots")},
        ),
        dim_rows,
    )
