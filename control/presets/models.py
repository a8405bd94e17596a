from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import DateTime, ForeignKey, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column, id_column


class UtmPreset(Base):
    """Reusable UTM values; a link's explicit UTM fields override the preset's."""

    __tablename__ = "utm_presets"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[uuid.UUID] = id_column()
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id"))
    name: Mapped[str]
    source: Mapped[str | None]
    medium: Mapped[str | None]
    campaign: Mapped[str | None]
    term: Mapped[str | None]
    content: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_column()
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
