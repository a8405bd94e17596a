"""The little the edge itself must know about a visitor: address, platform, country.

Everything else (browser, OS, device class, bot, referrer source) is derived by ingest, off
the redirect path. The platform for device routing is a substring test; the country comes
from a trusted CDN header, or — only for links that route by country — from the GeoIP table,
loaded the first time such a link needs it.
"""

from __future__ import annotations

from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Any

from shared import geo

_V4_MAPPED = b"\0" * 10 + b"\xff\xff"
_NOT_COUNTRIES = frozenset({"XX", "T1", "ZZ"})  # CDN codes for unknown / Tor / reserved
_APPLE = ("iPhone", "iPad", "iPod")


def platform(user_agent: str) -> str:
    """ios | android | desktop, for device routing rules."""
    if any(token in user_agent for token in _APPLE):
        return "ios"
    if "Android" in user_agent:
        return "android"
    return "desktop"


def header_country(value: str | None) -> str:
    """A trusted CDN header's country code, upper-case, or "" when it names none."""
    if not value:
        return ""
    code = value.strip().upper()
    if len(code) == 2 and code.isascii() and code.isalpha() and code not in _NOT_COUNTRIES:
        return code
    return ""


class Countries:
    """Country by IP, with the table loaded on first use (it costs ~50 MB)."""

    def __init__(self) -> None:
        self._db: Any = None

    def lookup(self, ip: str | None) -> str:
        if not ip:
            return ""
        if self._db is None:
            self._db = geo.load()
        return geo.country(self._db, ip)


def client_ip(peer: str | None, forwarded_for: str | None, trusted_hops: int) -> str | None:
    """The visitor's address: the socket peer, or with `trusted_hops` proxies in front, the
    X-Forwarded-For entry the outermost trusted proxy wrote (anything left of it is forgeable)."""
    if trusted_hops <= 0 or not forwarded_for or not forwarded_for.strip():
        return clean_ip(peer) if peer else None
    # Bounded rsplit: a long, client-written start of the header costs nothing.
    entries = forwarded_for.rsplit(",", trusted_hops)
    if len(entries) < trusted_hops:
        return clean_ip(peer) if peer else None
    return clean_ip(entries[-trusted_hops])


def clean_ip(text: str) -> str | None:
    # inet_pton is strict (no "1.2.3", no leading zeros) and ~8x faster than ipaddress.
    text = text.strip()
    if text.startswith("["):  # "[v6]" or "[v6]:port"
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # "v4:port"
        text = text.partition(":")[0]
    try:
        return inet_ntop(AF_INET, inet_pton(AF_INET, text))
    except (OSError, ValueError):  # ValueError: an embedded NUL
        pass
    try:
        packed = inet_pton(AF_INET6, text)
    except (OSError, ValueError):
        return None
    if packed[:12] == _V4_MAPPED:  # dual-stack sockets report v4 peers as ::ffff:a.b.c.d
        return inet_ntop(AF_INET, packed[12:])
    return inet_ntop(AF_INET6, packed)
