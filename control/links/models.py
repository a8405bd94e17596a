from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import DateTime, ForeignKey, Index, SmallInteger, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column, id_column


class Link(Base):
    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("domain_id", "slug"),
        Index("ix_links_workspace_id_id", "workspace_id", "id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id"))
    domain_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("domains.id"))
    slug: Mapped[str]
    destination: Mapped[str]
    redirect_status: Mapped[int] = mapped_column(SmallInteger, default=302)
    # Bumped on every change; the Redis projection only ever moves forward in version.
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = created_column()
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
