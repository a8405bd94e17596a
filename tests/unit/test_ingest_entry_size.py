"""How many clicks an entry holds, read from its msgpack header without decoding it, and
how a read is cut into transactions by that count."""

from __future__ import annotations

import uuid

import pytest

from control.ingest.consumer import Entries, _chunks, _clicks_in
from shared.clicks import BATCH_FIELD, ClickEvent, encode_batch
from shared.ids import uuid7


def _batch(n: int) -> dict[bytes, bytes]:
    link = str(uuid.uuid4())
    events = [ClickEvent(uuid7().hex, 0, link, link, link) for _ in range(n)]
    return {BATCH_FIELD: encode_batch(events)}


@pytest.mark.parametrize("n", [0, 1, 15, 16, 1024, 70_000])
def test_an_entry_counts_the_clicks_it_carries(n: int) -> None:
    assert _clicks_in(_batch(n)) == n


@pytest.mark.parametrize("fields", [None, {}, {BATCH_FIELD: b""}, {BATCH_FIELD: b"\xc1 junk"}])
def test_an_unreadable_entry_counts_as_one(fields: dict[bytes, bytes] | None) -> None:
    assert _clicks_in(fields) == 1


def test_a_read_is_cut_into_chunks_of_at_most_a_batch_of_clicks() -> None:
    read: dict[str, Entries] = {
        "clicks:{0}": [(b"1-0", _batch(3)), (b"2-0", _batch(3))],
        "clicks:{1}": [(b"1-1", _batch(9)), (b"2-1", _batch(1))],
    }

    chunks = list(_chunks(read, 6))

    assert [{s: [e[0] for e in es] for s, es in c.items()} for c in chunks] == [
        {"clicks:{0}": [b"1-0", b"2-0"]},
        {"clicks:{1}": [b"1-1"]},  # bigger than a batch on its own: alone
        {"clicks:{1}": [b"2-1"]},
    ]
