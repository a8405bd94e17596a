"""All SQL for stored clicks and per-link totals."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from control.clicks.models import Click, LinkStats
from shared.clicks import ClickEvent


def _row(event: ClickEvent) -> dict[str, object]:
    return {
        "id": uuid.UUID(hex=event.id),
        "link_id": uuid.UUID(event.link_id),
        "workspace_id": uuid.UUID(event.workspace_id),
        "domain_id": uuid.UUID(event.domain_id),
        "clicked_at": dt.datetime.fromtimestamp(event.ts_ms / 1000, dt.UTC),
        "touch": event.touch,
        "user_agent": event.user_agent[:512],
        "referrer": event.referrer[:1024],
        "country": event.country[:2],
    }


async def store(conn: AsyncConnection, events: list[ClickEvent]) -> int:
    """Insert clicks not seen before and advance totals by exactly those; returns how many."""
    if not events:
        return 0
    result = await conn.execute(
        insert(Click)
        .values([_row(e) for e in events])
        .on_conflict_do_nothing()
        .returning(Click.link_id)
    )
    per_link = Counter(row[0] for row in result)
    if per_link:
        stmt = insert(LinkStats).values(
            [{"link_id": link_id, "clicks": n} for link_id, n in sorted(per_link.items())]
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[LinkStats.link_id],
                set_={"clicks": LinkStats.clicks + stmt.excluded.clicks},
            )
        )
    return sum(per_link.values())
