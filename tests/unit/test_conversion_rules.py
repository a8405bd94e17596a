"""The checks on a Conversion API body that need no database, and the click token."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import msgspec
import pytest

from control.clicks.enrich import row as click_row
from control.conversions import attribution, rules, token
from control.conversions.schemas import ConversionEvent
from control.errors import ApiError
from shared.clicks import ClickEvent

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
SKEW = dt.timedelta(seconds=300)


def _click_hex(at: dt.datetime) -> str:
    ms = int(at.timestamp() * 1000)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | 12345).hex


def _event(**body: Any) -> ConversionEvent:
    return msgspec.convert(
        {"event_name": "lead", "event_id": "e-1", "user_data": {"external_id": "c"}, **body},
        ConversionEvent,
    )


def _code(body: dict[str, Any]) -> tuple[str, str | None]:
    with pytest.raises(ApiError) as caught:
        rules.check(_event(**body), NOW, SKEW)
    return caught.value.code, caught.value.extra.get("field")


# -- the click token -----------------------------------------------------------------------------


def test_a_token_gives_the_click_id_and_the_time_ingest_stores() -> None:
    # Given a click id minted at a known millisecond, and the row ingest makes of it
    at = dt.datetime(2026, 5, 20, 8, 30, 15, 123000, tzinfo=dt.UTC)
    hex_id = _click_hex(at)
    stored = click_row(
        ClickEvent(
            id=hex_id,
            ts_ms=0,
            link_id=str(uuid.uuid4()),
            workspace_id=str(uuid.uuid4()),
            domain_id=str(uuid.uuid4()),
        ),
        _NoVisitors(),
    )

    # When its token is parsed
    parsed = token.parse("nimct_" + hex_id)

    # Then it names the same (clicked_at, id) as the stored row: one partition, one key
    assert parsed is not None
    assert parsed.click_id == uuid.UUID(hex=hex_id)
    assert parsed.clicked_at == stored["clicked_at"] == at
    assert token.format_token(parsed.click_id) == "nimct_" + hex_id


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nimct_",
        "nimct_xyz",
        "nimct_3f08ac673a624c9993996e8f2880976a",  # version 4, not 7
        "nimct_" + "0" * 32,
        "NIMCT_" + _click_hex(NOW),
        _click_hex(NOW),
        "nimct_" + _click_hex(NOW) + "0",
    ],
)
def test_anything_else_is_not_a_token(text: str) -> None:
    assert token.parse(text) is None


def test_upper_case_hex_is_the_same_token() -> None:
    hex_id = _click_hex(NOW)

    assert token.parse("nimct_" + hex_id.upper()) == token.parse("nimct_" + hex_id)


class _NoVisitors:
    """Stands in for the user-agent and GeoIP tables, which this test does not need."""

    def agent(self, user_agent: str) -> Any:
        return type("Agent", (), {"device": "", "browser": "", "os": "", "bot": False})()

    def referrer(self, referrer: str) -> tuple[str, str]:
        return "", ""

    def country(self, header: str | None, ip: str | None) -> str:
        return ""


# -- the body ------------------------------------------------------------------------------------


def test_a_lead_with_a_token_is_checked_and_normalised() -> None:
    hex_id = _click_hex(NOW - dt.timedelta(days=1))

    outcome = rules.check(
        _event(
            user_data={"click_id": "nimct_" + hex_id},
            event_time="2026-06-01T13:00:00+02:00",
            custom_data={"value": "12.50", "currency": "eur"},
        ),
        NOW,
        SKEW,
    )

    assert outcome.click is not None
    assert outcome.click.click_id.hex == hex_id
    assert outcome.event_time == dt.datetime(2026, 6, 1, 11, 0, tzinfo=dt.UTC)
    assert outcome.value == decimal.Decimal("12.50")
    assert outcome.currency == "EUR"
    assert not outcome.negative


def test_event_time_defaults_to_now_and_takes_unix_seconds() -> None:
    assert rules.check(_event(), NOW, SKEW).event_time == NOW
    stamp = int(NOW.timestamp()) - 60
    assert rules.check(_event(event_time=stamp), NOW, SKEW).event_time == NOW - dt.timedelta(
        minutes=1
    )


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"user_data": {}}, "user_data_required", "user_data"),
        ({"user_data": {"click_id": "nimct_nope"}}, "invalid_click_id", "user_data.click_id"),
        (
            {"user_data": {"click_id": "nimct_" + _click_hex(NOW + dt.timedelta(hours=1))}},
            "invalid_click_id",
            "user_data.click_id",
        ),
        ({"event_time": int(NOW.timestamp()) + 3600}, "invalid_event_time", "event_time"),
        ({"event_time": 10**14}, "invalid_event_time", "event_time"),
        ({"event_time": 0}, "invalid_event_time", "event_time"),
        ({"custom_data": {"value": -1, "currency": "EUR"}}, "invalid_value", "custom_data.value"),
        (
            {"custom_data": {"value": "NaN", "currency": "EUR"}},
            "invalid_value",
            "custom_data.value",
        ),
        ({"custom_data": {"value": 1e15, "currency": "EUR"}}, "invalid_value", "custom_data.value"),
        (
            {"custom_data": {"value": "0.0000001", "currency": "EUR"}},
            "invalid_value",
            "custom_data.value",
        ),
        ({"custom_data": {"value": 5}}, "currency_required", "custom_data.currency"),
        (
            {"custom_data": {"related_order_id": "o"}},
            "related_not_allowed",
            "custom_data.related_order_id",
        ),
        ({"event_id": " padded "}, "invalid_identifier", "event_id"),
        ({"event_id": "tab\there"}, "invalid_identifier", "event_id"),
        ({"event_id": "zero\u200bwidth"}, "invalid_identifier", "event_id"),
    ],
)
def test_bad_bodies_are_refused_naming_the_field(
    body: dict[str, Any], code: str, field: str
) -> None:
    assert _code(body) == (code, field)


@pytest.mark.parametrize("name", ["refund", "cancellation", "reversal"])
def test_a_negative_must_name_its_sale(name: str) -> None:
    assert _code({"event_name": name})[0] == "related_sale_required"
    outcome = rules.check(
        _event(event_name=name, custom_data={"related_event_id": "s-1"}), NOW, SKEW
    )
    assert outcome.negative


def test_the_fingerprint_ignores_how_equal_things_are_written() -> None:
    def fp(**custom: Any) -> bytes:
        return rules.check(
            _event(event_time=int(NOW.timestamp()), custom_data=custom), NOW, SKEW
        ).fingerprint

    same = fp(value=129, currency="eur")
    assert fp(value="129.00", currency="EUR") == same
    assert fp(value=129.0, currency="Eur") == same
    assert fp(value=130, currency="EUR") != same
    assert fp(value=129, currency="USD") != same
    assert (
        rules.check(_event(), NOW, SKEW).fingerprint
        != rules.check(_event(event_id="e-2"), NOW, SKEW).fingerprint
    )


def test_an_absent_event_time_and_a_given_one_are_different_outcomes() -> None:
    # "now" differs on every retry: an absent time must not make a retry a conflict
    absent = rules.check(_event(), NOW, SKEW).fingerprint
    later = rules.check(_event(), NOW + dt.timedelta(seconds=5), SKEW).fingerprint

    assert absent == later
    assert rules.check(_event(event_time=int(NOW.timestamp())), NOW, SKEW).fingerprint != absent


# -- the window -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after_click", "inside"),
    [
        (dt.timedelta(0), True),
        (dt.timedelta(days=30), True),
        (dt.timedelta(days=30, seconds=1), False),
        (-SKEW, True),
        (-SKEW - dt.timedelta(seconds=1), False),
    ],
)
def test_the_window_is_30_days_after_the_click(after_click: dt.timedelta, inside: bool) -> None:
    assert attribution.in_window(NOW, NOW + after_click, SKEW) is inside


def test_a_missing_click_is_waited_for_until_the_pending_time_has_passed_since_it() -> None:
    wait = dt.timedelta(hours=24)

    assert attribution.without_click(NOW, NOW + wait - dt.timedelta(seconds=1), wait) == (
        attribution.Verdict("pending")
    )
    assert attribution.without_click(NOW, NOW + wait, wait) == attribution.Verdict(
        "unattributed", "click_not_found"
    )
