"""The `nim_ct` click token: `nimct_` + the click's UUIDv7 in hex (edge/behaviour.py).

The token carries the click's time (the UUIDv7's first 48 bits, Unix milliseconds), which
is also the click's `clicked_at` and so its partition of `clicks` (control/clicks/enrich.py):
the window can be checked, and the click found, without scanning anything.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import NamedTuple

from control.clicks.repository import ts

PREFIX = "nimct_"
_HEX_V7 = re.compile(r"[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}")


class ClickToken(NamedTuple):
    click_id: uuid.UUID
    clicked_at: dt.datetime


def parse(text: str) -> ClickToken | None:
    """The click a token names, or None when it is not a token the edge could have made."""
    if not text.startswith(PREFIX):
        return None
    hex_id = text[len(PREFIX) :].lower()
    if not _HEX_V7.fullmatch(hex_id):
        return None
    # Exactly as ingest derives clicked_at, so (clicked_at, id) meets the stored row.
    return ClickToken(uuid.UUID(hex=hex_id), ts(int(hex_id[:12], 16)))


def format_token(click_id: uuid.UUID) -> str:
    return PREFIX + click_id.hex
