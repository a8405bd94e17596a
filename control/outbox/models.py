from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Identity
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
