"""Synthetic events, shaped like the real ones, for test-sends, previews and REST-hook
samples when a workspace has no event of the type yet. Their ids are fresh each time and
their data says `"sample": true`, so a receiver can tell them from real traffic."""

from __future__ import annotations

import uuid
from typing import Any

from control.destinations.catalogue import CONVERSION_RECORDED
from control.events import envelope

_LINK = "0190a000-0000-7000-8000-000000000001"
_DOMAIN = "0190a000-0000-7000-8000-000000000002"


def _click(touch: str) -> dict[str, Any]:
    return {
        "click_id": "nimct_sample",
        "link_id": _LINK,
        "domain_id": _DOMAIN,
        "short_url": "https://go.example.com/launch-q2",
        "domain_name": "go.example.com",
        "short_code": "launch-q2",
        "touch_type": touch,
        "clicked_at": "2026-01-01T12:00:00.000Z",
        "country": "US",
        "device_category": "mobile",
        "browser_family": "Chrome",
        "os_family": "Android",
        "referrer_host": "l.instagram.com",
        "social_source": "instagram",
        "utm_source": "instagram",
        "utm_medium": "social",
        "utm_campaign": "spring-launch",
    }


_DATA: dict[str, dict[str, Any]] = {
    envelope.LINK_CLICKED: _click("link"),
    envelope.LINK_QR_SCANNED: _click("qr"),
    CONVERSION_RECORDED: {
        "conversion_id": "0190a000-0000-7000-8000-000000000003",
        "event_name": "sale",
        "event_id": "crm-order-1001",
        "event_time": "2026-01-01T12:30:00Z",
        "received_at": "2026-01-01T12:30:01Z",
        "click_id": "nimct_sample",
        "external_id": "customer-42",
        "value": "129.00",
        "currency": "EUR",
        "order_id": "order-1001",
        "related_order_id": None,
        "related_event_id": None,
        "related_conversion_id": None,
        "attribution": {
            "status": "attributed",
            "reason": None,
            "via": "click_id",
            "link_id": _LINK,
            "short_code": "launch-q2",
            "domain_name": "go.example.com",
            "short_url": "https://go.example.com/launch-q2",
            "variant": None,
            "clicked_at": "2026-01-01T12:00:00Z",
        },
    },
    envelope.LINK_CREATED: {
        "link_id": _LINK,
        "domain_id": _DOMAIN,
        "domain_name": "go.example.com",
        "short_code": "launch-q2",
        "short_url": "https://go.example.com/launch-q2",
        "destination_host": "brand.example",
        "destination_url_capped": "https://brand.example/launch",
        "tags": ["q2", "email"],
    },
}


def envelope_of(
    event_type: str,
    organization_id: uuid.UUID,
    workspace_id: uuid.UUID,
    extra: dict[str, Any] | None = None,
) -> tuple[uuid.UUID, dict[str, Any]]:
    """(event id, envelope) of a sample event of this type."""
    data = {**_DATA.get(event_type, {}), **(extra or {}), "sample": True}
    event_id, _, env = envelope.build(event_type, organization_id, workspace_id, data)
    return event_id, env
