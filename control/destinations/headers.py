"""Custom request headers of generic HTTP destinations: what may be set, and how."""

from __future__ import annotations

import re

from control.errors import Unprocessable

MAX_NAME = 100
MAX_VALUE = 4096
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
_VALUE = re.compile(r"^[\x20-\x7e]*$")  # visible ASCII and space: no line breaks, no NUL
# Framing and identity are ours to set: a custom header must not change how the request is
# framed or routed, nor pass for our signature.
RESERVED = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "user-agent",
    }
)


def _invalid(field: str, detail: str) -> Unprocessable:
    return Unprocessable("invalid_header", detail, field=field)


def clean(raw: dict[str, str], field: str = "headers") -> dict[str, str]:
    """The headers as stored (names as given, values trimmed); 422 invalid_header."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in raw.items():
        lower = name.lower()
        where = f"{field}.{name[:MAX_NAME]}"
        if not 1 <= len(name) <= MAX_NAME or not _TOKEN.match(name):
            raise _invalid(where, f"{name[:MAX_NAME]!r} is not a header name.")
        if lower in RESERVED or lower.startswith(("x-nim-", "proxy-")):
            raise _invalid(where, f"The {name} header is set by Ricochet and cannot be changed.")
        if lower in seen:
            raise _invalid(where, f"The {name} header is given twice.")
        value = value.strip()
        if len(value) > MAX_VALUE or not _VALUE.match(value):
            raise _invalid(
                where, f"A header value is at most {MAX_VALUE} visible ASCII characters."
            )
        seen.add(lower)
        out[name] = value
    return out
