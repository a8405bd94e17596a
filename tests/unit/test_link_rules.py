"""What a destination and a slug may be (control/links/rules.py)."""

from __future__ import annotations

import pytest

from control.errors import ApiError
from control.links.rules import (
    GENERATED_ALPHABET,
    GENERATED_LENGTH,
    MAX_DESTINATION,
    RESERVED,
    generate_slug,
    normalise_destination,
    normalise_slug,
)


def refused_destination(raw: str) -> ApiError:
    with pytest.raises(ApiError) as excinfo:
        normalise_destination(raw)
    return excinfo.value


def refused_slug(raw: str) -> ApiError:
    with pytest.raises(ApiError) as excinfo:
        normalise_slug(raw)
    return excinfo.value


# -- destinations: what is accepted and how it is normalised -------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("brand.com/launch", "https://brand.com/launch"),
        ("brand.com", "https://brand.com"),
        ("brand.com?utm_source=x", "https://brand.com?utm_source=x"),
        ("//brand.com/launch", "https://brand.com/launch"),
    ],
)
def test_a_destination_without_a_scheme_gets_https(raw: str, expected: str) -> None:
    # Given a destination typed without a scheme / When normalised / Then https:// is added
    assert normalise_destination(raw) == expected


def test_an_http_destination_keeps_its_scheme() -> None:
    # Given an explicit http:// destination / When normalised / Then it is not upgraded
    assert normalise_destination("http://brand.com/a") == "http://brand.com/a"


def test_scheme_and_host_are_lower_cased_but_the_path_keeps_its_case() -> None:
    # Given a destination in mixed case
    # When normalised
    result = normalise_destination("HTTPS://Brand.COM/Launch/Q2?Utm=Mail#Top")

    # Then only scheme and host change: paths and queries are case-sensitive
    assert result == "https://brand.com/Launch/Q2?Utm=Mail#Top"


def test_surrounding_white_space_is_trimmed() -> None:
    # Given a destination pasted with white space around it
    # When normalised / Then the white space is gone
    assert normalise_destination("  https://brand.com/x \n") == "https://brand.com/x"


def test_a_trailing_dot_on_the_host_is_dropped() -> None:
    # Given a fully-qualified host name / When normalised / Then the root dot is removed
    assert normalise_destination("https://brand.com./x") == "https://brand.com/x"


def test_an_international_host_becomes_punycode() -> None:
    # Given an IDN host / When normalised / Then the host is its ASCII (punycode) form
    assert normalise_destination("https://bücher.example/") == "https://xn--bcher-kva.example/"


def test_an_upper_case_international_host_becomes_lower_case_punycode() -> None:
    # Given an IDN host in capitals / When normalised / Then it is the same punycode host
    assert normalise_destination("https://BÜCHER.example") == "https://xn--bcher-kva.example"


def test_non_ascii_path_query_and_fragment_are_percent_encoded() -> None:
    # Given a destination with UTF-8 text after the host
    # When normalised
    result = normalise_destination("https://brand.com/café?q=crème#ünï")

    # Then it can travel in a Location header as is
    assert result == "https://brand.com/caf%C3%A9?q=cr%C3%A8me#%C3%BCn%C3%AF"


def test_existing_percent_escapes_are_kept_as_they_are() -> None:
    # Given a destination that is already escaped / When normalised / Then it is not re-escaped
    assert normalise_destination("https://brand.com/a%20b?q=%C3%A9") == (
        "https://brand.com/a%20b?q=%C3%A9"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("brand.com:8080/launch", "https://brand.com:8080/launch"),
        ("localhost:8080", "https://localhost:8080"),
        ("brand.com:8443?x=1", "https://brand.com:8443?x=1"),
    ],
)
def test_host_and_port_without_a_scheme_is_not_mistaken_for_a_scheme(
    raw: str, expected: str
) -> None:
    # Given host:port typed without a scheme / When normalised / Then it is an https URL
    assert normalise_destination(raw) == expected


def test_an_explicit_port_is_kept() -> None:
    # Given a destination with a port / When normalised / Then the port stays
    assert normalise_destination("https://Brand.com:8443/x") == "https://brand.com:8443/x"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://[2001:db8::1]:8443/x", "https://[2001:db8::1]:8443/x"),
        ("[::1]:8080/x", "https://[::1]:8080/x"),
    ],
)
def test_an_ipv6_literal_host_keeps_its_brackets(raw: str, expected: str) -> None:
    # Given an IPv6 literal destination / When normalised / Then it is still a valid URL
    assert normalise_destination(raw) == expected


def test_an_ipv4_host_is_accepted() -> None:
    # Given an IPv4 destination / When normalised / Then it is kept
    assert normalise_destination("http://192.0.2.10/x") == "http://192.0.2.10/x"


def test_a_destination_of_exactly_the_maximum_length_is_accepted() -> None:
    # Given a destination of exactly MAX_DESTINATION characters
    raw = "https://brand.com/" + "a" * (MAX_DESTINATION - len("https://brand.com/"))

    # When normalised / Then it is accepted unchanged
    assert normalise_destination(raw) == raw


