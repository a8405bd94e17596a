"""Wire codecs of the link record (shared/records.py) and click batches (shared/clicks.py)."""

from __future__ import annotations

import msgspec
import pytest

from shared.clicks import ClickEvent, decode_batch, encode_batch
from shared.records import LinkRecord, decode_link, encode_link

RECORD = LinkRecord(
    link_id="lnk_1",
    workspace_id="ws_1",
    domain_id="dom_1",
    version=3,
    destination="https://brand.com/launch",
    status=301,
)
CLICK = ClickEvent(
    id="0190a0b1c2d37e4f8a9b0c1d2e3f4a5b",
    ts_ms=1767225600123,
    link_id="lnk_1",
    workspace_id="ws_1",
    domain_id="dom_1",
    touch="qr",
    user_agent="Mozilla/5.0",
    referrer="https://news.example/",
    country="DE",
)


# -- link records --------------------------------------------------------------------------


def test_a_link_record_survives_a_round_trip() -> None:
    # Given a record / When encoded and decoded / Then it is the same record
    assert decode_link(encode_link(RECORD)) == RECORD


def test_a_link_record_is_a_positional_array_in_declared_order() -> None:
    # Given a record / When encoded / Then it is a msgpack array of its fields, in order
    # (the order is the contract between edge and relay versions)
    assert msgspec.msgpack.decode(encode_link(RECORD)) == [
        "lnk_1",
        "ws_1",
        "dom_1",
        3,
        "https://brand.com/launch",
        301,
        0,  # expires_at_ms
        "",  # expired_url
        "",  # password_hash
        False,  # taken_down
        None,  # utm
        False,  # forward_query
        False,  # track_conversions
        None,  # countries
        None,  # devices
        None,  # variants
    ]


def test_a_record_from_an_older_writer_gets_the_default_status() -> None:
    # Given a record written before `status` existed
    older = msgspec.msgpack.encode(["lnk_1", "ws_1", "dom_1", 3, "https://brand.com/launch"])

    # When an up-to-date reader decodes it
    record = decode_link(older)

    # Then the appended field takes its default
    assert record == LinkRecord("lnk_1", "ws_1", "dom_1", 3, "https://brand.com/launch", 302)


def test_a_record_from_a_newer_writer_is_read_by_an_older_reader() -> None:
    # Given a record with one more (appended) field than this reader knows
    known = msgspec.msgpack.decode(encode_link(RECORD))
    newer = msgspec.msgpack.encode([*known, "a-future-field"])

    # When decoded / Then the known fields are read and the extra one is ignored
    assert decode_link(newer) == RECORD


def test_a_record_missing_a_required_field_is_refused() -> None:
    # Given a record too short to carry a destination
    truncated = msgspec.msgpack.encode(["lnk_1", "ws_1", "dom_1", 3])

    # When decoded / Then it is a validation error, never a half-filled record
    with pytest.raises(msgspec.ValidationError):
        decode_link(truncated)


def test_bytes_that_are_not_msgpack_are_refused_as_a_link_record() -> None:
    # Given bytes that are not msgpack (0xc1 is never used) / When decoded / Then refused
    with pytest.raises(msgspec.DecodeError):
        decode_link(b"\xc1")


# -- click batches -------------------------------------------------------------------------


def test_a_click_batch_survives_a_round_trip() -> None:
    # Given a batch of clicks, one with defaults only
    plain = ClickEvent("0190a0b1c2d37e4f8a9b0c1d2e3f4a5c", 1767225600200, "lnk_2", "ws_1", "d")
    batch = [CLICK, plain]

    # When encoded and decoded / Then it is the same batch, in order
    assert decode_batch(encode_batch(batch)) == batch


def test_an_empty_batch_survives_a_round_trip() -> None:
    # Given no clicks / When encoded and decoded / Then it is still an empty list
    assert decode_batch(encode_batch([])) == []


def test_a_click_from_an_older_writer_gets_defaults_for_later_fields() -> None:
    # Given a batch written with only the five original fields
    older = msgspec.msgpack.encode(
        [["0190a0b1c2d37e4f8a9b0c1d2e3f4a5b", 1767225600123, "lnk_1", "ws_1", "dom_1"]]
    )

    # When decoded
    [click] = decode_batch(older)

    # Then the appended fields take their defaults
    assert click == ClickEvent(
        id="0190a0b1c2d37e4f8a9b0c1d2e3f4a5b",
        ts_ms=1767225600123,
        link_id="lnk_1",
        workspace_id="ws_1",
        domain_id="dom_1",
        touch="link",
        user_agent="",
        referrer="",
        country="",
    )


def test_a_click_from_a_newer_writer_is_read_by_an_older_reader() -> None:
    # Given a click with one appended field this reader does not know
    fields = list(msgspec.msgpack.decode(encode_batch([CLICK]))[0])
    newer = msgspec.msgpack.encode([[*fields, "a-future-field"]])

    # When decoded / Then the known fields are read and the extra one is ignored
    assert decode_batch(newer) == [CLICK]


def test_bytes_that_are_not_msgpack_are_refused_as_a_batch() -> None:
    # Given garbage / When decoded / Then it is a decode error
    with pytest.raises(msgspec.DecodeError):
        decode_batch(b"\xc1\xc1\xc1")


def test_truncated_msgpack_is_refused_as_a_batch() -> None:
    # Given a batch cut short in transit / When decoded / Then it is a decode error
    with pytest.raises(msgspec.DecodeError):
        decode_batch(encode_batch([CLICK])[:-3])


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "x"},
        [{"id": "x"}],
        [["0190", "not-a-timestamp", "lnk_1", "ws_1", "dom_1"]],
        [["0190", 1767225600123, "lnk_1"]],
        ["just a string"],
    ],
    ids=["map-not-list", "map-events", "wrong-type", "too-few-fields", "not-an-event"],
)
def test_msgpack_of_the_wrong_shape_is_refused_as_a_batch(payload: object) -> None:
    # Given valid msgpack that is not a batch of click events
    data = msgspec.msgpack.encode(payload)

    # When decoded / Then it is a validation error
    with pytest.raises(msgspec.ValidationError):
        decode_batch(data)


def test_a_torn_last_spool_frame_is_ignored_and_whole_frames_are_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edge.spool import Spool, read_frames

    # Given two whole frames and a third cut short by a crash mid-write
    spool = Spool(tmp_path, "w")
    spool.append(b"first")
    spool.append(b"second")
    spool.close()
    with spool.path.open("ab") as f:
        f.write(b"\x00\x00\x00\x09par")

    # When read / Then the whole frames come back, the torn one does not
    assert read_frames(spool.path) == [b"first", b"second"]
