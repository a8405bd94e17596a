"""Redis key names (shared/keys.py) and host-name normalisation (shared/hosts.py)."""

from __future__ import annotations

import pytest

from shared.hosts import normalise_host
from shared.keys import click_stream, click_streams, link_key

# -- key names -----------------------------------------------------------------------------


def test_a_link_key_is_l_colon_domain_slash_slug() -> None:
    # Given a normalised domain and slug / When the projection key is built / Then it is exact
    assert link_key("go.brand.com", "launch-q2") == "l:go.brand.com/launch-q2"


def test_a_click_stream_name_carries_its_shard_as_a_literal_hash_tag() -> None:
    # Given shard 3 / When the stream is named / Then the braces are literal (a cluster hash tag)
    assert click_stream(3) == "clicks:{3}"


def test_click_streams_name_every_shard_from_zero() -> None:
    # Given three shards / When all streams are named / Then they are shards 0, 1 and 2
    assert click_streams(3) == ["clicks:{0}", "clicks:{1}", "clicks:{2}"]


# -- host names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("go.brand.com", "go.brand.com"),
        ("Go.Brand.COM", "go.brand.com"),
        ("Go.Brand.COM:443", "go.brand.com"),
        ("go.brand.com:8400", "go.brand.com"),
        ("go.brand.com.", "go.brand.com"),
        ("go.brand.com.:8400", "go.brand.com"),
        ("  go.brand.com  ", "go.brand.com"),
        ("127.0.0.1:8400", "127.0.0.1"),
    ],
)
def test_a_host_is_lower_cased_without_port_or_trailing_dot(raw: str, expected: str) -> None:
    # Given a Host header as a client may send it / When normalised / Then it is the key form
    assert normalise_host(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[::1]:8400", "[::1]"),
        ("[::1]", "[::1]"),
        ("[2001:DB8::1]:443", "[2001:db8::1]"),
    ],
)
def test_an_ipv6_literal_keeps_its_brackets_and_loses_its_port(raw: str, expected: str) -> None:
    # Given an IPv6 literal Host header / When normalised / Then only the port goes
    assert normalise_host(raw) == expected
