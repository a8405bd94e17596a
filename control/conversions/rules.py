"""The checks on an outcome that need no database, and its fingerprint. Pure functions."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
from dataclasses import dataclass

import msgspec

from control import text
from control.conversions import errors, token
from control.conversions.schemas import ConversionEvent

NEGATIVE = frozenset({"refund", "cancellation", "reversal"})
POSITIVE = frozenset({"lead", "sale"})
MAX_VALUE = decimal.Decimal(10) ** 15
MAX_PLACES = 6
MIN_EVENT_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Outcome:
    """A request's outcome, checked and normalised."""

    event_name: str
    event_id: str
    event_time: dt.datetime
    click: token.ClickToken | None
    external_id: str | None
    value: decimal.Decimal | None
    currency: str | None
    order_id: str | None
    related_order_id: str | None
    related_event_id: str | None
    fingerprint: bytes

    @property
    def negative(self) -> bool:
        return self.event_name in NEGATIVE


def _identifier(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    if text.has_hidden(value) or value != value.strip() or not value.isprintable():
        raise errors.invalid(
            "invalid_identifier",
            f"{field} must not have control or invisible characters, or spaces at its ends.",
            field,
        )
    return value


def _event_time(raw: int | dt.datetime | None, now: dt.datetime, skew: dt.timedelta) -> dt.datetime:
    field = "event_time"
    if raw is None:
        return now
    try:
        when = dt.datetime.fromtimestamp(raw, dt.UTC) if isinstance(raw, int) else raw
    except (OverflowError, OSError, ValueError):
        raise errors.invalid("invalid_event_time", "event_time is out of range.", field) from None
    when = when.astimezone(dt.UTC)
    if when > now + skew:
        raise errors.invalid("invalid_event_time", "event_time is in the future.", field)
    if when < MIN_EVENT_TIME:
        raise errors.invalid("invalid_event_time", "event_time is before 2000.", field)
    return when


def _value(raw: decimal.Decimal | None) -> decimal.Decimal | None:
    field = "custom_data.value"
    if raw is None:
        return None
    if not raw.is_finite() or raw < 0 or raw >= MAX_VALUE:
        raise errors.invalid("invalid_value", "value is a number from 0 to less than 10^15.", field)
    exponent = raw.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PLACES:
        raise errors.invalid(
            "invalid_value", f"value has at most {MAX_PLACES} decimal places.", field
        )
    return raw


def fingerprint(event: ConversionEvent, event_time: int | None) -> bytes:
    """The outcome as sent, in a canonical form: a repeat of an event_id must match it.
    Equal numbers, times and currency codes written differently still match."""
    data = event.custom_data
    canonical = [
        event.event_name,
        event.event_id,
        event_time,
        event.user_data.click_id,
        event.user_data.external_id,
        None if data.value is None else str(data.value.normalize()),
        None if data.currency is None else data.currency.upper(),
        data.order_id,
        data.related_order_id,
        data.related_event_id,
    ]
    return hashlib.sha256(msgspec.json.encode(canonical)).digest()


def check(event: ConversionEvent, now: dt.datetime, skew: dt.timedelta) -> Outcome:
    """The outcome, or the first problem with it (422)."""
    data, user = event.custom_data, event.user_data
    when = _event_time(event.event_time, now, skew)
    click = None
    if user.click_id is not None:
        click = token.parse(user.click_id)
        if click is None or click.clicked_at > now + skew:
            raise errors.invalid_click_id()
    if event.event_name in POSITIVE:
        if user.click_id is None and user.external_id is None:
            raise errors.user_data_required()
        for field, related in (
            ("related_order_id", data.related_order_id),
            ("related_event_id", data.related_event_id),
        ):
            if related is not None:
                raise errors.related_not_allowed(event.event_name, f"custom_data.{field}")
    elif data.related_order_id is None and data.related_event_id is None:
        raise errors.related_required(event.event_name)
    value = _value(data.value)
    if value is not None and data.currency is None and event.event_name in POSITIVE:
        raise errors.invalid(
            "currency_required", "Send custom_data.currency with a value.", "custom_data.currency"
        )
    given_time = None
    if event.event_time is not None:
        given_time = int(when.timestamp() * 1000)
    return Outcome(
        event_name=event.event_name,
        event_id=_identifier(event.event_id, "event_id") or "",
        event_time=when,
        click=click,
        external_id=_identifier(user.external_id, "user_data.external_id"),
        value=value,
        currency=None if data.currency is None else data.currency.upper(),
        order_id=_identifier(data.order_id, "custom_data.order_id"),
        related_order_id=_identifier(data.related_order_id, "custom_data.related_order_id"),
        related_event_id=_identifier(data.related_event_id, "custom_data.related_event_id"),
        fingerprint=fingerprint(event, given_time),
    )
