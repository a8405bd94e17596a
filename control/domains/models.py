from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import DateTime, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column, id_column


class Domain(Base):
    __tablename__ = "domains"

    id: Mapped[uuid.UUID] = id_column()
    # NULL for the platform's shared default domain; set for a workspace's custom domain.
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(unique=True)  # lower-case host, no port
    is_default: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(default="verified")  # pending | verified | failed
    created_at: Mapped[dt.datetime] = created_column()
    # The value the owner publishes in a TXT record to prove control of the name.
    verification_token: Mapped[str | None]
    verified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    checked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    failure_reason: Mapped[str | None]
