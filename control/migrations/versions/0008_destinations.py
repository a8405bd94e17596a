"""destinations

Destinations (generic HTTP, Segment, GA4, Meta CAPI, Slack, REST hooks for Zapier, Make and
n8n), the installation tokens those platforms hold, and deliveries that target either a
webhook endpoint or a destination.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "installation_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("prefix", sa.String(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("scopes", sa.ARRAY(sa.String()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "platform IN ('zapier', 'make', 'n8n')", name=op.f("ck_installation_tokens_platform")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_installation_tokens_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_installation_tokens_token_hash")),
    )
    op.create_index(
        "ix_installation_tokens_workspace_id_id",
        "installation_tokens",
        ["workspace_id", "id"],
        unique=False,
    )
    op.create_table(
        "destinations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("url", sa.String(), nullable=True),
        sa.Column("event_types", sa.ARRAY(sa.String()), nullable=False),
        sa.Column(
            "filters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("redact", sa.ARRAY(sa.String()), server_default="{}", nullable=False),
        sa.Column("template", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "config",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("secrets_encrypted", sa.String(), nullable=True),
        sa.Column("secret_encrypted", sa.String(), nullable=True),
        sa.Column("previous_secret_encrypted", sa.String(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("installation_id", sa.Uuid(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('http', 'segment', 'ga4', 'meta_capi', 'slack', 'zapier', 'make', 'n8n')",
            name=op.f("ck_destinations_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installation_tokens.id"],
            name=op.f("fk_destinations_installation_id_installation_tokens"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_destinations_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_destinations")),
    )
    op.create_index(
        "ix_destinations_workspace_id_id", "destinations", ["workspace_id", "id"], unique=False
    )
    op.create_index(
        "ix_destinations_installation_id",
        "destinations",
        ["installation_id"],
        unique=False,
        postgresql_where=sa.text("installation_id IS NOT NULL"),
    )

    # A delivery targets a webhook endpoint or a destination, never both or neither.
    op.add_column("deliveries", sa.Column("destination_id", sa.Uuid(), nullable=True))
    op.alter_column("deliveries", "endpoint_id", existing_type=sa.Uuid(), nullable=True)
    op.create_foreign_key(
        op.f("fk_deliveries_destination_id_destinations"),
        "deliveries",
        "destinations",
        ["destination_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_check_constraint(
        op.f("ck_deliveries_one_target"),
        "deliveries",
        "num_nonnulls(endpoint_id, destination_id) = 1",
    )
    op.create_index(
        "uq_deliveries_event_id_destination_id",
        "deliveries",
        ["event_id", "destination_id"],
        unique=True,
        postgresql_where=sa.text("reason = 'event'"),
    )
    op.create_index(
        "ix_deliveries_destination_id_id",
        "deliveries",
        ["destination_id", "id"],
        unique=False,
        postgresql_where=sa.text("destination_id IS NOT NULL"),
    )


def downgrade() -> None:
    # Destination deliveries cannot outlive their column: they go with it.
    op.execute("DELETE FROM deliveries WHERE destination_id IS NOT NULL")
    op.drop_index(
        "ix_deliveries_destination_id_id",
        table_name="deliveries",
        postgresql_where=sa.text("destination_id IS NOT NULL"),
    )
    op.drop_index(
        "uq_deliveries_event_id_destination_id",
        table_name="deliveries",
        postgresql_where=sa.text("reason = 'event'"),
    )
    op.drop_constraint(op.f("ck_deliveries_one_target"), "deliveries", type_="check")
    op.drop_constraint(
        op.f("fk_deliveries_destination_id_destinations"), "deliveries", type_="foreignkey"
    )
    op.alter_column("deliveries", "endpoint_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_column("deliveries", "destination_id")
    op.drop_index(
        "ix_destinations_installation_id",
        table_name="destinations",
        postgresql_where=sa.text("installation_id IS NOT NULL"),
    )
    op.drop_index("ix_destinations_workspace_id_id", table_name="destinations")
    op.drop_table("destinations")
    op.drop_index("ix_installation_tokens_workspace_id_id", table_name="installation_tokens")
    op.drop_table("installation_tokens")
