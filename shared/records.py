"""The link record the relay projects into Redis and the edge reads on every redirect.

`array_like` keeps it compact and fast to decode. Fields are only ever appended, with
defaults, so an edge and a relay of different versions can read each other's records.
"""

from __future__ import annotations

import msgspec


# gc=False: its containers hold only strings and numbers, so it can never be part of a
# cycle, and an edge caching 100,000 of them must not have every full collection walk them.
class LinkRecord(msgspec.Struct, array_like=True, frozen=True, gc=False):
    link_id: str
    workspace_id: str
    domain_id: str
    version: int
    destination: str
    status: int = 302
    expires_at_ms: int = 0  # 0: never expires
    expired_url: str = ""  # where expired visitors go; "" answers 410
    password_hash: str = ""  # argon2id PHC string; "" means no password
    taken_down: bool = False
    # The rarely-set collections below are None rather than empty: an edge caches 100,000
    # records per worker, and four empty containers each would cost it ~25 MB.
    utm: dict[str, str] | None = None  # utm_source etc., merged into the destination's query
    forward_query: bool = False  # pass the visitor's query string on to the destination
    track_conversions: bool = False  # append the nim_ct click token where safe
    countries: dict[str, str] | None = None  # ISO 3166 alpha-2 (upper case) -> destination
    devices: dict[str, str] | None = None  # ios | android | desktop -> destination
    variants: list[tuple[str, int]] | None = None  # (destination, weight) for A/B splits


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(LinkRecord)


def encode_link(record: LinkRecord) -> bytes:
    return _encoder.encode(record)


def decode_link(data: bytes) -> LinkRecord:
    return _decoder.decode(data)
