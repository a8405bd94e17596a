from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column, id_column


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str]
    created_at: Mapped[dt.datetime] = created_column()


class Workspace(Base):
    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[uuid.UUID] = id_column()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str]
    created_at: Mapped[dt.datetime] = created_column()
