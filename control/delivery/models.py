from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, LargeBinary, SmallInteger, text
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column, id_column
from control.destinations import models as _destinations  # noqa: F401 - the FK's table


class Delivery(Base):
    """One event to one target: a webhook endpoint or a destination. State lives here; the
    broker only carries the id, so the engine, reconciler, retries, dead-letter, replay and
    health are the same for both."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # At most one delivery per event and target (a test-send or replay has its own).
        Index(
            "uq_deliveries_event_id_endpoint_id",
            "event_id",
            "endpoint_id",
            unique=True,
            postgresql_where=text("reason = 'event'"),
        ),
        Index(
            "uq_deliveries_event_id_destination_id",
            "event_id",
            "destination_id",
            unique=True,
            postgresql_where=text("reason = 'event'"),
        ),
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index(
            "ix_deliveries_destination_id_id",
            "destination_id",
            "id",
            postgresql_where=text("destination_id IS NOT NULL"),
        ),
        CheckConstraint("num_nonnulls(endpoint_id, destination_id) = 1", name="one_target"),
    )

    id: Mapped[uuid.UUID] = id_column()
    workspace_id: Mapped[uuid.UUID]
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    destination_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("destinations.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID]  # the envelope's id; stable across attempts and replays
    event_type: Mapped[str]
    reason: Mapped[str] = mapped_column(default="event")  # event | test | replay
    # The exact bytes signed and sent: the envelope, or a destination's mapped body (empty
    # when the mapping failed on this event: nothing was sent).
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # pending -> (retrying ->)* succeeded | failed | dead
    status: Mapped[str] = mapped_column(default="pending")
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(SmallInteger)
    last_error: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_column()
    updated_at: Mapped[dt.datetime] = created_column()


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_delivery_id", "delivery_id"),)

    id: Mapped[uuid.UUID] = id_column()
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(SmallInteger)
    attempted_at: Mapped[dt.datetime] = created_column()
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    latency_ms: Mapped[int | None]
    response_excerpt: Mapped[str | None]  # first 1,000 characters of the body
    error: Mapped[str | None]
