"""Request and response bodies of the domains API (also the source of the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from control import pagination
from control.pagination import Cursor


class CreateDomain(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Add a custom domain; it serves links once its TXT record has been verified."""

    name: Annotated[
        str,
        # Generous: the real limits (253 octets once punycoded) are checked by the service,
        # which answers `invalid_domain` rather than a generic validation failure.
        msgspec.Meta(
            max_length=1024,
            description="A host name you control, e.g. `go.brand.com`; IDNs are accepted.",
        ),
    ]


class Verification(msgspec.Struct, kw_only=True):
    """The DNS record to publish to prove control of the domain."""

    type: str
    name: str
    value: str


class DomainOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    status: Annotated[str, msgspec.Meta(description="pending | verified | failed")]
    is_default: bool
    verification: Verification | None
    verified_at: dt.datetime | None
    checked_at: dt.datetime | None
    failure_reason: str | None
    created_at: dt.datetime


class DomainList(msgspec.Struct, kw_only=True):
    data: list[DomainOut]
    next_cursor: str | None


class ListDomains(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=pagination.MAX_LIMIT)] = pagination.DEFAULT_LIMIT
    cursor: Cursor | None = None
