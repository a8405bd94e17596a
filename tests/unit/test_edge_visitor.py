"""What the edge itself reads about a visitor (edge/visitor.py): address, platform, country."""

from __future__ import annotations

import pytest

from edge.visitor import Countries, client_ip, header_country, platform

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1"
IPAD = "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1"
ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/124.0.0.0 Mobile Safari/537.36"
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0.0.0 Safari/537.36"


@pytest.mark.parametrize(
    ("agent", "expected"),
    [(IPHONE, "ios"), (IPAD, "ios"), (ANDROID, "android"), (WINDOWS, "desktop"), ("", "desktop")],
)
def test_platform_for_device_routing(agent: str, expected: str) -> None:
    assert platform(agent) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("de", "DE"),
        (" US ", "US"),
        ("XX", ""),
        ("T1", ""),
        ("USA", ""),
        ("", ""),
        (None, ""),
        ("1A", ""),
    ],
)
def test_header_country_takes_only_real_codes(value: str | None, expected: str) -> None:
    assert header_country(value) == expected


def test_country_table_is_loaded_on_first_use_only() -> None:
    countries = Countries()

    assert countries.lookup(None) == ""
    assert countries._db is None  # nothing needed it yet
    assert countries.lookup("8.8.8.8") == "US"
    assert countries.lookup("10.0.0.1") == ""


# --- client_ip() -----------------------------------------------------------------------------


def test_no_trusted_hops_uses_the_socket_peer() -> None:
    # Given no trusted proxy / When a client forges X-Forwarded-For / Then the peer is the client
    assert client_ip("203.0.113.9", "1.2.3.4", 0) == "203.0.113.9"


def test_one_trusted_hop_takes_the_rightmost_entry() -> None:
    # Given one proxy that appends what it saw, after a forged entry
    forwarded = "6.6.6.6, 198.51.100.7"

    # Then the entry the proxy wrote is the client
    assert client_ip("10.0.0.2", forwarded, 1) == "198.51.100.7"


def test_two_trusted_hops_take_the_second_entry_from_the_right() -> None:
    # Given CDN -> load balancer: the CDN wrote the client, the balancer wrote the CDN
    forwarded = "6.6.6.6,198.51.100.7 , 203.0.113.50"

    # Then the second entry from the right is the client
    assert client_ip("10.0.0.2", forwarded, 2) == "198.51.100.7"


def test_a_header_shorter_than_the_hops_falls_back_to_the_peer() -> None:
    assert client_ip("198.51.100.7", "203.0.113.50", 2) == "198.51.100.7"


@pytest.mark.parametrize("forwarded", [None, "", "  "])
def test_an_absent_header_falls_back_to_the_peer(forwarded: str | None) -> None:
    assert client_ip("198.51.100.7", forwarded, 1) == "198.51.100.7"


@pytest.mark.parametrize(
    "forwarded", ["unknown", "1.2.3.4, ", "1.2.3.4,garbage", "1.2.3", "010.0.0.1", "1.2.3.4\x00"]
)
def test_a_malformed_trusted_entry_is_none(forwarded: str) -> None:
    # When the entry our proxy should have written is not an address / Then we admit not knowing
    assert client_ip("10.0.0.2", forwarded, 1) is None


def test_ports_are_stripped_from_ipv4() -> None:
    assert client_ip(None, "198.51.100.7:51234", 1) == "198.51.100.7"


def test_ipv6_entries_are_normalised() -> None:
    assert client_ip(None, "1.1.1.1, 2001:DB8:0:0::1", 1) == "2001:db8::1"


def test_bracketed_ipv6_with_port_is_unwrapped() -> None:
    assert client_ip(None, "[2001:db8::1]:443", 1) == "2001:db8::1"


def test_an_ipv6_peer_is_returned() -> None:
    assert client_ip("2001:db8::7", None, 0) == "2001:db8::7"


def test_an_ipv4_mapped_peer_is_reported_as_ipv4() -> None:
    # Given a dual-stack socket reporting an IPv4 client / Then the plain IPv4 address comes back
    assert client_ip("::ffff:198.51.100.7", None, 0) == "198.51.100.7"


@pytest.mark.parametrize("peer", [None, "", "garbage", "unix:/run/edge.sock"])
def test_a_missing_or_garbage_peer_is_none(peer: str | None) -> None:
    assert client_ip(peer, None, 0) is None
