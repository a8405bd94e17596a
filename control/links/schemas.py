"""Request and response bodies of the links API (also the source of the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from control.pagination import Cursor

Url = Annotated[str, Meta(max_length=4096)]
UtmValue = Annotated[str, Meta(max_length=256)]
Country = Annotated[str, Meta(pattern="^[A-Za-z]{2}$")]
Device = Literal["ios", "android", "desktop"]
Status = Literal[301, 302, 307, 308]


class Variant(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    destination: Url
    weight: Annotated[int, Meta(ge=1, le=10_000)] = 1


class Routing(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Per-visitor destinations: country first, then device, then a weighted A/B split."""

    countries: Annotated[dict[Country, Url], Meta(max_length=250)] = {}
    devices: dict[Device, Url] = {}
    variants: Annotated[list[Variant], Meta(max_length=10)] = []


class Utm(msgspec.Struct, kw_only=True, omit_defaults=True):
    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    term: str | None = None
    content: str | None = None


class LinkIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Create a short link. Without a slug, a short unguessable one is generated."""

    destination: Annotated[Url, Meta(description="`https://` is added when no scheme is given.")]
    slug: (
        Annotated[str, Meta(max_length=64, description="Case-insensitive: a-z 0-9 - _")] | None
    ) = None
    domain: (
        Annotated[str, Meta(description="A verified custom domain; default domain if omitted.")]
        | None
    ) = None
    redirect_status: Status = 302
    expires_at: dt.datetime | None = None
    expired_url: (
        Annotated[Url, Meta(description="Where expired visitors go instead of a 410.")] | None
    ) = None
    password: Annotated[str, Meta(min_length=4, max_length=128)] | None = None
    utm_source: UtmValue | None = None
    utm_medium: UtmValue | None = None
    utm_campaign: UtmValue | None = None
    utm_term: UtmValue | None = None
    utm_content: UtmValue | None = None
    utm_preset: (
        Annotated[str, Meta(description="Preset name; explicit utm_* fields win.")] | None
    ) = None
    tags: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=20)] = []
    space: Annotated[str, Meta(description="Space id or name.")] | None = None
    track_conversions: bool = False
    forward_query: bool = False
    routing: Routing | None = None
    external_id: Annotated[str, Meta(min_length=1, max_length=256)] | None = None


class LinkPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Change a link. Omitted fields stay as they are; `null` clears a clearable field."""

    destination: Url | UnsetType = UNSET
    slug: Annotated[str, Meta(max_length=64)] | UnsetType = UNSET
    domain: str | UnsetType | None = UNSET
    redirect_status: Status | UnsetType = UNSET
    expires_at: dt.datetime | UnsetType | None = UNSET
    expired_url: Url | UnsetType | None = UNSET
    password: Annotated[str, Meta(min_length=4, max_length=128)] | UnsetType | None = UNSET
    utm_source: UtmValue | UnsetType | None = UNSET
    utm_medium: UtmValue | UnsetType | None = UNSET
    utm_campaign: UtmValue | UnsetType | None = UNSET
    utm_term: UtmValue | UnsetType | None = UNSET
    utm_content: UtmValue | UnsetType | None = UNSET
    utm_preset: str | UnsetType | None = UNSET
    tags: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=20)] | UnsetType = (
        UNSET
    )
    space: str | UnsetType | None = UNSET
    track_conversions: bool | UnsetType = UNSET
    forward_query: bool | UnsetType = UNSET
    routing: Routing | UnsetType | None = UNSET
    external_id: Annotated[str, Meta(min_length=1, max_length=256)] | UnsetType | None = UNSET
    archived: bool | UnsetType = UNSET


class LinkOut(msgspec.Struct, kw_only=True):
    id: str
    workspace_id: str
    domain: str
    domain_id: str
    slug: str
    short_url: str
    qr_url: str  # GET it (with this API key) for a QR code of short_url + "?qr=1"
    destination: str
    redirect_status: int
    expires_at: dt.datetime | None
    expired_url: str | None
    has_password: bool
    utm: Utm
    utm_preset: str | None
    tags: list[str]
    space: str | None
    space_id: str | None
    track_conversions: bool
    forward_query: bool
    routing: Routing
    external_id: str | None
    archived: bool
    archived_at: dt.datetime | None
    taken_down: bool
    takedown_reason: str | None
    version: int
    clicks: int
    created_at: dt.datetime
    updated_at: dt.datetime


class LinkPage(msgspec.Struct, kw_only=True):
    data: list[LinkOut]
    next_cursor: str | None


class LinkQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    tag: list[str] = []
    space: str | None = None
    domain: str | None = None
    q: Annotated[str, Meta(max_length=200)] | None = None
    external_id: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    archived: Literal["exclude", "include", "only"] = "exclude"
    limit: Annotated[int, Meta(ge=1, le=200)] = 50
    cursor: Cursor | None = None


class BulkIn(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 1,000 links; each item is checked on its own, so one bad item fails alone."""

    items: Annotated[list[msgspec.Raw], Meta(min_length=1, max_length=1000)]


class BulkRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 1,000 links; each item is checked on its own, so one bad item fails alone
    (it gets an `invalid` result with the reason) instead of failing the whole call."""

    items: Annotated[list[LinkIn], Meta(min_length=1, max_length=1000)]


class ItemError(msgspec.Struct, kw_only=True, omit_defaults=True):
    code: str
    detail: str
    field: str | None = None


class BulkResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    index: int
    status: Literal["created", "slug_taken", "invalid"]
    link: LinkOut | None = None
    link_id: str | None = None  # the existing link, for slug_taken in your own workspace
    error: ItemError | None = None


class BulkOut(msgspec.Struct, kw_only=True):
    created: int
    slug_taken: int
    invalid: int
    results: list[BulkResult]


class Availability(msgspec.Struct, kw_only=True, omit_defaults=True):
    domain: str
    slug: str
    available: bool
    reason: Literal["taken", "reserved", "invalid"] | None = None
    detail: str | None = None


class AvailabilityQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    slug: str
    domain: str | None = None


class Revision(msgspec.Struct, kw_only=True):
    revision: int
    action: str
    actor: str
    created_at: dt.datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changes: list[str]


class History(msgspec.Struct, kw_only=True):
    data: list[Revision]


class RollbackIn(msgspec.Struct, forbid_unknown_fields=True):
    revision: Annotated[int, Meta(ge=1)]


class TakedownIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
