from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Identity, SmallInteger
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column


class OutboxMessage(Base):
    """A change others must see, written in the same transaction as the change itself."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = created_column()


class ProjectionWatermark(Base):
    """How many projection batches the relay has applied to Redis: one row, only growing.

    The relay writes the same number into the Redis projection marker with each batch; a
    marker behind this row means Redis lost writes (a failover), so the projection is no
    longer known to be complete (ADR 0013). It lives here, not in Redis, because it must
    survive what it detects.
    """

    __tablename__ = "projection_watermark"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
