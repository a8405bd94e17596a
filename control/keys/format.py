"""API key format: `ric_` + 32 random base62 characters + a 6-character CRC32 checksum.

The fixed prefix and checksum let secret scanners (GitHub, gitleaks) recognise a leaked key
without a database look-up, and let us reject typos before touching the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib

PREFIX = "ric_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 32
_CHECK_LEN = 6


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def generate() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LEN))
    return PREFIX + body + _checksum(body)


def well_formed(key: str) -> bool:
    if not key.startswith(PREFIX) or len(key) != len(PREFIX) + _BODY_LEN + _CHECK_LEN:
        return False
    body = key[len(PREFIX) : -_CHECK_LEN]
    if not all(c in _ALPHABET for c in key[len(PREFIX) :]):  # also rules out non-ASCII
        return False
    return hmac.compare_digest(_checksum(body).encode(), key[-_CHECK_LEN:].encode())


def digest(secret_key: str, key: str) -> bytes:
    """What we store: HMAC-SHA256 under the server's secret, so a database leak reveals no key."""
    return hmac.new(secret_key.encode(), key.encode(), hashlib.sha256).digest()


def display_prefix(key: str) -> str:
    return key[: len(PREFIX) + 6]
