"""Conversion use cases: record an outcome, settle pending attribution, manage the secret.

Recording runs in one transaction: the outcome row and, once its attribution is settled,
its `conversion.recorded` event (transactional outbox; the relay fans it out after commit).
An outcome whose click is not stored yet is kept as `pending` and settled by
`settle_page`, which the control plane runs every RICOCHET_CONVERSION_SETTLE_POLL_S
(control/conversions/tasks.py); its event is written then. Rules: docs/adr/0008.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control import pagination, text
from control.conversions import attribution, errors, repository, rules, secrets, views
from control.conversions.attribution import ATTRIBUTED, PENDING, UNATTRIBUTED
from control.conversions.models import Conversion, ConversionSecret
from control.conversions.schemas import (
    ConversionEvent,
    ConversionOut,
    ConversionPage,
    ListConversions,
    SecretOut,
)
from control.conversions.token import ClickToken
from control.errors import ApiError
from control.events import envelope
from control.events.service import Emitter
from control.settings import ControlSettings

SETTLE_PAGE = 500


def _skew(settings: ControlSettings) -> dt.timedelta:
    return dt.timedelta(seconds=settings.conversion_timestamp_tolerance_s)


# -- recording -----------------------------------------------------------------------------


async def record(
    session: AsyncSession,
    settings: ControlSettings,
    workspace_id: uuid.UUID,
    organization_id: uuid.UUID,
    event: ConversionEvent,
    now: dt.datetime,
) -> tuple[bool, ConversionOut]:
    """(created, the stored outcome). A repeated event_id answers with what was stored
    (created False) if it carries the same outcome, else 409 event_id_conflict."""
    outcome = rules.check(event, now, _skew(settings))
    existing = await repository.by_event_id(session, workspace_id, outcome.event_id)
    if existing is not None:
        return False, _repeat(existing, outcome)
    values: dict[str, Any] = {
        "workspace_id": workspace_id,
        "event_id": outcome.event_id,
        "event_name": outcome.event_name,
        "event_time": outcome.event_time,
        "received_at": now,
        "external_id": outcome.external_id,
        "value": outcome.value,
        "currency": outcome.currency,
        "order_id": outcome.order_id,
        "related_order_id": outcome.related_order_id,
        "related_event_id": outcome.related_event_id,
        "fingerprint": outcome.fingerprint,
    }
    if outcome.negative:
        values.update(await _negative(session, workspace_id, outcome))
    else:
        values.update(await _positive(session, settings, workspace_id, outcome, now))
    if values["attribution"] != PENDING:
        values["attributed_at"] = now
    row = await repository.insert_conversion(session, values)
    if row is None:  # a concurrent request stored this event_id, or a sale this order_id
        existing = await repository.by_event_id(session, workspace_id, outcome.event_id)
        if existing is not None:
            return False, _repeat(existing, outcome)
        raise errors.order_id_taken(outcome.order_id or "")
    if row.attribution != PENDING:
        await announce(session, settings, [row], {workspace_id: organization_id})
    return True, views.to_out(row)


def _repeat(existing: Conversion, outcome: rules.Outcome) -> ConversionOut:
    if existing.fingerprint != outcome.fingerprint:
        raise errors.event_id_conflict()
    return views.to_out(existing)


async def _positive(
    session: AsyncSession,
    settings: ControlSettings,
    workspace_id: uuid.UUID,
    outcome: rules.Outcome,
    now: dt.datetime,
) -> dict[str, Any]:
    """Attribution of a lead or sale: through its token, else through the customer's
    latest earlier outcome that had a click."""
    click, via = outcome.click, "click_id"
    if click is None and outcome.external_id is not None:
        prior = await repository.latest_with_click(
            session,
            workspace_id,
            outcome.external_id,
            outcome.event_time,
            outcome.event_time - attribution.WINDOW,
        )
        if prior is not None and prior.click_id is not None and prior.clicked_at is not None:
            click, via = ClickToken(prior.click_id, prior.clicked_at), "external_id"
    if click is None:
        return {"attribution": UNATTRIBUTED, "unattributed_reason": attribution.NO_CLICK_ID}
    found: dict[str, Any] = {
        "click_id": click.click_id,
        "clicked_at": click.clicked_at,
        "attributed_via": via,
    }
    if not attribution.in_window(click.clicked_at, outcome.event_time, _skew(settings)):
        return found | {
            "attribution": UNATTRIBUTED,
            "unattributed_reason": attribution.OUTSIDE_WINDOW,
        }
    stored = await repository.clicks(session, [(click.clicked_at, click.click_id)])
    return found | _verdict(
        settings, workspace_id, click.clicked_at, stored.get(click.click_id), now
    )


def _verdict(
    settings: ControlSettings,
    workspace_id: uuid.UUID,
    clicked_at: dt.datetime,
    stored: tuple[uuid.UUID, uuid.UUID, int] | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """Attribution columns given the stored click (workspace, link, variant) or None."""
    if stored is not None and stored[0] == workspace_id:
        return {"attribution": ATTRIBUTED, "link_id": stored[1], "variant": stored[2]}
    if stored is not None:  # click ids are unique: it will never be this workspace's
        return {"attribution": UNATTRIBUTED, "unattributed_reason": attribution.CLICK_NOT_FOUND}
    verdict = attribution.without_click(
        clicked_at, now, dt.timedelta(seconds=settings.conversion_pending_s)
    )
    return {"attribution": verdict.status, "unattributed_reason": verdict.reason}


async def _negative(
    session: AsyncSession, workspace_id: uuid.UUID, outcome: rules.Outcome
) -> dict[str, Any]:
    """A refund, cancellation or reversal: checked against its sale, whose attribution it
    shares. The sale stays as it is; this is a row of its own."""
    sale = None
    if outcome.related_order_id is not None:
        sale = await repository.sale_for_update(
            session, workspace_id, order_id=outcome.related_order_id
        )
        if sale is None:
            raise errors.related_sale_not_found("custom_data.related_order_id")
    if outcome.related_event_id is not None:
        by_event = await repository.sale_for_update(
            session, workspace_id, event_id=outcome.related_event_id
        )
        if by_event is None:
            raise errors.related_sale_not_found("custom_data.related_event_id")
        if sale is not None and by_event.id != sale.id:
            raise errors.related_mismatch()
        sale = by_event
    assert sale is not None  # rules.check demands one of the two
    if outcome.currency is not None and outcome.currency != sale.currency:
        raise errors.currency_mismatch(sale.currency or "no currency")
    remaining = (sale.value or decimal.Decimal(0)) - await repository.undone_value(session, sale.id)
    value = outcome.value
    if value is None and sale.value is not None:
        value = remaining  # by default the whole of what is left
    if value is not None and value > remaining:
        raise errors.exceeds_sale_value(format(remaining, "f"), sale.currency)
    return {
        "related_id": sale.id,
        "value": value,
        "currency": sale.currency if value is not None else outcome.currency,
        "click_id": sale.click_id,
        "clicked_at": sale.clicked_at,
        "attributed_via": "sale" if sale.click_id is not None else None,
        "attribution": sale.attribution,
        "unattributed_reason": sale.unattributed_reason,
        "link_id": sale.link_id,
        "variant": sale.variant,
    }


async def announce(
    session: AsyncSession,
    settings: ControlSettings,
    rows: Sequence[Conversion],
    organizations: dict[uuid.UUID, uuid.UUID] | None = None,
) -> None:
    """Write the conversion.recorded events of these settled outcomes (same transaction)."""
    if not rows:
        return
    workspaces = sorted({r.workspace_id for r in rows})
    orgs = organizations or await repository.organizations(session, workspaces)
    names = await repository.link_names(session, {r.link_id for r in rows if r.link_id})
    emitters = {w: Emitter(orgs[w], w) for w in workspaces}
    for row in rows:
        emitters[row.workspace_id].add(
            envelope.CONVERSION_RECORDED, views.event_data(settings, row, names)
        )
    for emitter in emitters.values():
        await emitter.flush(session)


# -- settling pending attribution -------------------------------------------------------------


Key = tuple[dt.datetime, uuid.UUID]


async def settle_page(
    session: AsyncSession,
    settings: ControlSettings,
    now: dt.datetime,
    after: Key | None = None,
    limit: int = SETTLE_PAGE,
) -> tuple[Key | None, int]:
    """Settle what can be among the next `limit` pending outcomes after `after` (by click
    time): attributed once the click is stored, unattributed once it is too late for it to
    come. Negatives follow their sale. Returns (the key to pass next, or None when this
    was the last page; how many were settled)."""
    rows = await repository.pending_for_update(session, limit, after)
    positives = [r for r in rows if r.related_id is None and r.click_id and r.clicked_at]
    stored = await repository.clicks(
        session, [(r.clicked_at, r.click_id) for r in positives if r.clicked_at and r.click_id]
    )
    settled: list[Conversion] = []
    for row in positives:
        assert row.clicked_at is not None
        assert row.click_id is not None
        values = _verdict(settings, row.workspace_id, row.clicked_at, stored.get(row.click_id), now)
        if values["attribution"] == PENDING:
            continue
        done = await repository.settle(session, row.id, values)
        if done is not None:
            settled.append(done)
    negatives = [r for r in rows if r.related_id is not None]
    sales = await repository.attribution_of(
        session, {r.related_id for r in negatives if r.related_id}
    )
    for row in negatives:
        sale = sales.get(row.related_id) if row.related_id else None
        if sale is None or sale.attribution == PENDING:
            continue
        done = await repository.settle(
            session,
            row.id,
            {
                "attribution": sale.attribution,
                "unattributed_reason": sale.unattributed_reason,
                "link_id": sale.link_id,
                "variant": sale.variant,
            },
        )
        if done is not None:
            settled.append(done)
    await announce(session, settings, settled)
    last = rows[-1] if len(rows) == limit else None
    key = (last.clicked_at, last.id) if last is not None and last.clicked_at else None
    return key, len(settled)


# -- reading ---------------------------------------------------------------------------------


def conversion_id(raw: str) -> uuid.UUID:
    return text.parse_id(raw, "conversion")


async def get(session: AsyncSession, workspace_id: uuid.UUID, raw_id: str) -> ConversionOut:
    row = await repository.get(session, workspace_id, conversion_id(raw_id))
    if row is None:
        raise ApiError.not_found("conversion")
    return views.to_out(row)


async def page(
    session: AsyncSession, workspace_id: uuid.UUID, query: ListConversions
) -> ConversionPage:
    rows = await repository.page(
        session,
        workspace_id,
        before=pagination.decode(query.cursor),
        limit=query.limit + 1,
        event_name=query.event_name,
        attribution=query.attribution,
        link_id=query.link_id,
    )
    shown = rows[: query.limit]
    return ConversionPage(
        data=[views.to_out(r) for r in shown],
        next_cursor=pagination.encode(shown[-1].id) if len(rows) > query.limit else None,
    )


# -- the signing secret ------------------------------------------------------------------------


def secret_out(settings: ControlSettings, row: ConversionSecret) -> SecretOut:
    return SecretOut(
        secret_masked=secrets.masked(settings.secret_key, row),
        created_at=row.created_at,
        rotated_at=row.rotated_at,
        previous_secret_expires_at=row.previous_secret_expires_at,
    )


async def get_secret(session: AsyncSession, workspace_id: uuid.UUID) -> ConversionSecret:
    row = await repository.get_secret(session, workspace_id)
    if row is None:
        raise errors.secret_not_found()
    return row


async def create_secret(
    session: AsyncSession, settings: ControlSettings, workspace_id: uuid.UUID
) -> tuple[ConversionSecret, str]:
    """The workspace's first secret and its plaintext, which is never seen again."""
    plaintext = secrets.new_secret()
    row = await repository.insert_secret(
        session, workspace_id, secrets.encrypt(settings.secret_key, plaintext)
    )
    if row is None:
        raise errors.secret_exists()
    return row, plaintext


async def rotate_secret(
    session: AsyncSession,
    settings: ControlSettings,
    workspace_id: uuid.UUID,
    overlap_s: int,
    now: dt.datetime,
) -> tuple[ConversionSecret, str]:
    """A new secret; the one it replaces stays accepted for `overlap_s` (0: not at all)."""
    plaintext = secrets.new_secret()
    expires = now + dt.timedelta(seconds=overlap_s) if overlap_s else None
    row = await repository.rotate_secret(
        session, workspace_id, secrets.encrypt(settings.secret_key, plaintext), expires
    )
    if row is None:
        raise errors.secret_not_found()
    return row, plaintext
