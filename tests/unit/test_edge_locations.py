"""The edge's kept Locations (edge/behaviour.py) equal the long way, parse-merge-encode."""

from __future__ import annotations

import itertools

import pytest

from edge import behaviour
from shared.records import LinkRecord

CLICK = "0190a0b0c0d07000800000000000abcd"
# Kept Locations are known by link id and version, as in production: one id per record here.
_IDS = itertools.count()


def _record(**fields: object) -> LinkRecord:
    base: dict[str, object] = {
        "link_id": f"lnk-{next(_IDS)}",
        "workspace_id": "ws",
        "domain_id": "dom",
        "version": 1,
        "destination": "https://brand.example/p",
    }
    base.update(fields)
    return LinkRecord(**base)  # type: ignore[arg-type]


CASES = [
    ("https://brand.example/p", {"utm": {"source": "news", "medium": "email"}}),
    ("https://brand.example/p?a=1&b=&a=2#frag", {"utm": {"campaign": "q 2/ü"}}),
    ("https://brand.example/p?utm_source=old", {"utm": {"source": "new"}}),
    ("https://brand.example/p#top", {"track_conversions": True}),
    ("https://brand.example/p?nim_ct=stale&x=1", {"track_conversions": True}),
    ("https://brand.example/p?x=1", {"track_conversions": True, "utm": {"source": "s"}}),
    ("https://b.example/f.pdf?X-Amz-Signature=abc", {"track_conversions": True}),
    ("https://brand.example/CLICKIDPLACEHOLDERQZX", {"track_conversions": True}),
    ("https://brand.example/p", {"forward_query": True, "utm": {"source": "s"}}),
]


@pytest.mark.parametrize(("url", "fields"), CASES)
@pytest.mark.parametrize("forwarded", [[], [("ref", "tw")], [("utm_source", "visitor")]])
def test_a_kept_location_is_exactly_the_long_ways(
    url: str, fields: dict[str, object], forwarded: list[tuple[str, str]]
) -> None:
    # Given a link, and its Location worked out the long way
    record = _record(destination=url, **fields)
    expected = (
        behaviour.rewrite(url, record, forwarded, CLICK)
        if behaviour.needs_rewrite(record, forwarded)
        else (url, False)
    )

    # When the edge answers it twice (the second time from what it kept)
    first = behaviour.finish(url, record, forwarded, CLICK)
    second = behaviour.finish(url, record, forwarded, CLICK)

    # Then both are the long way's answer
    assert first == second == expected


def test_each_click_gets_its_own_id_in_a_kept_location() -> None:
    record = _record(track_conversions=True, utm={"source": "s"})
    one, _ = behaviour.finish(record.destination, record, [], "a" * 32)
    two, _ = behaviour.finish(record.destination, record, [], "b" * 32)
    assert one.endswith("nim_ct=nimct_" + "a" * 32)
    assert two.endswith("nim_ct=nimct_" + "b" * 32)


def test_a_new_version_of_a_link_is_worked_out_afresh() -> None:
    old = _record(version=1, utm={"source": "before"})
    new = _record(link_id=old.link_id, version=2, utm={"source": "after"})
    assert "before" in behaviour.finish(old.destination, old, [], CLICK)[0]
    assert "after" in behaviour.finish(new.destination, new, [], CLICK)[0]
