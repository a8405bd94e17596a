"""partition clicks by day

`clicks` becomes a table partitioned by RANGE (clicked_at), one partition per UTC day
(`clicks_pYYYYMMDD`), primary key (clicked_at, id). Partitions are made for every day that
holds clicks, and for yesterday through today + 7; after that, control/clicks/partitions.py
keeps them (the relay's hourly housekeeping, `ricochet clicks maintain`, and ingest itself
for any day it meets without one).

From now on ingest sets clicked_at to the time inside the click's UUIDv7 id, so the id
alone decides the row and ON CONFLICT DO NOTHING on (clicked_at, id) stays idempotent. The
copy applies the same rule to the stored clicks with UUIDv7 ids (their clicked_at was the
edge's clock, read in the same millisecond or one or two later), so a click delivered again
after this migration still meets its stored row. Others keep their clicked_at.

The copy holds an exclusive lock on clicks while it runs: ingest waits (clicks wait in the
streams), reads of raw clicks wait. Downgrade copies everything back into a plain table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NAMES = (
    "id, link_id, workspace_id, domain_id, clicked_at, touch, user_agent, referrer, country, "
    "device, browser, os, bot, referrer_host, social, variant, utm_source, utm_medium, "
    "utm_campaign, tracked"
)
# The Unix milliseconds in the first 48 bits of a version-7 UUID, as a timestamptz.
ID_TIME = (
    "CASE WHEN substr(id::text, 15, 1) = '7' THEN timestamptz 'epoch' + "
    "('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint "
    "* interval '1 millisecond' ELSE clicked_at END"
)


def _columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("link_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("domain_id", sa.Uuid(), nullable=False),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("touch", sa.String(), nullable=False),
        sa.Column("user_agent", sa.String(), nullable=False),
        sa.Column("referrer", sa.String(), nullable=False),
        sa.Column("country", sa.String(), nullable=False),
        sa.Column("device", sa.String(), server_default="", nullable=False),
        sa.Column("browser", sa.String(), server_default="", nullable=False),
        sa.Column("os", sa.String(), server_default="", nullable=False),
        sa.Column("bot", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("referrer_host", sa.String(), server_default="", nullable=False),
        sa.Column("social", sa.String(), server_default="", nullable=False),
        sa.Column("variant", sa.SmallInteger(), server_default="-1", nullable=False),
        sa.Column("utm_source", sa.String(), server_default="", nullable=False),
        sa.Column("utm_medium", sa.String(), server_default="", nullable=False),
        sa.Column("utm_campaign", sa.String(), server_default="", nullable=False),
        sa.Column("tracked", sa.Boolean(), server_default="false", nullable=False),
    ]


def _set_aside(suffix: str) -> str:
    """Rename clicks and its constraint and index out of the way; returns the new name."""
    old = f"clicks_{suffix}"
    op.execute(f"ALTER TABLE clicks RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_clicks TO pk_{old}")
    op.execute(f"ALTER INDEX ix_clicks_link_id_clicked_at RENAME TO ix_{old}_link_id_clicked_at")
    return old


def upgrade() -> None:
    old = _set_aside("unpartitioned")
    op.create_table(
        "clicks",
        *_columns(),
        sa.PrimaryKeyConstraint("clicked_at", "id", name=op.f("pk_clicks")),
        postgresql_partition_by="RANGE (clicked_at)",
    )
    op.create_index(
        "ix_clicks_link_id_clicked_at", "clicks", ["link_id", "clicked_at"], unique=False
    )
    # One partition per UTC day: each day with clicks, and yesterday .. today + 7.
    days = f"""
        DO $$
        DECLARE
            d date;
            today date := (now() AT TIME ZONE 'UTC')::date;
        BEGIN
            FOR d IN
                SELECT DISTINCT (({ID_TIME}) AT TIME ZONE 'UTC')::date FROM {old}
                UNION
                SELECT today + n FROM generate_series(-1, 7) AS n
            LOOP
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF clicks FOR VALUES FROM (%L) TO (%L)',
                    'clicks_p' || to_char(d, 'YYYYMMDD'),
                    to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00',
                    to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00'
                );
            END LOOP;
        END $$
    """  # noqa: S608 - only our own constants are interpolated
    op.execute(days)
    select = NAMES.replace("clicked_at", f"{ID_TIME} AS clicked_at")
    op.execute(f"INSERT INTO clicks ({NAMES}) SELECT {select} FROM {old}")  # noqa: S608
    op.drop_table(old)


def downgrade() -> None:
    old = _set_aside("partitioned")
    op.create_table("clicks", *_columns(), sa.PrimaryKeyConstraint("id", name=op.f("pk_clicks")))
    op.create_index(
        "ix_clicks_link_id_clicked_at", "clicks", ["link_id", "clicked_at"], unique=False
    )
    op.execute(
        f"INSERT INTO clicks ({NAMES}) SELECT {NAMES} FROM {old} ON CONFLICT DO NOTHING"  # noqa: S608
    )
    op.drop_table(old)  # and its partitions with it
