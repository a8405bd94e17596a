"""Request and response bodies of the spaces API (also the source of the OpenAPI schemas)."""

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
Description = Annotated[
    str,
    msgspec.Meta(description="Up to 500 characters once trimmed; blank means none."),
]


class CreateSpace(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    description: Description | None = None


class UpdateSpace(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields given change; `description: null` removes the description."""

    name: Name | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET


class ListSpaces(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Cursor | None = None
    q: str | None = None  # substring of the name, case-insensitive


class SpaceOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    description: str | None
    link_count: int
    created_at: dt.datetime


class SpacePage(msgspec.Struct, kw_only=True):
    data: list[SpaceOut]
    next_cursor: str | None
