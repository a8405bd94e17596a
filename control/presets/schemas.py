"""Request and response bodies of the UTM presets API (also the source of the OpenAPI schemas)."""

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
UtmValue = Annotated[
    str,
    msgspec.Meta(
        description="Up to 256 characters once trimmed, no control characters; blank means none."
    ),
]


class CreateUtmPreset(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A named set of UTM values; at least one of them is required."""

    name: Name
    source: UtmValue | None = None
    medium: UtmValue | None = None
    campaign: UtmValue | None = None
    term: UtmValue | None = None
    content: UtmValue | None = None


class UpdateUtmPreset(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields given change; a UTM value set to null is removed (one must remain)."""

    name: Name | UnsetType = UNSET
    source: UtmValue | UnsetType | None = UNSET
    medium: UtmValue | UnsetType | None = UNSET
    campaign: UtmValue | UnsetType | None = UNSET
    term: UtmValue | UnsetType | None = UNSET
    content: UtmValue | UnsetType | None = UNSET


class ListUtmPresets(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Cursor | None = None
    q: str | None = None  # substring of the name, case-insensitive


class UtmPresetOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    source: str | None
    medium: str | None
    campaign: str | None
    term: str | None
    content: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class UtmPresetPage(msgspec.Struct, kw_only=True):
    data: list[UtmPresetOut]
    next_cursor: str | None
