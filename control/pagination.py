"""Opaque cursors: the id of the last item on the page, base64url-encoded."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated

from msgspec import Meta

from control.errors import ApiError

# What `next_cursor` looks like (16 bytes, base64url, unpadded), so clients and the
# OpenAPI document know; anything else is refused before it reaches a query.
Cursor = Annotated[
    str, Meta(pattern="^[A-Za-z0-9_-]{22}$", description="`next_cursor` of the previous page.")
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode(cursor: str | None) -> uuid.UUID | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (ValueError, TypeError):
        raise ApiError(
            "invalid_cursor", "The cursor is not one this API returned.", field="cursor"
        ) from None


def next_cursor(ids: list[uuid.UUID], limit: int) -> str | None:
    """A cursor only when the page is full: then there may be more."""
    return encode(ids[-1]) if len(ids) == limit and ids else None
