"""conversions

The Conversion API: each workspace's signing secret, and the outcomes it receives.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversion_secrets",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("secret_encrypted", sa.String(), nullable=False),
        sa.Column("previous_secret_encrypted", sa.String(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_conversion_secrets_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_conversion_secrets")),
    )
    op.create_table(
        "conversions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("event_name", sa.String(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("click_id", sa.Uuid(), nullable=True),
        sa.Column("attributed_via", sa.String(), nullable=True),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.String(), nullable=True),
        sa.Column("value", sa.Numeric(), nullable=True),
        sa.Column("currency", sa.String(), nullable=True),
        sa.Column("order_id", sa.String(), nullable=True),
        sa.Column("related_order_id", sa.String(), nullable=True),
        sa.Column("related_event_id", sa.String(), nullable=True),
        sa.Column("related_id", sa.Uuid(), nullable=True),
        sa.Column("attribution", sa.String(), nullable=False),
        sa.Column("unattributed_reason", sa.String(), nullable=True),
        sa.Column("link_id", sa.Uuid(), nullable=True),
        sa.Column("variant", sa.SmallInteger(), server_default="-1", nullable=False),
        sa.Column("attributed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "event_name IN ('lead', 'sale', 'refund', 'cancellation', 'reversal')",
            name=op.f("ck_conversions_event_name"),
        ),
        sa.CheckConstraint(
            "attribution IN ('attributed', 'pending', 'unattributed')",
            name=op.f("ck_conversions_attribution"),
        ),
        sa.ForeignKeyConstraint(
            ["related_id"],
            ["conversions.id"],
            name=op.f("fk_conversions_related_id_conversions"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_conversions_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint(
            "workspace_id", "event_id", name=op.f("uq_conversions_workspace_id_event_id")
        ),
    )
    op.create_index(
        "uq_conversions_workspace_id_order_id_sale",
        "conversions",
        ["workspace_id", "order_id"],
        unique=True,
        postgresql_where=sa.text("event_name = 'sale' AND order_id IS NOT NULL"),
    )
    op.create_index(
        "ix_conversions_workspace_id_event_time",
        "conversions",
        ["workspace_id", "event_time", "id"],
        unique=False,
    )
    op.create_index(
        "ix_conversions_link_id_event_time",
        "conversions",
        ["link_id", "event_time"],
        unique=False,
        postgresql_where=sa.text("link_id IS NOT NULL"),
    )
    op.create_index(
        "ix_conversions_workspace_id_external_id",
        "conversions",
        ["workspace_id", "external_id", "event_time"],
        unique=False,
        postgresql_where=sa.text("external_id IS NOT NULL AND click_id IS NOT NULL"),
    )
    op.create_index(
        "ix_conversions_related_id",
        "conversions",
        ["related_id"],
        unique=False,
        postgresql_where=sa.text("related_id IS NOT NULL"),
    )
    op.create_index(
        "ix_conversions_pending_clicked_at",
        "conversions",
        ["clicked_at"],
        unique=False,
        postgresql_where=sa.text("attribution = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_conversions_pending_clicked_at",
        table_name="conversions",
        postgresql_where=sa.text("attribution = 'pending'"),
    )
    op.drop_index(
        "ix_conversions_workspace_id_external_id",
        table_name="conversions",
        postgresql_where=sa.text("external_id IS NOT NULL AND click_id IS NOT NULL"),
    )
    op.drop_index(
        "ix_conversions_related_id",
        table_name="conversions",
        postgresql_where=sa.text("related_id IS NOT NULL"),
    )
    op.drop_index(
        "ix_conversions_link_id_event_time",
        table_name="conversions",
        postgresql_where=sa.text("link_id IS NOT NULL"),
    )
    op.drop_index("ix_conversions_workspace_id_event_time", table_name="conversions")
    op.drop_index(
        "uq_conversions_workspace_id_order_id_sale",
        table_name="conversions",
        postgresql_where=sa.text("event_name = 'sale' AND order_id IS NOT NULL"),
    )
    op.drop_table("conversions")
    op.drop_table("conversion_secrets")
