"""The event types a destination can subscribe to.

Seed 001 puts clicks, scans and conversions on destinations; lifecycle events are allowed
too because seed 002 has Zapier, Make and n8n react to them through the same connection.
"""

from __future__ import annotations

from control.events import envelope

# Seed 000's conversion event; data carries `event_name` (lead, sale, refund, cancellation,
# reversal) and names the link in `data.attribution`.
CONVERSION_RECORDED = envelope.CONVERSION_RECORDED

CLICK_TYPES = (envelope.LINK_CLICKED, envelope.LINK_QR_SCANNED)
LIFECYCLE_TYPES = (
    envelope.LINK_CREATED,
    envelope.LINK_UPDATED,
    envelope.LINK_TAKEDOWN_UPDATED,
    envelope.DOMAIN_VERIFICATION_UPDATED,
)
EVENT_TYPES = (*CLICK_TYPES, CONVERSION_RECORDED, *LIFECYCLE_TYPES)
