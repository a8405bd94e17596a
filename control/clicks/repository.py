"""All SQL for stored clicks and per-link totals."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from control.clicks import partitions, rollups
from control.clicks.models import Click
from control.db import table
from control.domains.models import Domain
from control.links.models import Link
from control.workspaces.models import Workspace

COLUMNS = [c.name for c in table(Click).columns]
# COPY into a per-connection scratch table, then one statement that moves the clicks not
# stored yet into `clicks` and advances the per-link totals and the hourly rollups by
# exactly those. COPY avoids building (and having the driver parse) a 20,000-parameter
# statement per batch, which capped ingest near 6,000 clicks/s; one statement instead of
# four keeps a batch's round trips and plans few.
# Sent as one simple query with the stage's creation. A batch's rollups are counted by
# sorting ~9 rows per click: in 4 MB (the default) a backlog's batch would sort on disk.
_STAGE = (
    "SET LOCAL work_mem = '64MB'; "
    "CREATE TEMP TABLE IF NOT EXISTS clicks_stage "
    "(LIKE clicks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_COPY = f"COPY clicks_stage ({', '.join(COLUMNS)}) FROM STDIN"
_NAMES = ", ".join(COLUMNS)  # from our own model, never from input
_MOVE = (
    f"WITH fresh AS (INSERT INTO clicks ({_NAMES}) SELECT {_NAMES} FROM clicks_stage "  # noqa: S608
    f"ON CONFLICT DO NOTHING RETURNING id, {', '.join(rollups.READS)}),"
    + rollups.CTES
    # Only the ids of rows really inserted come back; the rest of each row is in hand already.
    + " SELECT replace(id::text, '-', '') FROM fresh"
)


async def store(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert clicks not seen before and advance totals by exactly those; returns those rows.

    Runs in the caller's transaction: the staged rows vanish at its commit. A day without
    its partition yet (normally made a week ahead) gets one first, in this transaction.
    """
    if not rows:
        return []
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None  # a live connection inside a transaction
    try:
        await partitions.ensure_days(conn, {partitions.day_of(r["clicked_at"]) for r in rows})
        async with raw.cursor() as cur:
            await cur.execute(_STAGE)
            async with cur.copy(_COPY) as copy:
                for row in rows:
                    await copy.write_row([row[c] for c in COLUMNS])
            await cur.execute(_MOVE)
            fresh = {r[0] for r in await cur.fetchall()}
    except Exception:
        partitions.forget()  # e.g. a partition dropped since: look at the catalog next time
        raise
    inserted = []
    for row in rows:  # once per id: a batch may carry the same click twice
        if row["id"] in fresh:
            fresh.discard(row["id"])
            inserted.append(row)
    return inserted


def ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


async def link_context(
    conn: AsyncConnection, link_ids: set[str]
) -> dict[str, tuple[str, str, uuid.UUID]]:
    """link id (hex-less text, as ingest keeps it) → (slug, domain name, organization id)."""
    if not link_ids:
        return {}
    rows = await conn.execute(
        select(Link.id, Link.slug, Domain.name, Workspace.organization_id)
        .join(Domain, Domain.id == Link.domain_id)
        .join(Workspace, Workspace.id == Link.workspace_id)
        .where(Link.id.in_([uuid.UUID(i) for i in link_ids]))
    )
    return {str(r.id): (r.slug, r.name, r.organization_id) for r in rows}
