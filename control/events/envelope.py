"""The event envelope integrators receive (seed 002): id, type, api_version, created_at,
organization_id, workspace_id, data. Built once, stored as is, delivered byte-identical."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlsplit

from shared.ids import uuid7

API_VERSION = "v1"
EVENT_PREFIX = "evt_"
CAPPED_URL_LENGTH = 200

LINK_CREATED = "link.created"
LINK_UPDATED = "link.updated"
LINK_TAKEDOWN_UPDATED = "link.takedown_updated"
DOMAIN_VERIFICATION_UPDATED = "domain.verification_updated"
LINK_CLICKED = "link.clicked"
LINK_QR_SCANNED = "link.qr_scanned"
CONVERSION_RECORDED = "conversion.recorded"  # seed 000: an outcome, once attributed or not
WEBHOOK_TEST = "nim.webhook.test"


def event_id_text(value: uuid.UUID) -> str:
    return EVENT_PREFIX + value.hex


def parse_event_id(text: str) -> uuid.UUID | None:
    if not text.startswith(EVENT_PREFIX):
        return None
    try:
        return uuid.UUID(hex=text[len(EVENT_PREFIX) :])
    except ValueError:
        return None


def build(
    event_type: str,
    organization_id: uuid.UUID,
    workspace_id: uuid.UUID,
    data: dict[str, Any],
    *,
    event_id: uuid.UUID | None = None,
    created_at: dt.datetime | None = None,
) -> tuple[uuid.UUID, dt.datetime, dict[str, Any]]:
    eid = event_id or uuid7()
    when = created_at or dt.datetime.now(dt.UTC)
    return (
        eid,
        when,
        {
            "id": event_id_text(eid),
            "type": event_type,
            "api_version": API_VERSION,
            "created_at": when.isoformat().replace("+00:00", "Z"),
            "organization_id": str(organization_id),
            "workspace_id": str(workspace_id),
            "data": data,
        },
    )


def destination_host(url: str) -> str:
    return urlsplit(url).hostname or ""


def destination_url_capped(url: str) -> str:
    """Scheme, host and path only, at most 200 characters: no query string, which may carry
    signatures or personal data, and never the whole of a long URL."""
    parts = urlsplit(url)
    text = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return text if len(text) <= CAPPED_URL_LENGTH else text[: CAPPED_URL_LENGTH - 1] + "…"
