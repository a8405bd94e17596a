"""Conversion outcomes and each workspace's Conversion API signing secret."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    SmallInteger,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column, id_column


class ConversionSecret(Base):
    """The workspace's signing secret for the Conversion API, separate from API keys.

    Encrypted, not hashed: verifying an HMAC needs the secret itself (control/conversions/
    secrets.py). After a rotation the previous one is accepted too until it expires.
    """

    __tablename__ = "conversion_secrets"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    secret_encrypted: Mapped[str]
    previous_secret_encrypted: Mapped[str | None]
    previous_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = created_column()
    rotated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Conversion(Base):
    """One outcome as the integrator sent it, never updated except for its attribution.

    A refund, cancellation or reversal is a row of its own pointing at the sale it undoes
    (`related_id`); the sale is never edited. Attribution (`attribution`, `link_id`,
    `variant`, `attributed_at`) is settled once: at once when the click is stored already,
    else later by `service.settle_pending` (docs/adr/0008-conversion-attribution.md).
    """

    __tablename__ = "conversions"
    __table_args__ = (
        UniqueConstraint("workspace_id", "event_id"),
        # A sale's order id names one sale, so a refund's related_order_id finds one row.
        Index(
            "uq_conversions_workspace_id_order_id_sale",
            "workspace_id",
            "order_id",
            unique=True,
            postgresql_where=text("event_name = 'sale' AND order_id IS NOT NULL"),
        ),
        Index("ix_conversions_workspace_id_event_time", "workspace_id", "event_time", "id"),
        Index(
            "ix_conversions_link_id_event_time",
            "link_id",
            "event_time",
            postgresql_where=text("link_id IS NOT NULL"),
        ),
        # The customer's latest outcome with a click, for outcomes sent with external_id only.
        Index(
            "ix_conversions_workspace_id_external_id",
            "workspace_id",
            "external_id",
            "event_time",
            postgresql_where=text("external_id IS NOT NULL AND click_id IS NOT NULL"),
        ),
        Index(
            "ix_conversions_related_id",
            "related_id",
            postgresql_where=text("related_id IS NOT NULL"),
        ),
        Index(
            "ix_conversions_pending_clicked_at",
            "clicked_at",
            postgresql_where=text("attribution = 'pending'"),
        ),
        CheckConstraint(
            "event_name IN ('lead', 'sale', 'refund', 'cancellation', 'reversal')",
            name="event_name",
        ),
        CheckConstraint(
            "attribution IN ('attributed', 'pending', 'unattributed')", name="attribution"
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id"))
    event_id: Mapped[str]
    event_name: Mapped[str]
    event_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[dt.datetime] = created_column()
    # The click the nim_ct token names, and the time inside its UUIDv7: the partition key
    # of `clicks`, so finding the click reads one daily partition.
    click_id: Mapped[uuid.UUID | None]
    # How the click was found: `click_id` (the token sent), `external_id` (the customer's
    # earlier outcome), `sale` (a negative outcome inherits its sale's click).
    attributed_via: Mapped[str | None]
    clicked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    external_id: Mapped[str | None]
    value: Mapped[decimal.Decimal | None] = mapped_column(Numeric)
    currency: Mapped[str | None]
    order_id: Mapped[str | None]
    related_order_id: Mapped[str | None]
    related_event_id: Mapped[str | None]
    related_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("conversions.id"))
    attribution: Mapped[str]  # attributed | pending | unattributed
    unattributed_reason: Mapped[str | None]
    link_id: Mapped[uuid.UUID | None]
    variant: Mapped[int] = mapped_column(SmallInteger, default=-1, server_default="-1")
    attributed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Digest of the request's content: a repeated event_id must carry the same outcome.
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)
