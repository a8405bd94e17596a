from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ARRAY, DateTime, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column, id_column


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = id_column()
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str]
    # First characters of the key, safe to show so people can tell keys apart.
    prefix: Mapped[str]
    # HMAC-SHA256(secret_key, key): the key itself is never stored.
    key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String))
    created_at: Mapped[dt.datetime] = created_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
