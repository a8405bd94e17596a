"""Destination filters and redaction: pure functions over an envelope."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from control.destinations import filters, paths
from control.destinations.schemas import Filters
from control.errors import Unprocessable

LINK = "0190a000-0000-7000-8000-0000000000aa"
DOMAIN = "0190a000-0000-7000-8000-0000000000bb"


def click(**data: Any) -> dict[str, Any]:
    base = {
        "link_id": LINK,
        "domain_id": DOMAIN,
        "touch_type": "link",
        "country": "US",
        "utm_campaign": "spring-launch",
    }
    return {"id": "evt_1", "type": "link.clicked", "data": {**base, **data}}


def clean(**raw: Any) -> dict[str, Any]:
    return filters.clean(msgspec.convert(raw, Filters))


def test_no_filters_let_everything_through() -> None:
    assert filters.matches({}, click())
    assert filters.matches({}, {"type": "link.created", "data": {}})


@pytest.mark.parametrize(
    ("raw", "passes"),
    [
        ({"touch_types": ["qr"]}, False),
        ({"touch_types": ["link", "qr"]}, True),
        ({"domain_ids": [DOMAIN.upper()]}, True),  # ids are compared in canonical form
        ({"domain_ids": ["0190a000-0000-7000-8000-000000000000"]}, False),
        ({"link_ids": [LINK]}, True),
        (
            {"conditions": [{"field": "data.utm_campaign", "op": "eq", "value": "spring-launch"}]},
            True,
        ),
        (
            {"conditions": [{"field": "data.utm_campaign", "op": "eq", "value": "Spring-Launch"}]},
            False,
        ),
        ({"conditions": [{"field": "data.utm_campaign", "op": "prefix", "value": "spring"}]}, True),
        ({"conditions": [{"field": "data.utm_campaign", "op": "suffix", "value": "launch"}]}, True),
        ({"conditions": [{"field": "data.utm_campaign", "op": "contains", "value": "g-l"}]}, True),
        ({"conditions": [{"field": "data.country", "op": "in", "value": ["DE", "US"]}]}, True),
        ({"conditions": [{"field": "data.country", "op": "not_in", "value": ["DE", "US"]}]}, False),
        ({"conditions": [{"field": "data.country", "op": "ne", "value": "US"}]}, False),
        ({"conditions": [{"field": "data.utm_source", "op": "exists"}]}, False),
        ({"conditions": [{"field": "data.utm_source", "op": "not_exists"}]}, True),
        # A missing field satisfies only the negative ops.
        ({"conditions": [{"field": "data.utm_source", "op": "ne", "value": "x"}]}, True),
        ({"conditions": [{"field": "data.utm_source", "op": "eq", "value": "x"}]}, False),
    ],
)
def test_each_filter(raw: dict[str, Any], passes: bool) -> None:
    assert filters.matches(clean(**raw), click()) is passes


def test_all_filters_must_hold() -> None:
    wanted = clean(
        touch_types=["link"],
        conditions=[
            {"field": "data.country", "op": "eq", "value": "US"},
            {"field": "data.utm_campaign", "op": "eq", "value": "autumn"},
        ],
    )
    assert not filters.matches(wanted, click())
    assert filters.matches(wanted, click(utm_campaign="autumn"))


def test_numbers_compare_as_numbers_and_booleans_are_not_numbers() -> None:
    over_100 = clean(conditions=[{"field": "data.value", "op": "gt", "value": 100}])
    assert filters.matches(over_100, click(value=129.5))
    assert not filters.matches(over_100, click(value=99))
    assert not filters.matches(over_100, click(value="129"))  # a string is not a number
    is_one = clean(conditions=[{"field": "data.n", "op": "eq", "value": 1}])
    assert filters.matches(is_one, click(n=1.0))
    assert not filters.matches(is_one, click(n=True))


def test_tags_filter_needs_one_of_the_links_tags() -> None:
    wanted = clean(tags=["demo", "vip"])
    assert filters.needs_tags(wanted)
    assert filters.matches(wanted, click(), {"vip", "q2"})
    assert not filters.matches(wanted, click(), {"q2"})
    assert not filters.matches(wanted, click(), None)


def test_lifecycle_events_do_not_pass_a_touch_type_filter() -> None:
    created = {"type": "link.created", "data": {"link_id": LINK}}
    assert not filters.matches(clean(touch_types=["link"]), created)
    assert filters.matches(clean(link_ids=[LINK]), created)


def test_a_conversion_is_about_the_link_it_was_attributed_to() -> None:
    conversion = {"type": "conversion.recorded", "data": {"attribution": {"link_id": LINK}}}
    assert str(filters.link_id(conversion)) == LINK
    assert filters.matches(clean(link_ids=[LINK]), conversion)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"touch_types": ["email"]}, "filters.touch_types"),
        ({"domain_ids": ["not-an-id"]}, "filters.domain_ids[0]"),
        (
            {"conditions": [{"field": "data.a b", "op": "eq", "value": 1}]},
            "filters.conditions[0].field",
        ),
        (
            {"conditions": [{"field": "data.x", "op": "like", "value": 1}]},
            "filters.conditions[0].op",
        ),
        (
            {"conditions": [{"field": "data.x", "op": "in", "value": "US"}]},
            "filters.conditions[0].value",
        ),
        (
            {"conditions": [{"field": "data.x", "op": "gt", "value": "9"}]},
            "filters.conditions[0].value",
        ),
        (
            {"conditions": [{"field": "data.x", "op": "exists", "value": 1}]},
            "filters.conditions[0].value",
        ),
        (
            {"conditions": [{"field": "data.x", "op": "eq", "value": {"a": 1}}]},
            "filters.conditions[0].value",
        ),
    ],
)
def test_invalid_filters_name_their_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        clean(**raw)
    assert caught.value.code == "invalid_filter"
    assert caught.value.extra["field"] == field


def test_redaction_removes_fields_without_touching_the_original() -> None:
    envelope = click(referrer_host="mail.example")
    redacted = paths.without(envelope, ["data.country", "data.referrer_host", "data.no.such"])
    assert "country" not in redacted["data"]
    assert "referrer_host" not in redacted["data"]
    assert redacted["data"]["utm_campaign"] == "spring-launch"
    assert envelope["data"]["country"] == "US"  # the stored event is not changed
    assert paths.without(envelope, ["id"])["type"] == "link.clicked"


@pytest.mark.parametrize("bad", ["", "data..x", "data.x[0]", "data.*", "a.b.c.d.e.f.g.h.i"])
def test_field_paths_are_plain_dotted_names(bad: str) -> None:
    assert paths.problem(bad) is not None
    assert paths.problem("data.utm_campaign") is None
