"""The link record the relay projects into Redis and the edge reads on every redirect.

`array_like` keeps it compact and fast to decode. Fields are only ever appended, with
defaults, so an edge and a relay of different versions can read each other's records.
"""

from __future__ import annotations

import msgspec


class LinkRecord(msgspec.Struct, array_like=True, frozen=True):
    link_id: str
    workspace_id: str
    domain_id: str
    version: int
    destination: str
    status: int = 302


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(LinkRecord)


def encode_link(record: LinkRecord) -> bytes:
    return _encoder.encode(record)


def decode_link(data: bytes) -> LinkRecord:
    return _decoder.decode(data)
