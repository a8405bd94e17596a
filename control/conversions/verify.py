"""Checks on a Conversion API request's signature headers, before its body is looked at.

`X-Nim-Timestamp: <unix seconds>` must be within the tolerance of our clock (either way:
a replayed request is refused once it is stale), and `X-Nim-Signature: v1=<hex>` must be
HMAC-SHA256(secret, "{timestamp}.{raw body}") for one of the workspace's accepted secrets,
compared in constant time (shared/signing.py). Several `v1=` values may be sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from control.conversions import errors
from shared import signing

MAX_TIMESTAMP_DIGITS = 12


def timestamp(raw: str | None, now_s: float, tolerance_s: int) -> int:
    """The header's timestamp, or the problem that refuses it."""
    if raw is None:
        raise errors.missing_header(signing.TIMESTAMP_HEADER)
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > MAX_TIMESTAMP_DIGITS:
        raise errors.invalid_timestamp()
    value = int(text)
    if abs(now_s - value) > tolerance_s:
        raise errors.stale_timestamp(tolerance_s)
    return value


def signature(header: str | None, secrets: Sequence[str], ts: int, body: bytes) -> None:
    """Pass when any accepted secret produced any `v1=` value of the header."""
    if header is None or not header.strip():
        raise errors.missing_header(signing.SIGNATURE_HEADER)
    matched = False
    for secret in secrets:  # every secret is tried, so timing says nothing about which
        matched |= signing.verify(header, secret, ts, body)
    if not matched:
        raise errors.invalid_signature()
