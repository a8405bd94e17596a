"""Request and response bodies of the destinations API (also the source of the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType

from control.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor
from control.webhooks.schemas import AttemptOut

MAX_HEADERS = 20
MAX_REDACT = 50
MAX_IDS = 100

Kind = Annotated[
    str,
    msgspec.Meta(
        description="`http`, `segment`, `ga4`, `meta_capi` or `slack` (`zapier`, `make` and "
        "`n8n` destinations are made by those platforms through `POST /api/v1/hooks`)."
    ),
]
EventTypes = Annotated[
    list[str],
    msgspec.Meta(
        min_length=1,
        max_length=20,
        description="Any of link.clicked, link.qr_scanned, conversion.recorded, link.created, "
        "link.updated, link.takedown_updated, domain.verification_updated.",
    ),
]
Url = Annotated[
    str,
    msgspec.Meta(
        description="`http` and REST hooks: the receiver, `https://` (plain `http://` only where "
        "private destinations are allowed), no credentials, at most 2,048 characters."
    ),
]
Headers = Annotated[
    dict[str, str],
    msgspec.Meta(
        max_length=MAX_HEADERS,
        description="`http` only: extra request headers, stored encrypted and never shown "
        "again (responses list `header_names`). Not: Host, Content-Length, Content-Type, "
        "Transfer-Encoding, Connection, User-Agent or X-Nim-*.",
    ),
]
Config = Annotated[
    dict[str, str],
    msgspec.Meta(
        max_length=20,
        description="Per kind (see `GET /api/v1/destinations/presets`): segment `write_key`; "
        "ga4 `measurement_id`, `api_secret`; meta_capi `pixel_id`, `access_token`, "
        "`api_version`, `test_event_code`; slack `webhook_url`; vendors `base_url` to send "
        "elsewhere than the vendor's default host. Secret values are stored encrypted and "
        "never shown again.",
    ),
]
Redact = Annotated[
    list[str],
    msgspec.Meta(
        max_length=MAX_REDACT,
        description="Field paths removed from the event before it is mapped and sent, e.g. "
        "`data.country`, `data.referrer_host`.",
    ),
]
Template = Annotated[
    dict[str, Any] | list[Any],
    msgspec.Meta(
        description="The body to send: JSON whose string values are JMESPath expressions over "
        "the (redacted) envelope; `'text'` is a constant string; keys whose value is null are "
        "left out. For vendor kinds it is merged key by key over the default mapping."
    ),
]
Ids = Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_IDS)]


class Condition(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    field: Annotated[
        str, msgspec.Meta(description="A field path into the envelope: `data.utm_campaign`.")
    ]
    op: Annotated[
        str,
        msgspec.Meta(
            description="eq, ne, in, not_in, prefix, suffix, contains, gt, gte, lt, lte, "
            "exists, not_exists."
        ),
    ]
    value: Any = None


class Filters(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """All given filters must hold; within one, any listed value will do."""

    touch_types: Annotated[list[str], msgspec.Meta(min_length=1, max_length=2)] | None = None
    domain_ids: Ids | None = None
    link_ids: Ids | None = None
    tags: (
        Annotated[
            list[str],
            msgspec.Meta(
                min_length=1,
                max_length=MAX_IDS,
                description="Tag names: the event's link must carry at least one of them "
                "(looked up when the event is fanned out).",
            ),
        ]
        | None
    ) = None
    conditions: Annotated[list[Condition], msgspec.Meta(max_length=20)] | None = None


class CreateDestination(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Kind
    event_types: EventTypes
    description: str | None = None
    url: Url | None = None
    headers: Headers | None = None
    config: Config | None = None
    filters: Filters | None = None
    redact: Redact | None = None
    template: Template | None = None
    enabled: bool = True


class UpdateDestination(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields given change. `headers` and `filters` are replaced whole; `config`
    keys given replace those stored (null removes an optional one); `template: null` goes
    back to the default mapping."""

    event_types: EventTypes | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    url: Url | UnsetType = UNSET
    headers: Headers | UnsetType = UNSET
    config: Annotated[dict[str, str | None], msgspec.Meta(max_length=20)] | UnsetType = UNSET
    filters: Filters | UnsetType = UNSET
    redact: Redact | UnsetType = UNSET
    template: Template | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET


class ListDestinations(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Cursor | None = None
    kind: str | None = None


class DestinationOut(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    description: str | None
    event_types: list[str]
    url: Annotated[
        str | None,
        msgspec.Meta(
            description="Where events go, without secrets (a Slack webhook URL is a secret: null)."
        ),
    ]
    config: Annotated[dict[str, str], msgspec.Meta(description="Settings that are not secret.")]
    secret_fields: Annotated[
        list[str], msgspec.Meta(description="Names of the secret settings stored (never shown).")
    ]
    header_names: list[str]
    filters: Filters
    redact: list[str]
    template: Annotated[
        Any, msgspec.Meta(description="The destination's own template, or null.")
    ] = None
    signed: Annotated[
        bool, msgspec.Meta(description="Requests carry X-Nim-Signature / X-Nim-Timestamp.")
    ]
    secret_masked: Annotated[
        str | None, msgspec.Meta(description="`whsec_…` and the signing secret's last 4.")
    ]
    previous_secret_expires_at: dt.datetime | None
    installation_id: Annotated[
        str | None, msgspec.Meta(description="The installation token whose REST hook this is.")
    ]
    enabled: bool
    disabled_reason: Annotated[
        str | None, msgspec.Meta(description="Why delivery stopped by itself (a 410 Gone).")
    ]
    created_at: dt.datetime
    updated_at: dt.datetime


class DestinationCreated(DestinationOut, kw_only=True):
    secret: Annotated[
        str | None,
        msgspec.Meta(
            description="Signed kinds: the signing secret, shown in this response only. Null "
            "for other kinds and (with `secret_redacted`) on an Idempotency-Key replay."
        ),
    ]
    secret_redacted: bool


class DestinationPage(msgspec.Struct, kw_only=True):
    data: list[DestinationOut]
    next_cursor: str | None


class PresetOut(msgspec.Struct, kw_only=True):
    kind: str
    title: str
    url: Annotated[str | None, msgspec.Meta(description="The vendor's default URL, if any.")]
    config: list[str]
    required_config: list[str]
    secret_fields: list[str]
    has_url: bool
    headers: bool
    signed: bool
    template: Annotated[
        Any, msgspec.Meta(description="The default mapping; null: the envelope as is.")
    ] = None


class PresetList(msgspec.Struct, kw_only=True):
    data: list[PresetOut]


class DestinationDeliveryOut(msgspec.Struct, kw_only=True):
    id: str
    destination_id: str
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


class DestinationDeliveryPage(msgspec.Struct, kw_only=True):
    data: list[DestinationDeliveryOut]
    next_cursor: str | None


class TestSend(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    event_type: Annotated[
        str | None,
        msgspec.Meta(
            description="Send a synthetic event of this type through the mapping (default: "
            "`nim.webhook.test`)."
        ),
    ] = None


class Preview(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    event_id: Annotated[
        str | None, msgspec.Meta(description="A stored event (`evt_…`) to map.")
    ] = None
    event_type: Annotated[
        str | None,
        msgspec.Meta(description="Else a synthetic event of this type (default link.clicked)."),
    ] = None


class PreviewOut(msgspec.Struct, kw_only=True):
    event: Annotated[dict[str, Any], msgspec.Meta(description="The envelope mapped.")]
    passes_filters: bool
    body: Annotated[Any, msgspec.Meta(description="The JSON body the destination would get.")]
