from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ARRAY, DateTime, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column, id_column


class WebhookEndpoint(Base):
    """A customer URL subscribed to event types. Secrets are kept encrypted (they must be
    usable to sign, so they cannot be hashed) and are never returned after creation."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_workspace_id", "workspace_id"),)

    id: Mapped[uuid.UUID] = id_column()
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id"))
    url: Mapped[str]
    description: Mapped[str | None]
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String))
    enabled: Mapped[bool] = mapped_column(default=True)
    secret_encrypted: Mapped[str]
    # During a rotation the previous secret keeps signing (a second v1=) until this time.
    previous_secret_encrypted: Mapped[str | None]
    previous_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = created_column()
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
