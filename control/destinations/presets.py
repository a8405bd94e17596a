"""Destination kinds: their settings, their default mappings, and where they send.

Each vendor kind has a default mapping written in the template language itself
(templates.py), so it can be shown (`GET /api/v1/destinations/presets`) and overridden
key by key: a destination's own template is merged over its kind's default. Field names
follow each vendor's documented request body:

- Segment HTTP Tracking API `track`: https://segment.com/docs/connections/sources/catalog/
  libraries/server/http-api/#track (messageId dedupes retries; write key as Basic user).
- GA4 Measurement Protocol: https://developers.google.com/analytics/devguides/collection/
  protocol/ga4/reference (client_id, user_id, timestamp_micros, events[].name/params).
- Meta Conversions API: https://developers.facebook.com/docs/marketing-api/conversions-api/
  parameters (data[].event_name/event_time/event_id/action_source/user_data/custom_data;
  the access token goes in an Authorization header, never in the stored body or URL).
- Slack incoming webhooks: https://api.slack.com/messaging/webhooks (`text`, mrkdwn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from control.destinations.catalogue import CONVERSION_RECORDED
from control.destinations.templates import merge
from control.events import envelope

HTTP, ZAPIER, MAKE, N8N = "http", "zapier", "make", "n8n"
SEGMENT, GA4, META_CAPI, SLACK = "segment", "ga4", "meta_capi", "slack"
HOOK_KINDS = (ZAPIER, MAKE, N8N)  # REST hooks: made and removed by the platform
META_API_VERSION = "v23.0"


def _name(table: dict[str, str], conversions: dict[str, str] | None, default: str) -> str:
    """A JMESPath expression naming the event: by type, and for conversions by outcome."""
    parts = []
    for outcome, name in (conversions or {}).items():
        parts.append(
            f"type == '{CONVERSION_RECORDED}' && data.event_name == '{outcome}' && '{name}'"
        )
    parts.extend(f"type == '{t}' && '{name}'" for t, name in table.items())
    return " || ".join([*parts, default])


# Clicks and scans name their link in `data`; a conversion in `data.attribution`.
LINK_ID = "data.link_id || data.attribution.link_id"
SHORT_URL = "data.short_url || data.attribution.short_url"
SHORT_CODE = "data.short_code || data.attribution.short_code"
DOMAIN_NAME = "data.domain_name || data.attribution.domain_name"
# When it happened: a conversion's own time, else the event's (a click's is its click time).
WHEN = "data.event_time || created_at"

SEGMENT_TEMPLATE: dict[str, Any] = {
    "messageId": "id",
    "anonymousId": "data.click_id || id",
    "userId": "data.external_id",
    "event": _name(
        {
            envelope.LINK_CLICKED: "Link Clicked",
            envelope.LINK_QR_SCANNED: "QR Code Scanned",
            CONVERSION_RECORDED: "Conversion Recorded",
            envelope.LINK_CREATED: "Link Created",
            envelope.LINK_UPDATED: "Link Updated",
            envelope.LINK_TAKEDOWN_UPDATED: "Link Takedown Updated",
            envelope.DOMAIN_VERIFICATION_UPDATED: "Domain Verification Updated",
        },
        {
            "lead": "Lead Created",
            "sale": "Order Completed",
            "refund": "Order Refunded",
            "cancellation": "Order Cancelled",
        },
        "type",
    ),
    "timestamp": WHEN,
    "properties": "data",
    "context": {
        "library": {"name": "'ricochet'", "version": "'1'"},
        "campaign": {
            "source": "data.utm_source",
            "medium": "data.utm_medium",
            "name": "data.utm_campaign",
        },
    },
}

GA4_TEMPLATE: dict[str, Any] = {
    "client_id": "data.click_id || id",
    "user_id": "data.external_id",
    "timestamp_micros": f"unix_micros({WHEN})",
    "events": [
        {
            # Names: letters, digits and _, at most 40, none of GA4's reserved ones.
            "name": _name(
                {
                    envelope.LINK_CLICKED: "short_link_click",
                    envelope.LINK_QR_SCANNED: "qr_code_scan",
                },
                {"lead": "generate_lead", "sale": "purchase", "refund": "refund"},
                "truncate(replace(type, '.', '_'), `40`)",
            ),
            # Parameter values: at most 100 characters.
            "params": {
                "event_id": "id",
                "link_id": LINK_ID,
                "short_url": f"truncate({SHORT_URL}, `100`)",
                "domain_name": f"truncate({DOMAIN_NAME}, `100`)",
                "short_code": f"truncate({SHORT_CODE}, `100`)",
                "touch_type": "data.touch_type",
                "country": "data.country",
                "device_category": "data.device_category",
                "browser_family": "data.browser_family",
                "os_family": "data.os_family",
                "referrer_host": "truncate(data.referrer_host, `100`)",
                "social_source": "data.social_source",
                "source": "truncate(data.utm_source, `100`)",
                "medium": "truncate(data.utm_medium, `100`)",
                "campaign": "truncate(data.utm_campaign, `100`)",
                "conversion": "data.event_name",
                "value": "to_number(data.value)",
                "currency": "data.currency",
                "transaction_id": "truncate(data.order_id || data.related_order_id, `100`)",
            },
        }
    ],
}

META_TEMPLATE: dict[str, Any] = {
    "data": [
        {
            "event_name": _name(
                {envelope.LINK_CLICKED: "LinkClick", envelope.LINK_QR_SCANNED: "QRCodeScan"},
                {"lead": "Lead", "sale": "Purchase"},
                "replace(type, '.', '_')",
            ),
            "event_time": f"unix_seconds({WHEN})",
            "event_id": "id",  # Meta deduplicates on event_id + event_name
            "action_source": f"type == '{CONVERSION_RECORDED}' && 'system_generated' || 'other'",
            "event_source_url": SHORT_URL,
            # Meta needs one customer parameter; external_id is hashed as it recommends.
            "user_data": {"external_id": "[sha256(data.external_id || data.click_id || id)]"},
            "custom_data": {
                "value": "to_number(data.value)",
                "currency": "data.currency",
                "order_id": "data.order_id || data.related_order_id",
                "content_name": SHORT_CODE,
                "link_id": LINK_ID,
                "touch_type": "data.touch_type",
                "country": "data.country",
                "utm_source": "data.utm_source",
                "utm_medium": "data.utm_medium",
                "utm_campaign": "data.utm_campaign",
            },
        }
    ],
}

_SLACK_HEADLINE = _name(
    {
        envelope.LINK_CLICKED: "*Link clicked*",
        envelope.LINK_QR_SCANNED: "*QR code scanned*",
    },
    None,
    f"type == '{CONVERSION_RECORDED}' && join('', ['*Conversion: ', data.event_name || '?', '*'])"
    " || join('', ['*', type, '*'])",
)
SLACK_TEMPLATE: dict[str, Any] = {
    # One line; slack_escape keeps visitor-controlled text from becoming a mention.
    "text": "slack_escape(join(' · ', ["
    f"{_SLACK_HEADLINE}, {SHORT_URL}, data.country, data.device_category, "
    "data.browser_family, data.social_source || data.referrer_host, "
    "data.utm_campaign && join('', ['campaign ', data.utm_campaign]), "
    "data.value && join(' ', [to_string(data.value), data.currency || ''])"
    "][?@]))",
}


@dataclass(frozen=True)
class Kind:
    name: str
    title: str
    # Settings shown back (`config`) and secrets kept encrypted, never shown (`secret_fields`).
    config: tuple[str, ...] = ()
    required_config: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    url: bool = False  # has a receiver URL of its own (`url`)
    headers: bool = False  # custom headers allowed
    signed: bool = False  # a signing secret: X-Nim-Signature / X-Nim-Timestamp
    template: dict[str, Any] | None = None  # the default mapping; None: the envelope as is
    # The vendor's URL: `origin` (replaced by config `base_url`, e.g. an EU endpoint or a
    # test receiver) + `path`, whose {placeholders} are config values.
    origin: str | None = None
    path: str = ""
    defaults: dict[str, str] = field(default_factory=dict)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(HTTP, "Generic HTTP", url=True, headers=True, signed=True),
        Kind(ZAPIER, "Zapier (REST hook)", url=True, signed=True),
        Kind(MAKE, "Make (REST hook)", url=True, signed=True),
        Kind(N8N, "n8n (REST hook)", url=True, signed=True),
        Kind(
            SEGMENT,
            "Segment track",
            config=("base_url",),
            secrets=("write_key",),
            template=SEGMENT_TEMPLATE,
            origin="https://api.segment.io",
            path="/v1/track",
        ),
        Kind(
            GA4,
            "Google Analytics 4 Measurement Protocol",
            config=("measurement_id", "base_url"),
            required_config=("measurement_id",),
            secrets=("api_secret",),
            template=GA4_TEMPLATE,
            origin="https://www.google-analytics.com",
            path="/mp/collect",
        ),
        Kind(
            META_CAPI,
            "Meta Conversions API",
            config=("pixel_id", "api_version", "test_event_code", "base_url"),
            required_config=("pixel_id",),
            secrets=("access_token",),
            template=META_TEMPLATE,
            origin="https://graph.facebook.com",
            path="/{api_version}/{pixel_id}/events",
            defaults={"api_version": META_API_VERSION},
        ),
        Kind(
            SLACK,
            "Slack incoming webhook",
            secrets=("webhook_url",),
            template=SLACK_TEMPLATE,
        ),
    )
}
CREATABLE = tuple(k for k in KINDS if k not in HOOK_KINDS)  # hooks come from POST /hooks


def effective_template(kind: str, override: dict[str, Any] | None) -> Any:
    """The kind's default mapping with the destination's template laid over it."""
    base = KINDS[kind].template
    if base is None:
        return override
    return base if override is None else merge(base, override)


def finish(kind: str, config: dict[str, Any], body: Any) -> Any:
    """Vendor settings that belong in the body rather than the mapping."""
    if kind == META_CAPI and config.get("test_event_code") and isinstance(body, dict):
        # Routes events to Events Manager's Test Events tab instead of production.
        return {**body, "test_event_code": config["test_event_code"]}
    return body
