"""The Conversion API body (seed 004) and the management API's shapes (also the source of
the OpenAPI schemas). Unknown fields are refused, so a misspelt field is a clear 422
rather than an outcome silently recorded without it."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from control.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor

EventName = Literal["lead", "sale", "refund", "cancellation", "reversal"]
Status = Literal["attributed", "pending", "unattributed"]
MAX_ID = 255
MAX_OVERLAP_S = 604_800  # a week

Identifier = Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
Time = Annotated[dt.datetime, Meta(tz=True)]


class UserData(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    click_id: (
        Annotated[
            str,
            Meta(
                max_length=64,
                description="The `nim_ct` value from the landing URL (`nimct_…`): ties the "
                "outcome to its click.",
            ),
        ]
        | None
    ) = None
    external_id: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=MAX_ID,
                description="Your own id of the customer. Without a click_id, the outcome is "
                "attributed to the click of this customer's latest earlier outcome that had "
                "one (within the window).",
            ),
        ]
        | None
    ) = None


class CustomData(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    value: (
        Annotated[
            decimal.Decimal,
            Meta(
                description="A JSON number or a decimal string, at least 0, at most 6 "
                "decimal places. On a refund, cancellation or reversal: the amount undone "
                "(default: what is left of the sale)."
            ),
        ]
        | None
    ) = None
    currency: (
        Annotated[
            str, Meta(pattern="^[A-Za-z]{3}$", description="ISO 4217 code; needed with value.")
        ]
        | None
    ) = None
    order_id: (
        Annotated[str, Meta(min_length=1, max_length=MAX_ID, description="Unique among sales.")]
        | None
    ) = None
    related_order_id: (
        Annotated[
            str,
            Meta(min_length=1, max_length=MAX_ID, description="The order_id of the sale undone."),
        ]
        | None
    ) = None
    related_event_id: (
        Annotated[
            str,
            Meta(min_length=1, max_length=MAX_ID, description="The event_id of the sale undone."),
        ]
        | None
    ) = None


class ConversionEvent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One business outcome, sent server to server, signed with the conversion secret."""

    event_name: EventName
    event_id: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_ID,
            description="Your stable id of this outcome: a repeat returns the stored result.",
        ),
    ]
    event_time: (
        Annotated[
            int | Time,
            Meta(
                description="When it happened: Unix seconds or RFC 3339 with a zone; not in "
                "the future (default: when received)."
            ),
        ]
        | None
    ) = None
    user_data: UserData = msgspec.field(default_factory=UserData)
    custom_data: CustomData = msgspec.field(default_factory=CustomData)


class Attribution(msgspec.Struct, kw_only=True):
    status: Annotated[
        Status,
        Meta(
            description="`pending` while the click is not stored yet (ingest lag); settled "
            "once, to `attributed` or `unattributed`."
        ),
    ]
    reason: Annotated[
        str | None,
        Meta(
            description="Why unattributed: `no_click_id`, `click_not_found` or "
            "`outside_window` (the click was more than 30 days before the outcome, or "
            "after it)."
        ),
    ]
    via: Annotated[
        str | None,
        Meta(
            description="How the click was found: `click_id` (the token sent), `external_id` "
            "(the customer's latest earlier outcome with a click) or `sale` (a refund, "
            "cancellation or reversal takes its sale's)."
        ),
    ]
    link_id: str | None
    variant: Annotated[
        int | None, Meta(description="Index of the A/B variant the click was sent to.")
    ]
    click_id: Annotated[str | None, Meta(description="The click attributed to (`nimct_…`).")]
    clicked_at: dt.datetime | None


class ConversionOut(msgspec.Struct, kw_only=True):
    id: str
    event_id: str
    event_name: EventName
    event_time: dt.datetime
    received_at: dt.datetime
    click_id: Annotated[str | None, Meta(description="user_data.click_id as sent.")]
    external_id: str | None
    value: Annotated[str | None, Meta(description="A decimal string.")]
    currency: str | None
    order_id: str | None
    related_order_id: str | None
    related_event_id: str | None
    related_conversion_id: Annotated[
        str | None, Meta(description="The id of the sale a negative outcome undoes.")
    ]
    attribution: Attribution


class ConversionPage(msgspec.Struct, kw_only=True):
    data: list[ConversionOut]
    next_cursor: str | None


class ListConversions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Cursor | None = None
    event_name: EventName | None = None
    attribution: Status | None = None
    link_id: uuid.UUID | None = None


class SecretOut(msgspec.Struct, kw_only=True):
    secret_masked: Annotated[
        str, Meta(description="`cvsec_…` and the last 4 characters of the secret.")
    ]
    created_at: dt.datetime
    rotated_at: dt.datetime | None
    previous_secret_expires_at: Annotated[
        dt.datetime | None,
        Meta(description="Until then the previous secret is accepted too (after a rotation)."),
    ]


class SecretIssued(SecretOut, kw_only=True):
    secret: Annotated[str, Meta(description="The signing secret, shown in this response only.")]


class RotateConversionSecret(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    overlap_s: (
        Annotated[
            int,
            Meta(
                ge=0,
                le=MAX_OVERLAP_S,
                description="How long the previous secret stays accepted, in seconds "
                "(default RICOCHET_CONVERSION_SECRET_OVERLAP_S; 0 revokes it at once).",
            ),
        ]
        | None
    ) = None
