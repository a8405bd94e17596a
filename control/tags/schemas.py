"""Request and response bodies of the tags API (also the source of the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from control.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor

Name = Annotated[
    str,
    msgspec.Meta(
        description="1 to 64 characters once trimmed, no control characters; "
        "unique in the workspace."
    ),
]
# msgspec's pattern check lets a trailing newline through (`$`); the service re-checks.
Color = Annotated[
    str, msgspec.Meta(pattern="^#[0-9a-fA-F]{6}$", description="A `#rrggbb` hex colour.")
]


class CreateTag(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    color: Color | None = None


class UpdateTag(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields given change; `color: null` removes the colour."""

    name: Name | UnsetType = UNSET
    color: Color | UnsetType | None = UNSET


class ListTags(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Cursor | None = None
    q: str | None = None  # substring of the name, case-insensitive


class TagOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    color: str | None
    link_count: int
    created_at: dt.datetime


class TagPage(msgspec.Struct, kw_only=True):
    data: list[TagOut]
    next_cursor: str | None
