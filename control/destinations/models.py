from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column, id_column

KINDS_SQL = "kind IN ('http', 'segment', 'ga4', 'meta_capi', 'slack', 'zapier', 'make', 'n8n')"
PLATFORMS_SQL = "platform IN ('zapier', 'make', 'n8n')"


class InstallationToken(Base):
    """A credential a Zapier, Make or n8n connection holds: it can manage that
    installation's REST hooks and read sample events, nothing else. Stored as an HMAC like
    API keys; shown once."""

    __tablename__ = "installation_tokens"
    __table_args__ = (
        Index("ix_installation_tokens_workspace_id_id", "workspace_id", "id"),
        CheckConstraint(PLATFORMS_SQL, name="platform"),
    )

    id: Mapped[uuid.UUID] = id_column()
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id"))
    platform: Mapped[str]
    name: Mapped[str]
    prefix: Mapped[str]
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String))
    created_at: Mapped[dt.datetime] = created_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Destination(Base):
    """Where click, scan and conversion events are forwarded, mapped per kind.

    Secrets (custom header values, vendor keys, a Slack webhook URL) are one Fernet token
    (`secrets_encrypted`, a JSON object); the signing secret of signed kinds is kept like a
    webhook endpoint's, with the previous one during a rotation overlap.
    """

    __tablename__ = "destinations"
    __table_args__ = (
        Index("ix_destinations_workspace_id_id", "workspace_id", "id"),
        Index(
            "ix_destinations_installation_id",
            "installation_id",
            postgresql_where=text("installation_id IS NOT NULL"),
        ),
        CheckConstraint(KINDS_SQL, name="kind"),
    )

    id: Mapped[uuid.UUID] = id_column()
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id"))
    kind: Mapped[str]
    description: Mapped[str | None]
    url: Mapped[str | None]  # http and REST hooks; vendors derive theirs from config
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String))
    filters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    redact: Mapped[list[str]] = mapped_column(ARRAY(String), server_default="{}")
    template: Mapped[Any | None] = mapped_column(JSONB(none_as_null=True))
    config: Mapped[dict[str, str]] = mapped_column(JSONB, server_default="{}")
    secrets_encrypted: Mapped[str | None]
    secret_encrypted: Mapped[str | None]
    previous_secret_encrypted: Mapped[str | None]
    previous_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    installation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("installation_tokens.id", ondelete="SET NULL")
    )
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_column()
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
