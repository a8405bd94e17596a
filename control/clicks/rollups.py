"""Hourly rollups kept current by ingest, from the rows it actually inserted.

They are advanced by the statement that stores the clicks (`repository.store`): its
INSERT ... ON CONFLICT DO NOTHING RETURNING feeds these upserts, so they see only the
clicks really inserted, and a re-delivered click, which returns nothing there, never
counts twice (exactly once, with the clicks themselves).

Two tables, both keyed by link and UTC hour (`clicked_at` truncated to the hour in UTC):

- `click_hourly`: humans, bots, and the QR scans among each (`human_qr`, `bot_qr`).
- `click_hourly_dims`: humans and bots per value of each of `DIMENSIONS`. An empty value
  (no referrer, no UTM, unknown country...) is stored as the value `""`, so the values of
  one dimension always add up to the link's total for that hour.

PostgreSQL counts a whole batch with GROUP BY and advances each table by ONE upsert
(`col = table.col + excluded.col`): counting in Python and shipping the counts as arrays
cost ingest more than a third of its CPU at a steady rate. Rows go in sorted by primary
key, so two ingest processes upserting overlapping keys take the row locks in the same
order and cannot deadlock.
"""

from __future__ import annotations

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

# The columns of `fresh` (the inserted clicks) these CTEs read.
READS = ("link_id", "workspace_id", "clicked_at", "touch", "bot", *DIMENSIONS)

# A link belongs to one workspace; (array_agg(...))[1] takes its clicks' (uuid has no min).
_HOURLY = """
hourly AS (
    INSERT INTO click_hourly (link_id, hour, workspace_id, humans, bots, human_qr, bot_qr)
    SELECT link_id, date_trunc('hour', clicked_at, 'UTC'), (array_agg(workspace_id))[1],
           count(*) FILTER (WHERE NOT bot), count(*) FILTER (WHERE bot),
           count(*) FILTER (WHERE NOT bot AND touch = 'qr'),
           count(*) FILTER (WHERE bot AND touch = 'qr')
    FROM fresh GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (link_id, hour) DO UPDATE SET
        humans = click_hourly.humans + excluded.humans,
        bots = click_hourly.bots + excluded.bots,
        human_qr = click_hourly.human_qr + excluded.human_qr,
        bot_qr = click_hourly.bot_qr + excluded.bot_qr
)"""
# COLLATE "C": the sort that orders the upserts compares bytes, not the server's locale.
_VALUES = ", ".join(f"""('{d}', coalesce(f.{d}, '') COLLATE "C")""" for d in DIMENSIONS)
_DIMS = f"""
dims AS (
    INSERT INTO click_hourly_dims (link_id, hour, dimension, value, workspace_id, humans, bots)
    SELECT f.link_id, date_trunc('hour', f.clicked_at, 'UTC'), d.dimension, d.value,
           (array_agg(f.workspace_id))[1],
           count(*) FILTER (WHERE NOT f.bot), count(*) FILTER (WHERE f.bot)
    FROM fresh f CROSS JOIN LATERAL (VALUES {_VALUES}) AS d(dimension, value)
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (link_id, hour, dimension, value) DO UPDATE SET
        humans = click_hourly_dims.humans + excluded.humans,
        bots = click_hourly_dims.bots + excluded.bots
)"""  # noqa: S608 - dimension names are the constants above, never input
_TOTALS = """
totals AS (
    INSERT INTO link_stats (link_id, clicks)
    SELECT link_id, count(*) FROM fresh GROUP BY 1 ORDER BY 1
    ON CONFLICT (link_id) DO UPDATE SET clicks = link_stats.clicks + excluded.clicks
)"""

# Appended to `WITH fresh AS (INSERT INTO clicks ... RETURNING ...)` by repository.store.
CTES = ",".join((_HOURLY, _DIMS, _TOTALS))
