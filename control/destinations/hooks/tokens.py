"""Installation token format: `rit_` + 32 random base62 characters + a CRC32 checksum.

Built like API keys (control/keys/format.py) with a prefix of its own, so secret scanners
and people can tell the two apart, and a typo is refused before any database look-up.
"""

from __future__ import annotations

import secrets
import zlib

PREFIX = "rit_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 32
_CHECK_LEN = 6
# What a token may do: manage its installation's REST hooks and read sample events.
READ, WRITE = "hooks:read", "hooks:write"
SCOPES = (READ, WRITE)


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode())
    out = []
    for _ in range(_CHECK_LEN):
        value, rem = divmod(value, 62)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def generate() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LEN))
    return PREFIX + body + _checksum(body)


def well_formed(token: str) -> bool:
    if not token.startswith(PREFIX) or len(token) != len(PREFIX) + _BODY_LEN + _CHECK_LEN:
        return False
    rest = token[len(PREFIX) :]
    if not all(c in _ALPHABET for c in rest):
        return False
    return secrets.compare_digest(_checksum(rest[:_BODY_LEN]), rest[_BODY_LEN:])


def display_prefix(token: str) -> str:
    return token[: len(PREFIX) + 6]
