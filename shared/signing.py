"""HMAC-SHA256 signatures for webhooks and the Conversion API (seed 002 / 004).

Header `X-Nim-Signature: v1=<hex>` where hex = HMAC-SHA256(secret, "{timestamp}.{raw body}").
During secret rotation several `v1=` values are sent, space-separated.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

SIGNATURE_HEADER = "X-Nim-Signature"
TIMESTAMP_HEADER = "X-Nim-Timestamp"
REASON_HEADER = "X-Nim-Delivery-Reason"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    return " ".join(f"v1={signature(s, timestamp, body)}" for s in secrets)


def verify(header: str, secret: str, timestamp: int, body: bytes) -> bool:
    """True when any `v1=` value in `header` matches; compared in constant time."""
    expected = signature(secret, timestamp, body)
    found = False
    for part in header.split():
        scheme, _, value = part.partition("=")
        # Compare bytes: compare_digest refuses non-ASCII str, and headers are attacker input.
        if scheme == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            found = True
    return found
