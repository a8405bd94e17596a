"""Request and response bodies of the webhooks API (also the source of the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from control.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor

MAX_URL = 2048
MAX_OVERLAP_S = 604_800  # a week

Url = Annotated[
    str,
    msgspec.Meta(
        description="The receiver: `https://` (plain `http://` only where private "
        "destinations are allowed), no credentials, at most 2,048 characters."
    ),
]
EventTypes = Annotated[
    list[str],
    msgspec.Meta(
        min_length=1,
        description="At least one of link.created, link.updated, link.takedown_updated, "
        "domain.verification_updated, link.clicked, link.qr_scanned, conversion.recorded.",
    ),
]
Description = Annotated[str, msgspec.Meta(description="Free text, at most 500 characters.")]


class CreateWebhook(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Url
    event_types: EventTypes
    description: Description | None = None
    enabled: bool = True


class UpdateWebhook(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields given change; `description: null` removes the description."""

    url: Url | UnsetType = UNSET
    event_types: EventTypes | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET


class RotateSecret(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    overlap_s: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                le=MAX_OVERLAP_S,
                description="How long the previous secret keeps signing, in seconds "
                "(default RICOCHET_WEBHOOK_SECRET_OVERLAP_S).",
            ),
        ]
        | None
    ) = None


class ListWebhooks(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Cursor | None = None


class WebhookOut(msgspec.Struct, kw_only=True):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    secret_masked: Annotated[
        str, msgspec.Meta(description="`whsec_…` and the last 4 characters of the secret.")
    ]
    previous_secret_expires_at: Annotated[
        dt.datetime | None,
        msgspec.Meta(description="Until then the previous secret signs too (after a rotation)."),
    ]
    created_at: dt.datetime
    updated_at: dt.datetime


class WebhookCreated(WebhookOut, kw_only=True):
    secret: Annotated[
        str | None,
        msgspec.Meta(
            description="The signing secret, shown in this response only. Null (with "
            "`secret_redacted`) when the response is an Idempotency-Key replay."
        ),
    ]
    secret_redacted: bool


class WebhookPage(msgspec.Struct, kw_only=True):
    data: list[WebhookOut]
    next_cursor: str | None


class SecretRotated(msgspec.Struct, kw_only=True):
    id: str
    secret: Annotated[str, msgspec.Meta(description="The new signing secret, shown once.")]
    previous_secret_expires_at: dt.datetime | None


class AttemptOut(msgspec.Struct, kw_only=True):
    number: int
    attempted_at: dt.datetime
    status_code: int | None
    latency_ms: int | None
    response_excerpt: Annotated[
        str | None, msgspec.Meta(description="The first 1,000 characters of the response.")
    ]
    error: str | None


class DeliveryOut(msgspec.Struct, kw_only=True):
    id: str
    endpoint_id: str
    event_id: Annotated[str, msgspec.Meta(description="The envelope's `evt_` id.")]
    event_type: str
    reason: Annotated[str, msgspec.Meta(description="`event`, `test` or `replay`.")]
    status: Annotated[
        str, msgspec.Meta(description="`pending`, `retrying`, `succeeded`, `failed` or `dead`.")
    ]
    attempt_count: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    attempts: list[AttemptOut]


class DeliveryPage(msgspec.Struct, kw_only=True):
    data: list[DeliveryOut]
    next_cursor: str | None


class ListDeliveries(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Cursor | None = None


class TestSendResult(msgspec.Struct, kw_only=True):
    delivery_id: str
    status: str
    status_code: int | None
    latency_ms: int | None
    error: str | None


class Recover(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    since: Annotated[
        dt.datetime, msgspec.Meta(tz=True, description="RFC 3339, with an offset or Z.")
    ]


class Recovered(msgspec.Struct, kw_only=True):
    replayed: int


class Health(msgspec.Struct, kw_only=True):
    success_rate_24h: Annotated[
        float | None,
        msgspec.Meta(description="2xx attempts / attempts in the last 24 hours; null if none."),
    ]
    attempts_24h: int
    retrying: int
    dead: int
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None
