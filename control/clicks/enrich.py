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
import uuid
from typing import Any

from control.clicks.repository import ts
from control.clicks.visitor import Visitors
from shared.clicks import ClickEvent
from shared.ids import uuid7_ms


@functools.cache
def visitors() -> Visitors:
    """One per process: building it costs ~0.5 s and ~100 MB."""
    return Visitors()


def row(event: ClickEvent, who: Visitors) -> dict[str, Any]:
    agent = who.agent(event.user_agent)
    referrer_host, social = who.referrer(event.referrer)
    click_id = uuid.UUID(hex=event.id)
    if click_id.version != 7:
        raise ValueError(f"click id {event.id} is not a UUIDv7")
    return {
        "id": click_id,
        "link_id": uuid.UUID(event.link_id),
        "workspace_id": uuid.UUID(event.workspace_id),
        "domain_id": uuid.UUID(event.domain_id),
        "clicked_at": ts(uuid7_ms(click_id)),  # not event.ts_ms: see the module doc
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
