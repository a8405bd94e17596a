from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, DateTime, Index, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base


class Click(Base):
    """One stored click. The id is minted by the edge, so re-delivery inserts nothing."""

    __tablename__ = "clicks"
    __table_args__ = (Index("ix_clicks_link_id_clicked_at", "link_id", "clicked_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    link_id: Mapped[uuid.UUID]
    workspace_id: Mapped[uuid.UUID]
    domain_id: Mapped[uuid.UUID]
    clicked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    touch: Mapped[str]
    user_agent: Mapped[str]
    referrer: Mapped[str]
    country: Mapped[str]
    # Derived by ingest from the user agent and referrer (control/clicks/visitor.py).
    device: Mapped[str] = mapped_column(server_default="")
    browser: Mapped[str] = mapped_column(server_default="")
    os: Mapped[str] = mapped_column(server_default="")
    bot: Mapped[bool] = mapped_column(server_default="false")
    referrer_host: Mapped[str] = mapped_column(server_default="")
    social: Mapped[str] = mapped_column(server_default="")
    variant: Mapped[int] = mapped_column(SmallInteger, server_default="-1")
    utm_source: Mapped[str] = mapped_column(server_default="")
    utm_medium: Mapped[str] = mapped_column(server_default="")
    utm_campaign: Mapped[str] = mapped_column(server_default="")
    tracked: Mapped[bool] = mapped_column(server_default="false")


class LinkStats(Base):
    """Running totals per link, advanced only by rows the ingest actually inserted."""

    __tablename__ = "link_stats"

    link_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)
