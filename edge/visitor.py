"""The little the edge itself must know about a visitor: address, platform, country.

The address is the socket peer or, when that peer is a trusted proxy
(RICOCHET_TRUSTED_PROXIES, by CIDR), the one the proxies forwarded. Everything else (browser,
OS, device class, bot, referrer source) is derived by ingest, off the redirect path. The
platform for device routing is a substring test; the country comes from a trusted CDN header,
or — only for links that route by country — from the GeoIP table, loaded the first time such
a link needs it.
"""

from __future__ import annotations

import functools
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
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


MAX_FORWARDED = 16  # X-Forwarded-For entries looked at, right to left: bounded work
_KNOWN_PEERS = 4096  # addresses whose trust is remembered; cleared when full


def parse_networks(text: str) -> tuple[list[IPv4Network | IPv6Network], list[str]]:
    """The comma-separated CIDR list of RICOCHET_TRUSTED_PROXIES, and what is wrong with it."""
    networks: list[IPv4Network | IPv6Network] = []
    problems: list[str] = []
    for part in text.split(","):
        if part := part.strip():
            try:
                networks.append(ip_network(part))  # strict: "10.0.0.1/8" is a typo, not a net
            except ValueError as exc:
                problems.append(f"RICOCHET_TRUSTED_PROXIES: {exc}")
    return networks, problems


class TrustedProxies:
    """The reverse proxies in front of the edge, by CIDR: only what they forward is believed.

    The client is the socket peer unless the peer is a trusted proxy; then X-Forwarded-For is
    walked from the right (each entry was appended by the proxy to its right), trusted proxies
    skipped, and the first other address is the client. An entry that is not an address makes
    the client unknown (None): the proxy that wrote it cannot be second-guessed.
    """

    def __init__(self, networks: list[IPv4Network | IPv6Network]) -> None:
        self._v4 = [n for n in networks if n.version == 4]
        self._v6 = [n for n in networks if n.version == 6]
        self._known: dict[str, bool] = {}

    def trusts(self, address: str | None) -> bool:
        if not address:
            return False
        known = self._known.get(address)
        if known is None:
            known = self._inside(address)
            if len(self._known) >= _KNOWN_PEERS:
                self._known.clear()
            self._known[address] = known
        return known

    def _inside(self, address: str) -> bool:
        ip = clean_ip(address)
        if ip is None:
            return False
        parsed = ip_address(ip)
        return any(parsed in net for net in (self._v4 if parsed.version == 4 else self._v6))

    def client(self, peer: str | None, forwarded_for: str | None) -> str | None:
        if not self.trusts(peer):
            return peer  # as the server reports it, like the edge without trusted proxies
        if not forwarded_for or not forwarded_for.strip():
            return clean_ip(peer) if peer else None
        # Bounded rsplit: a long, client-written start of the header costs nothing.
        entries = forwarded_for.rsplit(",", MAX_FORWARDED)
        if len(entries) > MAX_FORWARDED:
            entries = entries[1:]  # the unexamined rest
        address = None
        for entry in reversed(entries):
            address = clean_ip(entry)
            if address is None or not self.trusts(address):
                return address
        return address  # all trusted within the bound: the furthest proxy seen

    def https(self, peer: str | None, forwarded_proto: str | None) -> bool:
        """X-Forwarded-Proto from a trusted peer; the first value is the outermost proxy's."""
        if not forwarded_proto or not self.trusts(peer):
            return False
        return forwarded_proto.partition(",")[0].strip().lower() == "https"


@functools.cache
def proxies(cidrs: str) -> TrustedProxies | None:
    """The proxies of a (validated) RICOCHET_TRUSTED_PROXIES value, parsed once per process."""
    networks, problems = parse_networks(cidrs)
    if problems:
        raise ValueError("; ".join(problems))
    return TrustedProxies(networks) if networks else None


def is_https(
    scheme: str, peer: str | None, forwarded_proto: str | None, trusted: TrustedProxies | None
) -> bool:
    """Did the visitor use https (decides `Secure` on the cookies the edge sets)?"""
    return scheme == "https" or (trusted is not None and trusted.https(peer, forwarded_proto))


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
