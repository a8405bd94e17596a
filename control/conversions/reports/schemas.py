"""Query parameters and answers of the conversion reports (analytics API, scope
`analytics:read`). Money is a decimal string per currency: sums of different currencies
are never added together."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from msgspec import Meta

from control.analytics.schemas import LinksCursor, ScopeQuery, Time

_START = "Start of the range (inclusive), by when outcomes happened (`event_time`)."
_END = "End of the range (exclusive)."


class ReportQuery(ScopeQuery, forbid_unknown_fields=True, kw_only=True):
    start: Annotated[Time, Meta(description=_START)] | None = None
    end: Annotated[Time, Meta(description=_END)] | None = None


class PagedReportQuery(ReportQuery, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=200)] = 50
    cursor: LinksCursor | None = None


class ConversionExportQuery(ReportQuery, forbid_unknown_fields=True, kw_only=True):
    pass


class TypeCounts(msgspec.Struct, kw_only=True):
    lead: int = 0
    sale: int = 0
    refund: int = 0
    cancellation: int = 0
    reversal: int = 0


class CurrencyValue(msgspec.Struct, kw_only=True):
    """Values in one currency: `net` is sales less refunds, cancellations and reversals
    (leads are not revenue and stay apart)."""

    currency: str
    leads: str
    sales: str
    refunds: str
    cancellations: str
    reversals: str
    net: str


class AttributionCounts(msgspec.Struct, kw_only=True):
    attributed: int = 0
    pending: int = 0
    unattributed: int = 0


_RATE = (
    "Attributed leads and sales / human clicks in the range; null without clicks. A lead "
    "and a later sale from one click count twice."
)


class ConversionSummary(msgspec.Struct, kw_only=True):
    """The scope's outcomes. Without a scope filter every outcome of the workspace counts,
    unattributed and pending ones included (`attribution` tells them apart); with one,
    only outcomes attributed to the links it selects can count."""

    start: dt.datetime
    end: dt.datetime
    clicks: int
    conversions: TypeCounts
    attribution: AttributionCounts
    attribution_rate: Annotated[float | None, Meta(description=_RATE)]
    values: list[CurrencyValue]


class LinkConversions(msgspec.Struct, kw_only=True):
    link_id: str
    slug: str
    domain: str
    deleted: bool
    clicks: int
    conversions: TypeCounts
    attribution_rate: Annotated[float | None, Meta(description=_RATE)]
    values: list[CurrencyValue]


class LinkConversionsPage(msgspec.Struct, kw_only=True):
    start: dt.datetime
    end: dt.datetime
    data: list[LinkConversions]
    next_cursor: str | None


class TagConversions(msgspec.Struct, kw_only=True):
    """A link with several tags counts under each of them."""

    tag: str
    clicks: int
    conversions: TypeCounts
    attribution_rate: Annotated[float | None, Meta(description=_RATE)]
    values: list[CurrencyValue]


class TagConversionsPage(msgspec.Struct, kw_only=True):
    start: dt.datetime
    end: dt.datetime
    data: list[TagConversions]
    next_cursor: str | None


class VariantConversions(msgspec.Struct, kw_only=True):
    link_id: str
    slug: str
    domain: str
    variant: Annotated[int, Meta(description="Index of the A/B variant.")]
    destination: Annotated[
        str | None, Meta(description="The variant's destination now (null if removed since).")
    ]
    clicks: int
    conversions: TypeCounts
    attribution_rate: Annotated[float | None, Meta(description=_RATE)]
    values: list[CurrencyValue]


class VariantConversionsReport(msgspec.Struct, kw_only=True):
    start: dt.datetime
    end: dt.datetime
    data: list[VariantConversions]
