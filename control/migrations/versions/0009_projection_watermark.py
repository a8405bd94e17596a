"""projection watermark

One row counting the projection batches the relay has applied to Redis; the Redis
projection marker carries the same number, so a marker behind it shows lost writes
(ADR 0013).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projection_watermark",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projection_watermark")),
    )


def downgrade() -> None:
    op.drop_table("projection_watermark")
