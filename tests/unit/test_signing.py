"""Webhook / Conversion API signatures against the published test vectors (seed 002 / 004)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.signing import signature, signature_header, verify

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "data" / "signing-vectors.json").read_text(encoding="utf-8")
)["vectors"]
SINGLE = [v for v in VECTORS if "secret" in v]
MULTI = [v for v in VECTORS if "secrets" in v]


def _id(vector: dict[str, Any]) -> str:
    who = vector.get("secret") or "+".join(vector["secrets"])
    return f"{who}@{vector['timestamp']}:{len(vector['body'])}b"


def test_the_vector_file_has_single_and_rotation_vectors() -> None:
    # Given the vectors copied from the shared contract
    # Then both kinds are present, so the parametrised tests below really run
    assert len(SINGLE) >= 4
    assert len(MULTI) >= 1


@pytest.mark.parametrize("vector", SINGLE, ids=_id)
def test_header_for_one_secret_matches_the_vector(vector: dict[str, Any]) -> None:
    # Given a published vector with one secret
    body = vector["body"].encode()

    # When the header is built
    header = signature_header([vector["secret"]], vector["timestamp"], body)

    # Then it is exactly the published header
    assert header == vector["signature_header"]


@pytest.mark.parametrize("vector", MULTI, ids=_id)
def test_header_during_rotation_carries_one_value_per_secret_in_order(
    vector: dict[str, Any],
) -> None:
    # Given a published vector signed with several secrets (rotation)
    body = vector["body"].encode()

    # When the header is built from the list of secrets
    header = signature_header(vector["secrets"], vector["timestamp"], body)

    # Then it is exactly the published, space-separated header
    assert header == vector["signature_header"]


@pytest.mark.parametrize("vector", SINGLE, ids=_id)
def test_verify_accepts_the_published_header(vector: dict[str, Any]) -> None:
    # Given a published header, its secret, timestamp and raw body
    # When / Then the receiver accepts it
    assert verify(
        vector["signature_header"], vector["secret"], vector["timestamp"], vector["body"].encode()
    )


@pytest.mark.parametrize("vector", SINGLE, ids=_id)
def test_verify_rejects_a_tampered_body(vector: dict[str, Any]) -> None:
    # Given the published header but one extra byte in the body
    body = vector["body"].encode() + b" "

    # When / Then the receiver refuses it
    assert not verify(vector["signature_header"], vector["secret"], vector["timestamp"], body)


@pytest.mark.parametrize("vector", SINGLE, ids=_id)
def test_verify_rejects_a_tampered_timestamp(vector: dict[str, Any]) -> None:
    # Given the published header replayed with another timestamp
    timestamp = vector["timestamp"] + 1

    # When / Then the receiver refuses it
    assert not verify(
        vector["signature_header"], vector["secret"], timestamp, vector["body"].encode()
    )


@pytest.mark.parametrize("vector", SINGLE, ids=_id)
def test_verify_rejects_the_wrong_secret(vector: dict[str, Any]) -> None:
    # Given the published header checked with a different secret
    secret = vector["secret"] + "x"

    # When / Then the receiver refuses it
    assert not verify(
        vector["signature_header"], secret, vector["timestamp"], vector["body"].encode()
    )


@pytest.mark.parametrize("vector", MULTI, ids=_id)
def test_verify_accepts_a_rotation_header_with_any_of_its_secrets(vector: dict[str, Any]) -> None:
    # Given a header signed with the old and the new secret
    body = vector["body"].encode()

    # When each receiver checks it with the one secret it knows
    results = [
        verify(vector["signature_header"], s, vector["timestamp"], body) for s in vector["secrets"]
    ]

    # Then every one of them accepts it
    assert results == [True] * len(vector["secrets"])


@pytest.mark.parametrize("vector", MULTI, ids=_id)
def test_verify_rejects_a_rotation_header_with_a_secret_not_in_it(vector: dict[str, Any]) -> None:
    # Given a header signed with the old and the new secret
    # When it is checked with a third secret
    # Then it is refused
    assert not verify(
        vector["signature_header"], "whsec_unrelated", vector["timestamp"], vector["body"].encode()
    )


def test_verify_accepts_when_the_matching_value_is_last_of_several() -> None:
    # Given a header whose first values are stale or foreign and whose last one matches
    body = b'{"id":"evt_03"}'
    good = signature("whsec_current", 1767225600, body)
    header = f"v1={'0' * 64} v1={signature('whsec_other', 1767225600, body)} v1={good}"

    # When / Then the receiver accepts it
    assert verify(header, "whsec_current", 1767225600, body)


def test_verify_ignores_values_of_other_schemes() -> None:
    # Given a header whose only correct value is labelled with an unknown scheme
    body = b"{}"
    header = f"v0={signature('whsec_current', 1767225600, body)}"

    # When / Then it is not accepted: only v1= values count
    assert not verify(header, "whsec_current", 1767225600, body)


def test_verify_rejects_an_empty_header() -> None:
    # Given no signature at all
    # When / Then the receiver refuses the request
    assert not verify("", "whsec_current", 1767225600, b"{}")


def test_a_non_ascii_signature_header_is_rejected_not_raised() -> None:
    # Headers arrive decoded as latin-1: any byte >= 0x80 becomes a non-ASCII character.
    assert verify("v1=\u00e9", "s", 1, b"") is False
