"""Bodies of the events API (also the source of the OpenAPI schemas).

Handlers return stored envelopes as they are; `EventOut` documents their shape.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from control.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor

MAX_TYPES = 20
EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class EventOut(msgspec.Struct, kw_only=True):
    """An event envelope, exactly as webhooks deliver it."""

    id: Annotated[str, msgspec.Meta(description="`evt_` followed by 32 hex digits.")]
    type: Annotated[str, msgspec.Meta(examples=["link.created"])]
    api_version: str
    created_at: Annotated[str, msgspec.Meta(description="RFC 3339, UTC.")]
    organization_id: str
    workspace_id: str
    data: dict[str, Any]


class EventPage(msgspec.Struct, kw_only=True):
    data: list[EventOut]
    next_cursor: str | None


class ListEvents(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # A single `?type=` arrives as a string, a repeated one as a list.
    type: EventType | Annotated[list[EventType], msgspec.Meta(max_length=MAX_TYPES)] | None = None
    cursor: Cursor | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT

    def types(self) -> list[str]:
        if self.type is None:
            return []
        return [self.type] if isinstance(self.type, str) else list(dict.fromkeys(self.type))
