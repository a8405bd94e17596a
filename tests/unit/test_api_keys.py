"""API key format (control/keys/format.py) and scopes (control/keys/scopes.py)."""

from __future__ import annotations

import pytest

from control.keys import format as keyformat
from control.keys.scopes import ALL_SCOPES, RESOURCES, grants, unknown

# A fixed well-formed key: pins the published format (prefix, base62 body, CRC32 checksum)
# that secret scanners are told to look for.
KNOWN_KEY = "ric_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL"
KEY_LENGTH = 4 + 32 + 6
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PEPPER = "pepper-for-unit-tests"


def _other_char(c: str) -> str:
    return "a" if c != "a" else "b"


# -- format --------------------------------------------------------------------------------


def test_a_generated_key_is_well_formed() -> None:
    # Given a freshly generated key / When checked / Then it is well formed
    assert keyformat.well_formed(keyformat.generate())


def test_a_generated_key_starts_with_the_ric_prefix() -> None:
    # Given a freshly generated key / When read / Then scanners can spot it by its prefix
    assert keyformat.generate().startswith("ric_")


def test_a_generated_key_has_the_fixed_length() -> None:
    # Given a freshly generated key / When measured / Then it is prefix + 32 + 6 characters
    assert len(keyformat.generate()) == KEY_LENGTH


def test_a_generated_key_uses_base62_after_its_prefix() -> None:
    # Given a freshly generated key / When its characters are checked / Then all are base62
    assert set(keyformat.generate()[4:]) <= set(BASE62)


def test_generated_keys_are_all_different() -> None:
    # Given many generated keys / When compared / Then none repeats
    keys = [keyformat.generate() for _ in range(200)]
    assert len(set(keys)) == len(keys)


def test_the_published_example_key_is_well_formed() -> None:
    # Given a key built to the published format by hand / When checked / Then it is accepted
    assert keyformat.well_formed(KNOWN_KEY)


@pytest.mark.parametrize("position", range(4, KEY_LENGTH))
def test_changing_any_one_character_breaks_the_checksum(position: int) -> None:
    # Given a well-formed key with one character changed (a typo) in body or checksum
    typo = KNOWN_KEY[:position] + _other_char(KNOWN_KEY[position]) + KNOWN_KEY[position + 1 :]

    # When checked / Then it is rejected before any database look-up
    assert not keyformat.well_formed(typo)


def test_swapping_two_neighbouring_characters_breaks_the_checksum() -> None:
    # Given a well-formed key with two body characters transposed
    typo = KNOWN_KEY[:4] + KNOWN_KEY[5] + KNOWN_KEY[4] + KNOWN_KEY[6:]

    # When checked / Then it is rejected
    assert not keyformat.well_formed(typo)


@pytest.mark.parametrize(
    "key",
    [
        "rik_" + KNOWN_KEY[4:],
        "RIC_" + KNOWN_KEY[4:],
        "sk_" + KNOWN_KEY[4:],
        KNOWN_KEY[4:],
    ],
)
def test_a_key_with_the_wrong_prefix_is_rejected(key: str) -> None:
    # Given a key whose body and checksum are right but whose prefix is not
    # When checked / Then it is rejected
    assert not keyformat.well_formed(key)


@pytest.mark.parametrize("key", [KNOWN_KEY[:-1], KNOWN_KEY + "a", "ric_", ""])
def test_a_key_of_the_wrong_length_is_rejected(key: str) -> None:
    # Given a key that is too short or too long / When checked / Then it is rejected
    assert not keyformat.well_formed(key)


def test_a_key_with_a_character_outside_base62_is_rejected() -> None:
    # Given a key of the right length with a '-' in its body
    key = KNOWN_KEY[:10] + "-" + KNOWN_KEY[11:]

    # When checked / Then it is rejected
    assert not keyformat.well_formed(key)


def test_the_digest_is_deterministic_for_one_pepper() -> None:
    # Given the same key and pepper twice / When digested / Then the stored value is the same
    assert keyformat.digest(PEPPER, KNOWN_KEY) == keyformat.digest(PEPPER, KNOWN_KEY)


