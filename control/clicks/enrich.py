"""A click event from the edge becomes a stored row: parsed ids, visitor context derived.

The edge records raw facts (user agent, referrer, address); here, off the redirect path,
they become device, browser, OS, bot flag, country, referrer host and social source. The
address is used for the country and then dropped: it is never stored.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from control.clicks.repository import ts
from control.clicks.visitor import Visitors
from shared.clicks import ClickEvent


@functools.cache
def visitors() -> Visitors:
    """One per process: building it costs ~0.5 s and ~100 MB."""
    return Visitors()


def row(event: ClickEvent, who: Visitors) -> dict[str, Any]:
    agent = who.agent(event.user_agent)
    referrer_host, social = who.referrer(event.referrer)
    return {
        "id": uuid.UUID(hex=event.id),
        "link_id": uuid.UUID(event.link_id),
        "workspace_id": uuid.UUID(event.workspace_id),
        "domain_id": uuid.UUID(event.domain_id),
        "clicked_at": ts(event.ts_ms),
        "touch": event.touch,
        "user_agent": event.user_agent[:512],
        "referrer": event.referrer[:1024],
        "country": event.country or who.country(None, event.ip or None),
        "device": agent.device,
        "browser": agent.browser,
        "os": agent.os,
        "bot": agent.bot,
        "referrer_host": referrer_host,
        "social": social,
        "variant": event.variant,
        "utm_source": event.utm_source[:256],
        "utm_medium": event.utm_medium[:256],
        "utm_campaign": event.utm_campaign[:256],
        "tracked": event.tracked,
    }
