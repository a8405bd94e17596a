"""Time-ordered identifiers (shared/ids.py)."""

from __future__ import annotations

import time
import uuid

from shared.ids import uuid7, uuid7_ms


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _next_millisecond_after(ms: int) -> None:
    # Wait on the condition itself rather than a fixed sleep.
    while _now_ms() <= ms:
        time.sleep(0.001)


def test_an_id_is_a_version_7_uuid() -> None:
    # Given many freshly minted ids / When their version is read / Then every one is 7
    assert {uuid7().version for _ in range(1000)} == {7}


def test_an_id_has_the_rfc_variant() -> None:
    # Given many freshly minted ids / When their variant is read / Then every one is RFC 9562's
    assert {uuid7().variant for _ in range(1000)} == {uuid.RFC_4122}


def test_an_id_carries_the_time_it_was_minted() -> None:
    # Given the clock read just before and just after minting
    before = _now_ms()
    value = uuid7()
    after = _now_ms()

    # When its time is read back / Then it falls between the two readings
    assert before <= uuid7_ms(value) <= after


def test_the_time_is_read_from_the_first_48_bits() -> None:
    # Given a known UUIDv7 / When its time is read / Then it is the leading 48 bits
    assert uuid7_ms(uuid.UUID("01a22d73-c1fb-7785-8c51-9003949d59b6")) == 0x01A22D73C1FB


def test_ids_minted_in_later_milliseconds_sort_after_earlier_ones() -> None:
    # Given ids minted one per millisecond
    minted = []
    for _ in range(5):
        minted.append(uuid7())
        _next_millisecond_after(uuid7_ms(minted[-1]))

    # When sorted as UUIDs and as their text
    # Then both orders are the minting order (so they index well in a B-tree)
    assert sorted(minted) == minted
    assert sorted(str(v) for v in minted) == [str(v) for v in minted]


def test_ten_thousand_ids_are_all_distinct() -> None:
    # Given 10,000 ids minted as fast as possible (many share a millisecond)
    ids = [uuid7() for _ in range(10_000)]

    # When compared / Then none repeats: the random bits separate ids of one millisecond
    assert len(set(ids)) == len(ids)