def test_the_digest_is_the_pinned_hmac_sha256() -> None:
    # Given the known key and pepper
    # When digested
    digest = keyformat.digest(PEPPER, KNOWN_KEY)

    # Then it is the pinned value: a change here would invalidate every stored key
    assert digest.hex() == "06324b867a872aff730a9556512ed17cbe2c1cda49981b2aac220efeb8aa6897"


def test_the_digest_differs_between_peppers() -> None:
    # Given one key under two server secrets / When digested / Then the results differ
    assert keyformat.digest(PEPPER, KNOWN_KEY) != keyformat.digest(PEPPER + "2", KNOWN_KEY)


def test_the_digest_differs_between_keys() -> None:
    # Given two keys under one pepper / When digested / Then the results differ
    other = keyformat.generate()
    assert keyformat.digest(PEPPER, KNOWN_KEY) != keyformat.digest(PEPPER, other)


def test_the_digest_does_not_contain_the_key() -> None:
    # Given a digest / When inspected / Then the plaintext key is not in it
    assert KNOWN_KEY.encode() not in keyformat.digest(PEPPER, KNOWN_KEY)


def test_the_display_prefix_is_the_start_of_the_key() -> None:
    # Given a key / When its display prefix is taken / Then it identifies the key's start
    assert keyformat.display_prefix(KNOWN_KEY) == "ric_012345"


def test_the_display_prefix_does_not_reveal_the_key() -> None:
    # Given a freshly generated key
    key = keyformat.generate()

    # When its display prefix is taken
    shown = keyformat.display_prefix(key)

    # Then it is a short prefix that leaves most of the random body hidden
    assert key.startswith(shown)
    assert len(shown) <= len("ric_") + 6
    assert len(key) - len(shown) >= 32


# -- scopes --------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ALL_SCOPES)
def test_a_held_scope_is_granted(scope: str) -> None:
    # Given a key holding a scope / When that scope is wanted / Then it is granted
    assert grants([scope], scope)


@pytest.mark.parametrize("resource", RESOURCES)
def test_write_implies_read_on_the_same_resource(resource: str) -> None:
    # Given a key that may write a resource / When reading it is wanted / Then it is granted
    assert grants([f"{resource}:write"], f"{resource}:read")


@pytest.mark.parametrize("resource", RESOURCES)
def test_read_does_not_imply_write(resource: str) -> None:
    # Given a read-only key / When writing is wanted / Then it is refused
    assert not grants([f"{resource}:read"], f"{resource}:write")


def test_write_on_one_resource_grants_nothing_on_another() -> None:
    # Given a key that may write links
    held = ("links:write",)

    # When another resource is wanted / Then neither reading nor writing it is granted
    assert not grants(held, "domains:read")
    assert not grants(held, "domains:write")


def test_no_scopes_grant_nothing() -> None:
    # Given a key with no scopes / When anything is wanted / Then it is refused
    assert not grants([], "links:read")


def test_known_scopes_are_not_reported_unknown() -> None:
    # Given every scope the product defines / When checked / Then none is unknown
    assert unknown(list(ALL_SCOPES)) == []


def test_unknown_scopes_are_reported_in_order() -> None:
    # Given a mix of known and made-up scopes
    # When checked / Then exactly the made-up ones are returned, in the order given
    assert unknown(["links:read", "links:admin", "Links:read", "billing:read"]) == [
        "links:admin",
        "Links:read",
        "billing:read",
    ]


def test_a_key_with_a_non_ascii_checksum_is_not_well_formed() -> None:
    assert (
        keyformat.well_formed(
            "ric_0123456789ABCDEFGHIJKLMNOPQRSTUV\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
        )
        is False
    )


def test_a_key_with_a_non_ascii_body_is_not_well_formed() -> None:
    assert keyformat.well_formed("ric_\u00e9123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL") is False
