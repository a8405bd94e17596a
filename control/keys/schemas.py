"""Request and response bodies of the API keys API (also the source of the OpenAPI schemas).

No body here has a field for the key hash; the plaintext key appears only in `ApiKeyCreated`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from control.keys.scopes import ALL_SCOPES
from control.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor

NAME_MAX = 100


class CreateApiKey(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Issue a key for the caller's workspace. It can hold only scopes the calling key holds."""

    name: Annotated[
        str,
        msgspec.Meta(
            description=(
                f"1 to {NAME_MAX} characters after trimming surrounding white space; "
                "no control or invisible formatting characters."
            )
        ),
    ]
    # Bounded so a request cannot make us check an arbitrarily long list.
    scopes: (
        Annotated[
            list[str],
            msgspec.Meta(
                min_length=1,
                max_length=4 * len(ALL_SCOPES),
                description=(
                    "Scopes of the new key; `<resource>:write` implies read. "
                    "Defaults to the calling key's own scopes."
                ),
            ),
        ]
        | None
    ) = None


class ApiKeyOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    prefix: Annotated[
        str, msgspec.Meta(description="The key's first characters, to tell keys apart.")
    ]
    scopes: list[str]
    created_at: dt.datetime
    last_used_at: Annotated[
        dt.datetime | None, msgspec.Meta(description="Recorded at most once a minute.")
    ]
    revoked_at: dt.datetime | None


class ApiKeyCreated(ApiKeyOut, kw_only=True):
    key: Annotated[
        str | None,
        msgspec.Meta(
            description=(
                "The secret key, shown in this response only. Null (with `key_redacted`) when "
                "the response is an Idempotency-Key replay: the secret is never stored."
            )
        ),
    ]
    key_redacted: bool


class ApiKeyPage(msgspec.Struct, kw_only=True):
    data: list[ApiKeyOut]
    next_cursor: str | None


class ListApiKeys(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    cursor: Cursor | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
