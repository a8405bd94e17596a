from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import LargeBinary, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column


class IdempotentResponse(Base):
    """The first successful response to a POST with an Idempotency-Key, kept for 24 hours."""

    __tablename__ = "idempotency_keys"

    workspace_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)  # method, path and body digest
    status: Mapped[int] = mapped_column(SmallInteger)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    location: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_column()