# -- destinations: what is refused ---------------------------------------------------------


def test_a_refused_destination_is_a_422_invalid_destination_on_the_destination_field() -> None:
    # Given a destination that is refused
    # When normalised
    error = refused_destination("javascript:alert(1)")

    # Then the error is the stable, documented one
    assert error.code == "invalid_destination"
    assert error.status == 422
    assert error.extra == {"field": "destination"}


@pytest.mark.parametrize(
    "raw",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "  javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "ftp://files.brand.com/x",
        "file:///etc/passwd",
        "mailto:hello@brand.com",
    ],
)
def test_schemes_other_than_http_and_https_are_refused(raw: str) -> None:
    # Given a destination with a dangerous or non-web scheme / When normalised / Then refused
    assert refused_destination(raw).code == "invalid_destination"


@pytest.mark.parametrize(
    "raw",
    [
        "https://brand.com/a\r\nSet-Cookie: x=1",
        "https://brand.com/a\nb",
        "https://brand.com/a\tb",
        "java\tscript:alert(1)",
        "https://brand.com/a\x00b",
        "https://brand.com/a\x1bb",
        "https://brand.com/a\x7fb",
    ],
)
def test_control_characters_inside_a_destination_are_refused(raw: str) -> None:
    # Given CR, LF, tab or another control character inside the destination
    # When normalised / Then it is refused (no header injection, no scheme smuggling)
    assert refused_destination(raw).code == "invalid_destination"


@pytest.mark.parametrize(
    "raw",
    ["https://brand.com/a b", "https://bra nd.com/", "https://brand.com/?q=a b", "a\u00a0b.com"],
)
def test_white_space_inside_a_destination_is_refused(raw: str) -> None:
    # Given white space inside the destination / When normalised / Then it is refused
    assert refused_destination(raw).code == "invalid_destination"


@pytest.mark.parametrize("raw", ["", "   ", "\n"])
def test_an_empty_destination_is_refused(raw: str) -> None:
    # Given nothing (or only white space) / When normalised / Then it is refused
    assert refused_destination(raw).code == "invalid_destination"


@pytest.mark.parametrize("raw", ["https://", "https:///path", "http:brand.com", "https://:8080/"])
def test_a_destination_without_a_host_is_refused(raw: str) -> None:
    # Given a URL with no host / When normalised / Then it is refused
    assert refused_destination(raw).code == "invalid_destination"


@pytest.mark.parametrize(
    "raw",
    [
        "https://user:pw@brand.com/",
        "https://user@brand.com/",
        "https://bank.com@evil.example/",
        "https://:@brand.com/",
        "bank.com@evil.example",
    ],
)
def test_a_destination_with_credentials_is_refused(raw: str) -> None:
    # Given a URL carrying user info (a classic phishing disguise)
    # When normalised / Then it is refused
    assert refused_destination(raw).code == "invalid_destination"


@pytest.mark.parametrize(
    "raw",
    ["https://brand.com:99999/", "https://brand.com:abc/", "https://brand.com:+80/"],
)
def test_a_destination_with_a_bad_port_is_refused(raw: str) -> None:
    # Given a port that is out of range or not a number / When normalised / Then it is refused
    assert refused_destination(raw).code == "invalid_destination"


@pytest.mark.parametrize(
    "raw",
    [
        "https://-brand.com/",
        "https://brand..com/",
        "https://bra%6Ed.com/",
        "https://" + "a" * 64 + ".com/",
        "https://[not-an-ip]/",
    ],
)
def test_a_destination_with_an_invalid_host_is_refused(raw: str) -> None:
    # Given a host name that cannot exist / When normalised / Then it is refused
    assert refused_destination(raw).code == "invalid_destination"


def test_a_destination_one_character_over_the_maximum_is_refused() -> None:
    # Given a destination of MAX_DESTINATION + 1 characters
    raw = "https://brand.com/" + "a" * (MAX_DESTINATION + 1 - len("https://brand.com/"))

    # When normalised / Then it is refused
    assert refused_destination(raw).code == "invalid_destination"


def test_the_length_limit_applies_after_percent_encoding() -> None:
    # Given a destination short as typed but longer than the limit once encoded
    raw = "https://brand.com/" + "é" * 1000
    assert len(raw) < MAX_DESTINATION

    # When normalised / Then it is refused: the stored, redirected form is what counts
    assert refused_destination(raw).code == "invalid_destination"


# -- slugs ---------------------------------------------------------------------------------


def test_a_slug_is_lower_cased() -> None:
    # Given a slug typed with capitals / When normalised / Then it is stored lower-case
    assert normalise_slug("Launch-Q2") == "launch-q2"


def test_a_slug_is_trimmed() -> None:
    # Given a slug with white space around it / When normalised / Then it is trimmed
    assert normalise_slug("  spring_sale \n") == "spring_sale"


