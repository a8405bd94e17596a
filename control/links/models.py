from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    Table,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base, created_column, id_column


class Link(Base):
    __tablename__ = "links"
    __table_args__ = (
        # A deleted link frees its slug; live links are unique per domain.
        Index(
            "uq_links_domain_id_slug_live",
            "domain_id",
            "slug",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "uq_links_workspace_id_external_id_live",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL AND deleted_at IS NULL"),
        ),
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
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    expired_url: Mapped[str | None]
    password_hash: Mapped[str | None]  # argon2id, PHC string; never leaves the server
    utm: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict, server_default="{}")
    utm_preset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("utm_presets.id", ondelete="SET NULL")
    )
    space_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("spaces.id", ondelete="SET NULL"), index=True
    )
    track_conversions: Mapped[bool] = mapped_column(default=False, server_default="false")
    forward_query: Mapped[bool] = mapped_column(default=False, server_default="false")
    routing: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    external_id: Mapped[str | None]
    archived_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    taken_down_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    takedown_reason: Mapped[str | None]


link_tags = Table(
    "link_tags",
    Base.metadata,
    Column("link_id", ForeignKey("links.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class LinkRevision(Base):
    """One change to a link: the state before and after, who made it, and how."""

    __tablename__ = "link_revisions"
    __table_args__ = (UniqueConstraint("link_id", "revision"),)

    id: Mapped[uuid.UUID] = id_column()
    link_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("links.id", ondelete="CASCADE"))
    revision: Mapped[int]
    action: Mapped[
        str
    ]  # create | update | rollback | archive | unarchive | delete | takedown | restore
    actor: Mapped[str]
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = created_column()
