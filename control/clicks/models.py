from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, DateTime, Index, PrimaryKeyConstraint, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from control.db import Base


class Click(Base):
    """One stored click. The id is minted by the edge, so re-delivery inserts nothing.

    Partitioned by range of `clicked_at`, one partition per UTC day (made and dropped by
    control/clicks/partitions.py, not by migrations). PostgreSQL wants the partition key
    in the primary key, hence (clicked_at, id); `clicked_at` is the time carried by the
    UUIDv7 id (control/clicks/enrich.py), so the pair is unique exactly when the id is.
    """

    __tablename__ = "clicks"
    __table_args__ = (
        PrimaryKeyConstraint("clicked_at", "id"),
        Index("ix_clicks_link_id_clicked_at", "link_id", "clicked_at"),
        {"postgresql_partition_by": "RANGE (clicked_at)"},
    )

    id: Mapped[uuid.UUID]
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


class ClickHourly(Base):
    """Clicks per link and hour, advanced by ingest in the transaction that stores them."""

    __tablename__ = "click_hourly"
    __table_args__ = (Index("ix_click_hourly_workspace_id_hour", "workspace_id", "hour"),)

    link_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    workspace_id: Mapped[uuid.UUID]
    humans: Mapped[int] = mapped_column(BigInteger, default=0)
    bots: Mapped[int] = mapped_column(BigInteger, default=0)
    human_qr: Mapped[int] = mapped_column(BigInteger, default=0)  # scans among `humans`
    bot_qr: Mapped[int] = mapped_column(BigInteger, default=0)


class ClickHourlyDim(Base):
    """Clicks per link, hour and value of one dimension (country, device, browser, os,
    referrer_host, social, utm_source, utm_medium, utm_campaign)."""

    __tablename__ = "click_hourly_dims"
    __table_args__ = (
        Index(
            "ix_click_hourly_dims_workspace_id_dimension_hour", "workspace_id", "dimension", "hour"
        ),
    )

    link_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    dimension: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(primary_key=True)
    workspace_id: Mapped[uuid.UUID]
    humans: Mapped[int] = mapped_column(BigInteger, default=0)
    bots: Mapped[int] = mapped_column(BigInteger, default=0)
