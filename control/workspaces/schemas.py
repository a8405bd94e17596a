"""Response bodies of the workspace API (also the source of the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt

import msgspec


class CallingKey(msgspec.Struct, kw_only=True):
    id: str
    prefix: str
    scopes: list[str]


class WorkspaceOut(msgspec.Struct, kw_only=True):
    """The workspace the calling key belongs to, and that key."""

    id: str
    name: str
    organization_id: str
    created_at: dt.datetime
    key: CallingKey
