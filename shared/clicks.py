"""Click events: captured by the edge, batched into `clicks:{n}` streams, stored by ingest.

One stream entry carries a whole batch (field `b`, a msgpack array of events), which keeps
XADD and XREADGROUP round trips per click tiny. Fields are append-only with defaults.
"""

from __future__ import annotations

import msgspec

BATCH_FIELD = b"b"
# The nim_ct value the edge appends to tracked destinations is this prefix + the click id
# (hex); the Conversion API takes it back as user_data.click_id (seed 004).
CLICK_TOKEN_PREFIX = "nimct_"  # noqa: S105 - a public prefix, not a secret


# gc=False: only strings and numbers inside, so no cycles; the edge buffers thousands and
# the garbage collector need not walk them.
class ClickEvent(msgspec.Struct, array_like=True, frozen=True, gc=False):
    id: str  # UUIDv7 hex, minted by the edge: the idempotency key of the click
    ts_ms: int  # Unix milliseconds at the edge
    link_id: str
    workspace_id: str
    domain_id: str
    touch: str = "link"  # "link" or "qr"
    user_agent: str = ""
    referrer: str = ""
    country: str = ""  # ISO 3166 alpha-2 from a trusted CDN header; "" lets ingest look it up
    # The visitor's address, only so ingest can find the country; never stored.
    ip: str = ""
    variant: int = -1  # index of the A/B variant served; -1 when none
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    tracked: bool = False  # the nim_ct click token (nimct_<id>) was appended


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[ClickEvent])


def encode_batch(events: list[ClickEvent]) -> bytes:
    return _encoder.encode(events)


def decode_batch(data: bytes) -> list[ClickEvent]:
    return _decoder.decode(data)
