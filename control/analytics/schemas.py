"""Query parameters and answers of the analytics API (also the source of the OpenAPI schemas).

Times are RFC 3339 with a zone (`2026-01-31T00:00:00Z`; in a URL, encode `+` as `%2B`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Time = Annotated[dt.datetime, Meta(tz=True, description="RFC 3339 with a zone.")]
Interval = Literal["hour", "day"]
Dimension = Literal[
    "country",
    "device",
    "browser",
    "os",
    "referrer_host",
    "social",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "touch",
]
LinksCursor = Annotated[
    str, Meta(pattern="^[A-Za-z0-9_-]{1,24}$", description="`next_cursor` of the previous page.")
]

_START = "Start of the range (inclusive)."
_END = "End of the range (exclusive)."
_BOTS = "Count bot clicks too (excluded by default)."


class ScopeQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Which links count: all of the workspace, or those every given filter selects."""

    link_id: Annotated[uuid.UUID, Meta(description="One link (deleted ones too).")] | None = None
    tag: Annotated[str, Meta(max_length=200, description="Links with this tag (name).")] | None = (
        None
    )
    space: (
        Annotated[str, Meta(max_length=200, description="Links in this space (id or name).")] | None
    ) = None
    domain: (
        Annotated[str, Meta(max_length=300, description="Links on this domain (name).")] | None
    ) = None


class TimeseriesQuery(ScopeQuery, forbid_unknown_fields=True, kw_only=True):
    interval: Interval = "day"
    start: Annotated[Time, Meta(description=_START)] | None = None
    end: Annotated[Time, Meta(description=_END)] | None = None
    bots: Annotated[bool, Meta(description=_BOTS)] = False


class BreakdownQuery(ScopeQuery, forbid_unknown_fields=True, kw_only=True):
    dimension: Dimension
    start: Annotated[Time, Meta(description=_START)] | None = None
    end: Annotated[Time, Meta(description=_END)] | None = None
    bots: Annotated[bool, Meta(description=_BOTS)] = False
    limit: Annotated[int, Meta(ge=1, le=1000)] = 50


class LinksQuery(ScopeQuery, forbid_unknown_fields=True, kw_only=True):
    start: Annotated[Time, Meta(description=_START)] | None = None
    end: Annotated[Time, Meta(description=_END)] | None = None
    limit: Annotated[int, Meta(ge=1, le=200)] = 50
    cursor: LinksCursor | None = None


class ExportQuery(ScopeQuery, forbid_unknown_fields=True, kw_only=True):
    start: Annotated[Time, Meta(description=_START)] | None = None
    end: Annotated[Time, Meta(description=_END)] | None = None
    bots: Annotated[bool, Meta(description=_BOTS)] = False


class Point(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One bucket: `clicks` counts every touch, `qr_scans` the QR scans among them; with
    `bots=true` both include bots and `bots` says how many of `clicks` were bots."""

    t: dt.datetime
    clicks: int
    qr_scans: int
    bots: int | None = None


class Timeseries(msgspec.Struct, kw_only=True):
    interval: Interval
    start: dt.datetime
    end: dt.datetime
    points: list[Point]


class BreakdownRow(msgspec.Struct, kw_only=True):
    """`value` is "" where it is unknown or absent (no referrer, no UTM value, ...), so the
    rows of a dimension add up to all clicks (within `limit`). `touch`: `link` or `qr`."""

    value: str
    clicks: int


class Breakdown(msgspec.Struct, kw_only=True):
    dimension: Dimension
    start: dt.datetime
    end: dt.datetime
    rows: list[BreakdownRow]


class LinkTotals(msgspec.Struct, kw_only=True):
    """Human `clicks` (QR scans included), human `qr_scans`, and `bots` apart."""

    link_id: str
    slug: str
    domain: str
    deleted: bool
    clicks: int
    qr_scans: int
    bots: int


class LinkTotalsPage(msgspec.Struct, kw_only=True):
    start: dt.datetime
    end: dt.datetime
    data: list[LinkTotals]
    next_cursor: str | None
