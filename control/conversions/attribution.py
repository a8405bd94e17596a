"""Whether an outcome is tied to a click: the 30-day window and the wait for ingest.

Pure decisions; the click itself is looked up by the service (control/conversions/
service.py). See docs/adr/0008-conversion-attribution.md for why these rules.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

WINDOW = dt.timedelta(days=30)

ATTRIBUTED = "attributed"
PENDING = "pending"
UNATTRIBUTED = "unattributed"

NO_CLICK_ID = "no_click_id"
CLICK_NOT_FOUND = "click_not_found"
OUTSIDE_WINDOW = "outside_window"


class Verdict(NamedTuple):
    status: str
    reason: str | None = None


def in_window(clicked_at: dt.datetime, event_time: dt.datetime, skew: dt.timedelta) -> bool:
    """The outcome happened no earlier than its click (give or take clock skew) and at most
    30 days after it."""
    return clicked_at - skew <= event_time <= clicked_at + WINDOW


def without_click(clicked_at: dt.datetime, now: dt.datetime, pending: dt.timedelta) -> Verdict:
    """The click is not stored (yet): wait for ingest while that is plausible, else give up.

    The click's time comes from its id, so `clicked_at + pending` is the moment the click
    would have had to be stored by, however late the outcome itself arrives.
    """
    if now < clicked_at + pending:
        return Verdict(PENDING)
    return Verdict(UNATTRIBUTED, CLICK_NOT_FOUND)
