"""Conversion API request verification: timestamps and signatures, no I/O."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from control.conversions import verify
from control.errors import ApiError
from shared import signing

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "data" / "signing-vectors.json").read_text(encoding="utf-8")
)["vectors"]
NOW = 1_767_225_600


def _code(call: Any) -> str:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.code


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["signature_header"][:12])
def test_every_published_vector_verifies(vector: dict[str, Any]) -> None:
    # Given a published vector (one secret, or several during a rotation)
    secrets = vector.get("secrets") or [vector["secret"]]

    # Then its header verifies with each of its secrets, alone or together
    for secret in secrets:
        verify.signature(
            vector["signature_header"], [secret], vector["timestamp"], vector["body"].encode()
        )
    verify.signature(
        vector["signature_header"], secrets, vector["timestamp"], vector["body"].encode()
    )


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["signature_header"][:12])
def test_a_vector_fails_with_another_secret_time_or_body(vector: dict[str, Any]) -> None:
    secrets = vector.get("secrets") or [vector["secret"]]
    header, ts, body = vector["signature_header"], vector["timestamp"], vector["body"].encode()

    assert _code(lambda: verify.signature(header, ["cvsec_other"], ts, body)) == (
        "invalid_signature"
    )
    assert _code(lambda: verify.signature(header, secrets, ts + 1, body)) == "invalid_signature"
    assert _code(lambda: verify.signature(header, secrets, ts, body + b" ")) == (
        "invalid_signature"
    )


def test_any_of_several_sent_values_may_match() -> None:
    body = b'{"event_name":"lead"}'
    good = signing.signature("cvsec_new", NOW, body)

    verify.signature(f"v1={'0' * 64} v1={good}", ["cvsec_new"], NOW, body)


@pytest.mark.parametrize("header", ["", "   ", "v0=abc", "sha256=abc", "v1=", "v1=zz ünï"])
def test_malformed_signature_headers_are_refused(header: str) -> None:
    code = _code(lambda: verify.signature(header, ["cvsec_x"], NOW, b"{}"))

    assert code in ("invalid_signature", "missing_signature")


def test_no_secret_means_nothing_verifies() -> None:
    header = signing.signature_header(["cvsec_x"], NOW, b"{}")

    assert _code(lambda: verify.signature(header, [], NOW, b"{}")) == "invalid_signature"


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_a_timestamp_within_the_tolerance_passes(offset: int) -> None:
    assert verify.timestamp(str(NOW + offset), NOW, 300) == NOW + offset


@pytest.mark.parametrize("offset", [-301, 301, -(10**6)])
def test_a_timestamp_outside_the_tolerance_is_stale(offset: int) -> None:
    assert _code(lambda: verify.timestamp(str(NOW + offset), NOW, 300)) == "stale_timestamp"


@pytest.mark.parametrize("raw", ["", "abc", "1.5", "-5", "1e9", "١٧٦٧٢٢٥٦٠٠", "9" * 40])
def test_a_timestamp_that_is_not_unix_seconds_is_invalid(raw: str) -> None:
    assert _code(lambda: verify.timestamp(raw, NOW, 300)) == "invalid_timestamp"


def test_a_missing_timestamp_is_named() -> None:
    with pytest.raises(ApiError) as caught:
        verify.timestamp(None, NOW, 300)

    assert caught.value.code == "missing_signature"
    assert caught.value.extra["header"] == signing.TIMESTAMP_HEADER
