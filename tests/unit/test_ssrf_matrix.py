"""The SSRF guard's address policy, address by address (no I/O: names are resolved by a
resolver given to the guard). The same matrix is sent through real connections in
tests/integration/test_ssrf.py."""

from __future__ import annotations

import asyncio

import pytest

from control.delivery import guard
from control.settings import ControlSettings

REFUSED = {
    "10/8": "10.0.0.1",
    "10/8 top": "10.255.255.254",
    "172.16/12": "172.16.0.1",
    "172.16/12 top": "172.31.255.254",
    "192.168/16": "192.168.1.1",
    "127/8": "127.0.0.1",
    "127/8 other": "127.45.6.7",
    "::1": "::1",
    "metadata": "169.254.169.254",
    "link-local v4": "169.254.0.1",
    "fd00::/8": "fd00::1",
    "fc00::/7": "fc00::1",
    "fe80::/10": "fe80::1",
    "fe80 with zone": "fe80::1%eth0",
    "site-local fec0::/10": "fec0::1",
    "::ffff:127.0.0.1": "::ffff:127.0.0.1",
    "::ffff:10.0.0.1": "::ffff:10.0.0.1",
    "::ffff:169.254.169.254": "::ffff:169.254.169.254",
    "NAT64 of loopback": "64:ff9b::7f00:1",
    "NAT64 of metadata": "64:ff9b::a9fe:a9fe",
    "6to4 of loopback": "2002:7f00:1::1",
    "6to4 of 10/8": "2002:a00:1::1",
    "IPv4-compatible loopback": "::127.0.0.1",
    "0.0.0.0": "0.0.0.0",
    "0/8": "0.1.2.3",
    "::": "::",
    "100.64/10 CGNAT": "100.64.0.1",
    "100.64/10 top": "100.127.255.254",
    "multicast v4": "224.0.0.1",
    "multicast v4 top": "239.255.255.255",
    "multicast v6": "ff02::1",
    "multicast v6 global scope": "ff0e::1",
    "broadcast": "255.255.255.255",
    "240/4 reserved": "240.0.0.1",
    "198.18/15 benchmarking": "198.18.0.1",
    "TEST-NET-1": "192.0.2.1",
    "documentation v6": "2001:db8::1",
    "Teredo": "2001:0:4136:e378:8000:63bf:3fff:fdd2",
}

ALLOWED = {
    "public v4": "93.184.216.34",
    "public v4 next to 172.16/12": "172.32.0.1",
    "public v4 next to 100.64/10": "100.128.0.1",
    "public v6": "2606:2800:220:1:248:1893:25c8:1946",
    "::ffff: of a public v4": "::ffff:93.184.216.34",
    "NAT64 of a public v4": "64:ff9b::5db8:d822",
    "6to4 of a public v4": "2002:5db8:d822::1",
}


@pytest.mark.parametrize("address", REFUSED.values(), ids=REFUSED.keys())
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert guard._forbidden(address)


@pytest.mark.parametrize("address", ALLOWED.values(), ids=ALLOWED.keys())
def test_public_addresses_are_allowed(address: str) -> None:
    assert not guard._forbidden(address)


def _resolver(table: dict[str, list[str]]) -> guard.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


def test_a_name_resolving_to_loopback_is_refused() -> None:
    # Given a name that resolves to loopback
    resolver = _resolver({"hooks.example.com": ["127.0.0.1"]})

    # When the guard resolves it without allow_private, Then it refuses, naming the address
    with pytest.raises(guard.Refused, match=r"hooks\.example\.com .*127\.0\.0\.1"):
        asyncio.run(guard.resolve("hooks.example.com", 443, False, resolver))


def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    # Given a name with a public and a private address (a connection might pick either)
    resolver = _resolver({"mixed.example.com": ["93.184.216.34", "10.0.0.7"]})

    # When / Then it is refused as a whole
    with pytest.raises(guard.Refused, match=r"10\.0\.0\.7"):
        asyncio.run(guard.resolve("mixed.example.com", 443, False, resolver))


def test_public_addresses_are_returned_in_order_to_connect_to() -> None:
    resolver = _resolver({"ok.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})
    got = asyncio.run(guard.resolve("ok.example.com", 443, False, resolver))
    assert got == ["93.184.216.34", "2606:2800:220:1::1"]


def test_allow_private_lets_private_addresses_through() -> None:
    resolver = _resolver({"localhost": ["127.0.0.1"]})
    assert asyncio.run(guard.resolve("localhost", 443, True, resolver)) == ["127.0.0.1"]


def test_a_name_resolving_to_nothing_is_a_network_error_not_a_refusal() -> None:
    with pytest.raises(OSError, match="no address"):
        asyncio.run(
            guard.resolve("void.example.com", 443, False, _resolver({"void.example.com": []}))
        )


@pytest.mark.parametrize(
    "url",
    ["http://93.184.216.34/hook", "ftp://example.com/x", "file:///etc/passwd", "//example.com/x"],
)
def test_only_https_is_allowed_without_allow_private(url: str) -> None:
    strict = ControlSettings(database_url="postgresql://x/y", redis_url="redis://x", secret_key="k")
    with pytest.raises(guard.Refused, match="scheme"):
        guard.check_url(strict, url)


def test_the_attempt_deadline_covers_connect_and_two_reads() -> None:
    cfg = ControlSettings(
        database_url="postgresql://x/y",
        redis_url="redis://x",
        secret_key="k",
        delivery_connect_timeout_s=3.0,
        delivery_read_timeout_s=10.0,
    )
    assert guard.attempt_deadline_s(cfg) == 23.0


@pytest.mark.parametrize("host", ["localhost", "LocalHost.", "hooks.localhost", "a.b.localhost."])
def test_loopback_names_are_refused_without_asking_dns(host: str) -> None:
    # Given a resolver that would call them public (a hostile or broken DNS)
    resolver = _resolver({host: ["93.184.216.34"]})

    # When / Then they are refused by name (RFC 6761)
    with pytest.raises(guard.Refused, match="loopback name"):
        asyncio.run(guard.resolve(host, 443, False, resolver))