@pytest.mark.parametrize("raw", ["a", "7", "launch-q2", "spring_sale", "a-b_c-9", "a" * 64])
def test_slugs_of_letters_digits_hyphens_and_underscores_are_accepted(raw: str) -> None:
    # Given a well-formed slug / When normalised / Then it is accepted as is
    assert normalise_slug(raw) == raw


def test_a_refused_slug_is_a_422_invalid_slug_on_the_slug_field() -> None:
    # Given a slug that breaks the rules
    # When normalised
    error = refused_slug("not ok")

    # Then the error is the stable, documented one
    assert error.code == "invalid_slug"
    assert error.status == 422
    assert error.extra == {"field": "slug"}


@pytest.mark.parametrize("raw", ["-launch", "launch-", "_launch", "launch_", "-", "a--"])
def test_a_slug_must_start_and_end_with_a_letter_or_digit(raw: str) -> None:
    # Given a slug with a leading or trailing '-' or '_' / When normalised / Then refused
    assert refused_slug(raw).code == "invalid_slug"


def test_a_slug_longer_than_64_characters_is_refused() -> None:
    # Given a 65-character slug / When normalised / Then it is refused
    assert refused_slug("a" * 65).code == "invalid_slug"


@pytest.mark.parametrize("raw", ["", "   "])
def test_an_empty_slug_is_refused(raw: str) -> None:
    # Given nothing / When normalised / Then it is refused
    assert refused_slug(raw).code == "invalid_slug"


@pytest.mark.parametrize(
    "raw", ["launch q2", "launch.q2", "launch/q2", "launch?q", "café", "a+b", "%41", "a#b"]
)
def test_a_slug_with_other_characters_is_refused(raw: str) -> None:
    # Given a slug with a character outside a-z, 0-9, '-' and '_' / When normalised / Then refused
    assert refused_slug(raw).code == "invalid_slug"


@pytest.mark.parametrize("raw", sorted(RESERVED))
def test_reserved_words_are_refused_as_slug_reserved(raw: str) -> None:
    # Given a word the edge or the product needs / When used as a slug
    error = refused_slug(raw)

    # Then it is refused with its own code, on the slug field
    assert error.code == "slug_reserved"
    assert error.status == 422
    assert error.extra == {"field": "slug"}


@pytest.mark.parametrize("raw", ["API", "Admin", " login "])
def test_reserved_words_are_refused_whatever_their_case(raw: str) -> None:
    # Given a reserved word in capitals or with white space / When normalised / Then refused
    assert refused_slug(raw).code == "slug_reserved"


def test_a_word_that_only_contains_a_reserved_word_is_accepted() -> None:
    # Given a slug that merely starts with a reserved word / When normalised / Then accepted
    assert normalise_slug("api-docs") == "api-docs"


# -- generated slugs -----------------------------------------------------------------------


def test_a_generated_slug_has_the_default_length() -> None:
    # Given no length / When a slug is generated / Then it has GENERATED_LENGTH characters
    assert len(generate_slug()) == GENERATED_LENGTH


def test_a_generated_slug_has_the_requested_length() -> None:
    # Given a requested length / When a slug is generated / Then it has that many characters
    assert len(generate_slug(12)) == 12


def test_generated_slugs_use_only_the_generated_alphabet() -> None:
    # Given many generated slugs
    used = set("".join(generate_slug() for _ in range(500)))

    # When their characters are collected / Then all come from the alphabet
    assert used <= set(GENERATED_ALPHABET)


@pytest.mark.parametrize("look_alike", ["0", "o", "1", "l", "i"])
def test_generated_slugs_avoid_look_alike_characters(look_alike: str) -> None:
    # Given a character easily misread on a poster
    # When the alphabet is checked / Then it is not there
    assert look_alike not in GENERATED_ALPHABET


def test_generated_slugs_are_valid_unreserved_slugs() -> None:
    # Given many generated slugs
    slugs = [generate_slug() for _ in range(500)]

    # When each is normalised as if a user had typed it / Then it comes back unchanged
    assert [normalise_slug(s) for s in slugs] == slugs


def test_generated_slugs_differ_from_one_call_to_the_next() -> None:
    # Given a handful of generated slugs (31^7 possibilities each)
    slugs = {generate_slug() for _ in range(50)}

    # When compared / Then they are not all the same value
    assert len(slugs) > 1


@pytest.mark.parametrize("destination", ["https://brand.com:0/", "https://[v1.x]/"])
def test_port_zero_and_ipvfuture_hosts_are_refused(destination: str) -> None:
    with pytest.raises(ApiError) as excinfo:
        normalise_destination(destination)
    assert excinfo.value.code == "invalid_destination"


def test_a_slug_that_only_lower_cases_to_ascii_is_refused() -> None:
    # U+212A KELVIN SIGN lower-cases to "k": "\u212aey" must not become the slug "key".
    with pytest.raises(ApiError) as excinfo:
        normalise_slug("\u212aey")
    assert excinfo.value.code == "invalid_slug"
