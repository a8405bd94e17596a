"""A click event from the edge becomes a stored row: parsed ids, visitor context derived.

The edge records raw facts (user agent, referrer, address); here, off the redirect path,
they become device, browser, OS, bot flag, country, referrer host and social source. The
address is used for the country and then dropped: it is never stored.

`clicked_at` is the time inside the click id (a UUIDv7 the edge mints in the same instant
it reads the clock for `ts_ms`, at most a millisecond or two apart), not `ts_ms`. `clicks`
is partitioned by `clicked_at` and keyed on (clicked_at, id), so ON CONFLICT DO NOTHING
only spots a re-delivered click when both match: taking the time from the id makes
clicked_at a pure function of the id, and (clicked_at, id) unique exactly when id is,
whatever a producer puts in `ts_ms`. An id that is not a UUIDv7 is refused (ValueError:
ingest parks the click in the dead stream).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from control.clicks.repository import ts
from control.clicks.visitor import Visitors
from shared.clicks import ClickEvent

# Ids stay text all the way into COPY: PostgreSQL parses them faster than Python builds
# uuid.UUID objects, which cost ingest a fifth of its time. Checked here, all the same.
_CLICK_ID = re.compile(r"[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}")  # UUIDv7, hex
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(text: str, what: str) -> str:
    value = text.lower()
    if not _UUID.fullmatch(value):
        raise ValueError(f"{what} {text!r} is not a UUID")
    return value


@functools.cache
def visitors() -> Visitors:
    """One per process: building it costs ~0.5 s and ~100 MB."""
    return Visitors()


def row(event: ClickEvent, who: Visitors) -> dict[str, Any]:
    agent = who.agent(event.user_agent)
    referrer_host, social = who.referrer(event.referrer)
    click_id = event.id.lower()
    if not _CLICK_ID.fullmatch(click_id):
        raise ValueError(f"click id {event.id!r} is not a UUIDv7")
    return {
        "id": click_id,
        "link_id": _uuid(event.link_id, "link id"),
        "workspace_id": _uuid(event.workspace_id, "workspace id"),
        "domain_id": _uuid(event.domain_id, "domain id"),
        "clicked_at": ts(int(click_id[:12], 16)),  # not event.ts_ms: see the module doc
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
