"""What the edge itself reads about a visitor (edge/visitor.py): address, platform, country."""

from __future__ import annotations

import pytest

from edge.visitor import (
    MAX_FORWARDED,
    Countries,
    TrustedProxies,
    header_country,
    is_https,
    parse_networks,
    platform,
    proxies,
)

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


# --- client address: TrustedProxies -----------------------------------------------------

PROXIES = "10.0.0.0/8, 2001:db8:ffff::/48"


def trusted(cidrs: str = PROXIES) -> TrustedProxies:
    found = proxies(cidrs)
    assert found is not None
    return found


def test_no_trusted_proxies_parse_to_none() -> None:
    # Given an empty list / Then there is nothing to consult per request
    assert proxies("") is None
    assert proxies(" , ") is None


def test_an_untrusted_peer_forging_x_forwarded_for_is_ignored() -> None:
    # Given a client straight on the edge / When it forges X-Forwarded-For / Then it is the peer
    assert trusted().client("203.0.113.9", "1.2.3.4") == "203.0.113.9"


def test_a_trusted_peer_gives_the_rightmost_entry_it_does_not_trust() -> None:
    # Given a proxy in 10/8 that appended what it saw, after a forged entry
    forwarded = "6.6.6.6, 198.51.100.7"

    # Then the entry the proxy wrote is the client
    assert trusted().client("10.0.0.2", forwarded) == "198.51.100.7"


def test_trusted_proxies_in_the_chain_are_skipped() -> None:
    # Given CDN edge 10.9.9.9 -> balancer 10.0.0.2: the CDN wrote the client, the balancer the CDN
    forwarded = "6.6.6.6,198.51.100.7 , 10.9.9.9"

    # Then the first untrusted entry from the right is the client
    assert trusted().client("10.0.0.2", forwarded) == "198.51.100.7"


def test_a_chain_of_only_trusted_proxies_gives_the_furthest_one() -> None:
    assert trusted().client("10.0.0.2", "10.1.1.1, 10.2.2.2") == "10.1.1.1"


def test_only_a_bounded_number_of_entries_is_looked_at() -> None:
    # Given a header of thousands of trusted-looking entries after the client's
    forwarded = "198.51.100.7, " + ", ".join(["10.0.0.9"] * 5000)

    # Then the walk stops at the bound, at a trusted address, never reaching the client's entry
    assert trusted().client("10.0.0.2", forwarded) == "10.0.0.9"
    assert trusted().client("10.0.0.2", "198.51.100.7, " + "10.0.0.9," * 15 + "10.0.0.9") == (
        "10.0.0.9"
    )
    assert trusted().client("10.0.0.2", "198.51.100.7, " + "10.0.0.9," * 14 + "10.0.0.9") == (
        "198.51.100.7"
    )
    assert MAX_FORWARDED == 16


@pytest.mark.parametrize("forwarded", [None, "", "  "])
def test_a_trusted_peer_without_the_header_is_the_client(forwarded: str | None) -> None:
    assert trusted().client("10.0.0.2", forwarded) == "10.0.0.2"


@pytest.mark.parametrize(
    "forwarded", ["unknown", "1.2.3.4, ", "1.2.3.4,garbage", "1.2.3", "010.0.0.1", "1.2.3.4\x00"]
)
def test_a_malformed_entry_written_by_a_trusted_proxy_is_none(forwarded: str) -> None:
    # When the entry our proxy should have written is not an address / Then we admit not knowing
    assert trusted().client("10.0.0.2", forwarded) is None


def test_ports_are_stripped_and_ipv6_is_normalised() -> None:
    assert trusted().client("10.0.0.2", "198.51.100.7:51234") == "198.51.100.7"
    assert trusted().client("10.0.0.2", "1.1.1.1, 2001:DB8:0:0::1") == "2001:db8::1"
    assert trusted().client("10.0.0.2", "[2001:db8::1]:443") == "2001:db8::1"


def test_ipv6_proxies_and_v4_mapped_peers_are_recognised() -> None:
    # Given an IPv6 proxy and a dual-stack socket reporting an IPv4 proxy as ::ffff:a.b.c.d
    assert trusted().client("2001:db8:ffff::5", "198.51.100.7") == "198.51.100.7"
    assert trusted().client("::ffff:10.0.0.2", "198.51.100.7") == "198.51.100.7"
    # And an untrusted one is the client as the server reported it
    assert trusted().client("2001:db8:1::5", "198.51.100.7") == "2001:db8:1::5"


def test_a_garbage_peer_is_never_trusted() -> None:
    assert trusted().trusts("unix:/run/edge.sock") is False
    assert trusted().trusts(None) is False


def test_trust_is_remembered_in_a_bounded_map() -> None:
    proxy_set = TrustedProxies(parse_networks("10.0.0.0/8")[0])
    for n in range(10_000):
        proxy_set.trusts(f"198.51.{n // 256}.{n % 256}")

    assert len(proxy_set._known) <= 4096
    assert proxy_set.trusts("10.0.0.2") is True


@pytest.mark.parametrize(
    ("peer", "proto", "expected"),
    [
        ("10.0.0.2", "https", True),
        ("10.0.0.2", "HTTPS", True),
        ("10.0.0.2", "https, http", True),  # the outermost proxy saw the visitor
        ("10.0.0.2", "http", False),
        ("10.0.0.2", None, False),
        ("203.0.113.9", "https", False),  # a client claiming https for itself
    ],
)
def test_x_forwarded_proto_is_believed_from_trusted_peers_only(
    peer: str, proto: str | None, expected: bool
) -> None:
    assert is_https("http", peer, proto, trusted()) is expected


def test_a_tls_connection_is_https_without_any_proxy() -> None:
    assert is_https("https", "203.0.113.9", None, None) is True
    assert is_https("http", "203.0.113.9", "https", None) is False


def test_cidr_lists_are_validated_with_the_bad_entry_named() -> None:
    # Given a host address with a prefix (a typo for 10.0.0.0/8) and garbage
    _, problems = parse_networks("10.0.0.1/8, nonsense, 2001:db8::/32")

    # Then both are named, the good entry is not
    assert len(problems) == 2
    assert all(p.startswith("RICOCHET_TRUSTED_PROXIES: ") for p in problems)
    assert "10.0.0.1/8" in problems[0]
    assert "nonsense" in problems[1]
