"""All SQL for stored clicks and per-link totals."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from control.clicks.models import Click, LinkStats
from control.db import table


async def store(conn: AsyncConnection, rows: list[dict[str, Any]]) -> int:
    """Insert clicks not seen before and advance totals by exactly those; returns how many."""
    if not rows:
        return 0
    result = await conn.execute(
        # Core table + RETURNING: batched multi-row INSERTs from one cached compilation.
        insert(table(Click)).on_conflict_do_nothing().returning(Click.link_id),
        rows,
    )
    per_link = Counter(row[0] for row in result)
    if per_link:
        stmt = insert(LinkStats)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[LinkStats.link_id],
                set_={"clicks": LinkStats.clicks + stmt.excluded.clicks},
            ),
            [{"link_id": link_id, "clicks": n} for link_id, n in sorted(per_link.items())],
        )
    return sum(per_link.values())


def ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
