"""Bodies of the installation-token and REST-hook APIs (also the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from control.destinations.hooks.tokens import SCOPES
from control.destinations.schemas import Filters, Redact, Template
from control.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor

NAME_MAX = 100


class CreateInstallationToken(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    platform: Annotated[str, msgspec.Meta(description="`zapier`, `make` or `n8n`.")]
    name: Annotated[
        str, msgspec.Meta(description=f"1 to {NAME_MAX} characters, e.g. the Zapier account.")
    ]
    scopes: (
        Annotated[
            list[str],
            msgspec.Meta(
                min_length=1,
                max_length=len(SCOPES),
                description="`hooks:read` (samples, list) and/or `hooks:write` (subscribe, "
                "unsubscribe; implies read). Default: both.",
            ),
        ]
        | None
    ) = None


class InstallationTokenOut(msgspec.Struct, kw_only=True):
    id: str
    platform: str
    name: str
    prefix: Annotated[str, msgspec.Meta(description="The token's first characters.")]
    scopes: list[str]
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class InstallationTokenCreated(InstallationTokenOut, kw_only=True):
    token: Annotated[
        str | None,
        msgspec.Meta(
            description="The token (`rit_…`), shown in this response only. Null (with "
            "`token_redacted`) on an Idempotency-Key replay: it is never stored."
        ),
    ]
    token_redacted: bool


class InstallationTokenPage(msgspec.Struct, kw_only=True):
    data: list[InstallationTokenOut]
    next_cursor: str | None


class ListInstallationTokens(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Cursor | None = None


class Subscribe(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Zapier's REST-hook subscribe body (`target_url`, `event`), with optional filters."""

    target_url: Annotated[
        str, msgspec.Meta(description="Where to POST events: the platform's hook URL.")
    ]
    event: Annotated[
        str,
        msgspec.Meta(
            description="link.clicked, link.qr_scanned, conversion.recorded, link.created, "
            "link.updated, link.takedown_updated or domain.verification_updated."
        ),
    ]
    filters: Filters | None = None
    redact: Redact | None = None
    template: Template | None = None


class HookOut(msgspec.Struct, kw_only=True):
    id: Annotated[str, msgspec.Meta(description="Unsubscribe with DELETE /api/v1/hooks/{id}.")]
    target_url: str
    event: str
    filters: Filters
    enabled: bool
    disabled_reason: str | None
    created_at: dt.datetime


class HookCreated(HookOut, kw_only=True):
    secret: Annotated[
        str | None,
        msgspec.Meta(
            description="Signing secret of X-Nim-Signature on this hook's deliveries, shown "
            "in this response only (null on an Idempotency-Key replay)."
        ),
    ]


class HookPage(msgspec.Struct, kw_only=True):
    data: list[HookOut]
    next_cursor: str | None


class ListHooks(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Cursor | None = None


class Me(msgspec.Struct, kw_only=True):
    """Who the token is: platforms call this to test a connection."""

    installation_id: str
    workspace_id: str
    platform: str
    name: str
    scopes: list[str]


class SampleQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    event: Annotated[str, msgspec.Meta(description="The event type, as in a subscribe.")]
    limit: Annotated[int, msgspec.Meta(ge=1, le=25)] = 3


class Samples(msgspec.Struct, kw_only=True):
    data: Annotated[
        list[dict[str, Any]],
        msgspec.Meta(
            description="Recent events of the type, newest first, as a hook receives them "
            "(a synthetic one, `data.sample: true`, when there is none yet)."
        ),
    ]
