"""Request and response bodies of the links API (also the source of the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec


class CreateLink(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Create a short link. Without a slug, a short unguessable one is generated."""

    destination: Annotated[
        str,
        msgspec.Meta(
            max_length=4096,
            description="Where the link goes. `https://` is added when no scheme is given.",
        ),
    ]
    slug: (
        Annotated[
            str, msgspec.Meta(max_length=64, description="Case-insensitive; a-z, 0-9, '-' and '_'.")
        ]
        | None
    ) = None


class LinkOut(msgspec.Struct, kw_only=True):
    id: str
    workspace_id: str
    domain: str
    slug: str
    short_url: str
    destination: str
    redirect_status: int
    clicks: int
    created_at: dt.datetime
    updated_at: dt.datetime
