"""A stored outcome as the API answers it and as its `conversion.recorded` event carries
it. Pure functions of the row (and, for events, the link's names)."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from control.conversions import attribution, token
from control.conversions.models import Conversion
from control.conversions.schemas import Attribution, ConversionOut
from control.links.views import short_url
from control.settings import ControlSettings


def _money(value: decimal.Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _stamp(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    text = value.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _click(row: Conversion) -> str | None:
    """The click the outcome is (or waits to be) attributed to."""
    if row.click_id is None or row.attribution == attribution.UNATTRIBUTED:
        return None
    return token.format_token(row.click_id)


def to_out(row: Conversion) -> ConversionOut:
    attributed = row.attribution == attribution.ATTRIBUTED
    sent = row.attributed_via == "click_id" and row.click_id is not None
    return ConversionOut(
        id=str(row.id),
        event_id=row.event_id,
        event_name=row.event_name,  # type: ignore[arg-type]  # checked by the table
        event_time=row.event_time,
        received_at=row.received_at,
        click_id=token.format_token(row.click_id) if sent and row.click_id else None,
        external_id=row.external_id,
        value=_money(row.value),
        currency=row.currency,
        order_id=row.order_id,
        related_order_id=row.related_order_id,
        related_event_id=row.related_event_id,
        related_conversion_id=None if row.related_id is None else str(row.related_id),
        attribution=Attribution(
            status=row.attribution,  # type: ignore[arg-type]  # checked by the table
            reason=row.unattributed_reason,
            via=row.attributed_via,
            link_id=str(row.link_id) if attributed and row.link_id else None,
            variant=row.variant if attributed and row.variant >= 0 else None,
            click_id=_click(row),
            clicked_at=row.clicked_at if _click(row) else None,
        ),
    )


def event_data(
    settings: ControlSettings, row: Conversion, names: dict[Any, tuple[str, str]]
) -> dict[str, Any]:
    """`data` of the conversion.recorded event: the outcome and where it came from. The
    link is named like link.clicked names it (short_code, domain_name, short_url)."""
    out = to_out(row)
    link: dict[str, Any] = dict.fromkeys(("link_id", "short_code", "domain_name", "short_url"))
    if row.link_id is not None and out.attribution.link_id is not None:
        slug, domain = names.get(row.link_id, (None, None))
        link = {
            "link_id": str(row.link_id),
            "short_code": slug,
            "domain_name": domain,
            "short_url": short_url(settings, domain, slug) if slug and domain else None,
        }
    return {
        "conversion_id": out.id,
        "event_name": out.event_name,
        "event_id": out.event_id,
        "event_time": _stamp(out.event_time),
        "received_at": _stamp(out.received_at),
        "click_id": out.attribution.click_id,
        "external_id": out.external_id,
        "value": out.value,
        "currency": out.currency,
        "order_id": out.order_id,
        "related_order_id": out.related_order_id,
        "related_event_id": out.related_event_id,
        "related_conversion_id": out.related_conversion_id,
        "attribution": {
            "status": out.attribution.status,
            "reason": out.attribution.reason,
            "via": out.attribution.via,
            **link,
            "variant": out.attribution.variant,
            "clicked_at": _stamp(out.attribution.clicked_at),
        },
    }
