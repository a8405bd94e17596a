"""Webhook endpoint use cases: subscriptions, secrets, and the API's view of deliveries.

Sending is the delivery engine's (control/delivery); this module only creates deliveries
(test-sends, replays) and reads their history.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import uuid
from urllib.parse import urlsplit

import msgspec
from cryptography.fernet import InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession

from control import pagination, text
from control.delivery import history, inserts
from control.delivery.models import Delivery, DeliveryAttempt
from control.errors import ApiError, Conflict, Unprocessable
from control.events import envelope
from control.settings import ControlSettings
from control.webhooks import repository, secrets
from control.webhooks.models import WebhookEndpoint
from control.webhooks.schemas import (
    MAX_URL,
    AttemptOut,
    CreateWebhook,
    DeliveryOut,
    DeliveryPage,
    Health,
    ListDeliveries,
    ListWebhooks,
    TestSendResult,
    UpdateWebhook,
    WebhookOut,
    WebhookPage,
)

# The v1 catalogue (seed 002); nim.webhook.test is only ever sent by a test-send.
EVENT_TYPES = (
    envelope.LINK_CREATED,
    envelope.LINK_UPDATED,
    envelope.LINK_TAKEDOWN_UPDATED,
    envelope.DOMAIN_VERIFICATION_UPDATED,
    envelope.LINK_CLICKED,
    envelope.LINK_QR_SCANNED,
    envelope.CONVERSION_RECORDED,
)
DESCRIPTION_MAX = 500
HEALTH_WINDOW = dt.timedelta(hours=24)
_HOST = re.compile(
    r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)


def _invalid_url(detail: str) -> ApiError:
    return Unprocessable("invalid_url", detail, field="url")


def clean_url(raw: str, settings: ControlSettings) -> str:
    """The receiver URL as stored (trimmed), or 422 invalid_url.

    Literal private, loopback and link-local addresses are refused here unless
    RICOCHET_ALLOW_PRIVATE_DESTINATIONS; names are resolved, and checked, at send time.
    """
    url = raw.strip()
    if not url:
        raise _invalid_url("The URL is empty.")
    if len(url) > MAX_URL:
        raise _invalid_url(f"The URL is longer than {MAX_URL} characters.")
    if text.has_hidden(url) or any(c.isspace() for c in url):
        raise _invalid_url("The URL must not contain spaces, control or invisible characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _invalid_url("The URL is not valid.") from None
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if settings.allow_private_destinations else ("https",)
    if scheme not in allowed:
        raise _invalid_url(
            "A webhook URL must use https://."
            if scheme == "http"
            else "A webhook URL is an https:// URL."
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _invalid_url("A webhook URL must not carry credentials.")
    if port == 0:
        raise _invalid_url("The URL's port is not valid.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _invalid_url("The URL has no host.")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None:
        try:
            ascii_host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise _invalid_url(f"The host {host!r} is not valid.") from None
        if not _HOST.match(ascii_host) or ascii_host.replace(".", "").isdigit():
            raise _invalid_url(f"The host {host!r} is not valid.")
        private = ascii_host == "localhost" or ascii_host.endswith(".localhost")
    else:
        private = not address.is_global
    if private and not settings.allow_private_destinations:
        raise _invalid_url("Private, loopback and link-local receivers are not allowed.")
    return url


def clean_event_types(raw: list[str]) -> list[str]:
    wanted = list(dict.fromkeys(raw))
    bad = [t for t in wanted if t not in EVENT_TYPES]
    if bad:
        raise Unprocessable(
            "unknown_event_type",
            f"Unknown event types: {', '.join(bad)[:200]}. Known: {', '.join(EVENT_TYPES)}.",
            field="event_types",
        )
    return wanted


def clean_description(raw: str | None) -> str | None:
    return text.clean_text(
        raw,
        what="description",
        field="description",
        max_len=DESCRIPTION_MAX,
        allowed=text.MULTILINE,
    )


def _mask(settings: ControlSettings, token: str) -> str:
    try:
        return secrets.mask(secrets.decrypt(settings, token))
    except InvalidToken:  # RICOCHET_SECRET_KEY changed since: rotate to get a usable one
        return secrets.mask("????")


def to_out(settings: ControlSettings, row: WebhookEndpoint) -> WebhookOut:
    return WebhookOut(
        id=str(row.id),
        url=row.url,
        description=row.description,
        event_types=list(row.event_types),
        enabled=row.enabled,
        secret_masked=_mask(settings, row.secret_encrypted),
        previous_secret_expires_at=row.previous_secret_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def endpoint_id(raw: str) -> uuid.UUID:
    return text.parse_id(raw, "webhook")


def delivery_id(raw: str) -> uuid.UUID:
    return text.parse_id(raw, "delivery")


async def create(
    session: AsyncSession, settings: ControlSettings, workspace_id: uuid.UUID, data: CreateWebhook
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its plaintext secret, which is never seen again."""
    url = clean_url(data.url, settings)
    event_types = clean_event_types(data.event_types)
    description = clean_description(data.description)
    plaintext = secrets.new_secret()
    row = await repository.insert_endpoint(
        session,
        workspace_id,
        url=url,
        event_types=event_types,
        description=description,
        enabled=data.enabled,
        secret_encrypted=secrets.encrypt(settings, plaintext),
    )
    return row, plaintext


async def get_row(session: AsyncSession, workspace_id: uuid.UUID, raw_id: str) -> WebhookEndpoint:
    row = await repository.get_endpoint(session, workspace_id, endpoint_id(raw_id))
    if row is None:
        raise ApiError.not_found("webhook")
    return row


async def page(
    session: AsyncSession, settings: ControlSettings, workspace_id: uuid.UUID, query: ListWebhooks
) -> WebhookPage:
    rows = await repository.page_endpoints(
        session, workspace_id, after=pagination.decode(query.cursor), limit=query.limit + 1
    )
    shown = rows[: query.limit]
    return WebhookPage(
        data=[to_out(settings, r) for r in shown],
        next_cursor=pagination.encode(shown[-1].id) if len(rows) > query.limit else None,
    )


async def update(
    session: AsyncSession,
    settings: ControlSettings,
    workspace_id: uuid.UUID,
    raw_id: str,
    data: UpdateWebhook,
) -> WebhookOut:
    wanted = endpoint_id(raw_id)
    values: dict[str, object] = {}
    if isinstance(data.url, str):
        values["url"] = clean_url(data.url, settings)
    if isinstance(data.event_types, list):
        values["event_types"] = clean_event_types(data.event_types)
    if data.description is None or isinstance(data.description, str):
        values["description"] = clean_description(data.description)
    if isinstance(data.enabled, bool):
        values["enabled"] = data.enabled
    if values:
        row = await repository.update_endpoint(session, workspace_id, wanted, values)
    else:
        row = await repository.get_endpoint(session, workspace_id, wanted)
    if row is None:
        raise ApiError.not_found("webhook")
    return to_out(settings, row)


async def delete(session: AsyncSession, workspace_id: uuid.UUID, raw_id: str) -> None:
    if not await repository.delete_endpoint(session, workspace_id, endpoint_id(raw_id)):
        raise ApiError.not_found("webhook")


async def rotate(
    session: AsyncSession,
    settings: ControlSettings,
    workspace_id: uuid.UUID,
    raw_id: str,
    overlap_s: int,
) -> tuple[WebhookEndpoint, str]:
    """A new current secret; the old one keeps signing for `overlap_s` (0: not at all)."""
    plaintext = secrets.new_secret()
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=overlap_s) if overlap_s else None
    row = await repository.rotate_secret(
        session, workspace_id, endpoint_id(raw_id), secrets.encrypt(settings, plaintext), expires
    )
    if row is None:
        raise ApiError.not_found("webhook")
    return row, plaintext


def attempt_out(a: DeliveryAttempt) -> AttemptOut:
    return AttemptOut(
        number=a.number,
        attempted_at=a.attempted_at,
        status_code=a.status_code,
        latency_ms=a.latency_ms,
        response_excerpt=a.response_excerpt,
        error=a.error,
    )


def _delivery_out(d: Delivery, attempts: list[DeliveryAttempt]) -> DeliveryOut:
    return DeliveryOut(
        id=str(d.id),
        endpoint_id=str(d.endpoint_id),
        event_id=envelope.event_id_text(d.event_id),
        event_type=d.event_type,
        reason=d.reason,
        status=d.status,
        attempt_count=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=d.created_at,
        updated_at=d.updated_at,
        attempts=[attempt_out(a) for a in attempts],
    )


async def _with_attempts(session: AsyncSession, rows: list[Delivery]) -> list[DeliveryOut]:
    by_delivery: dict[uuid.UUID, list[DeliveryAttempt]] = {r.id: [] for r in rows}
    for attempt in await history.attempts_of(session, list(by_delivery)):
        by_delivery[attempt.delivery_id].append(attempt)
    return [_delivery_out(r, by_delivery[r.id]) for r in rows]


async def deliveries(
    session: AsyncSession, workspace_id: uuid.UUID, raw_id: str, query: ListDeliveries
) -> DeliveryPage:
    endpoint = await get_row(session, workspace_id, raw_id)
    rows = await history.page(
        session,
        workspace_id,
        Delivery.endpoint_id,
        endpoint.id,
        before=pagination.decode(query.cursor),
        limit=query.limit + 1,
    )
    shown = rows[: query.limit]
    return DeliveryPage(
        data=await _with_attempts(session, shown),
        next_cursor=pagination.encode(shown[-1].id) if len(rows) > query.limit else None,
    )


async def _delivery_row(
    session: AsyncSession, workspace_id: uuid.UUID, raw_id: str, raw_delivery_id: str
) -> Delivery:
    endpoint = await get_row(session, workspace_id, raw_id)
    row = await history.get(
        session, workspace_id, Delivery.endpoint_id, endpoint.id, delivery_id(raw_delivery_id)
    )
    if row is None:
        raise ApiError.not_found("delivery")
    return row


async def delivery(
    session: AsyncSession, workspace_id: uuid.UUID, raw_id: str, raw_delivery_id: str
) -> DeliveryOut:
    row = await _delivery_row(session, workspace_id, raw_id, raw_delivery_id)
    return (await _with_attempts(session, [row]))[0]


async def create_test_delivery(
    session: AsyncSession, organization_id: uuid.UUID, workspace_id: uuid.UUID, raw_id: str
) -> uuid.UUID:
    """A pending `nim.webhook.test` delivery with a synthetic envelope, for one attempt now."""
    endpoint = await get_row(session, workspace_id, raw_id)
    event_id, _, body = envelope.build(
        envelope.WEBHOOK_TEST,
        organization_id,
        workspace_id,
        {
            "endpoint_id": str(endpoint.id),
            "message": "This is a test event from Ricochet: your endpoint is reachable.",
        },
    )
    return await inserts.insert_pending(
        session,
        workspace_id=workspace_id,
        endpoint_id=endpoint.id,
        event_id=event_id,
        event_type=envelope.WEBHOOK_TEST,
        reason="test",
        body=msgspec.json.encode(body),
    )


async def finish_test(
    session: AsyncSession,
    delivery_id: uuid.UUID,
    status: str,
    status_code: int | None,
    error: str | None,
) -> TestSendResult:
    """The answer to a test-send once its one attempt is recorded; no retries follow."""
    if status == "retrying":
        await history.end_retries(session, delivery_id)
        status = "failed"
    last = await history.last_attempt(session, delivery_id)
    return TestSendResult(
        delivery_id=str(delivery_id),
        status=status,
        status_code=status_code,
        latency_ms=last.latency_ms if last is not None else None,
        error=error,
    )


async def _replay_row(session: AsyncSession, row: Delivery) -> uuid.UUID:
    # The same event id and the very same bytes: receivers dedupe on the id.
    assert row.endpoint_id is not None  # found through its endpoint
    (made,) = await history.insert_replays(
        session, Delivery.endpoint_id, row.endpoint_id, [(row, row.body)]
    )
    return made


async def replay(
    session: AsyncSession, workspace_id: uuid.UUID, raw_id: str, raw_delivery_id: str
) -> DeliveryOut:
    """A new pending delivery of a dead or failed one; the caller enqueues it after commit."""
    row = await _delivery_row(session, workspace_id, raw_id, raw_delivery_id)
    if row.status not in history.REPLAYABLE:
        raise Conflict(
            "not_replayable",
            f"Only dead or failed deliveries can be replayed; this one is {row.status}.",
        )
    new_id = await _replay_row(session, row)
    return await delivery(session, workspace_id, raw_id, str(new_id))


async def recover(
    session: AsyncSession, workspace_id: uuid.UUID, raw_id: str, since: dt.datetime
) -> list[uuid.UUID]:
    """Replays of every event whose latest delivery since `since` is dead or failed."""
    endpoint = await get_row(session, workspace_id, raw_id)
    rows = await history.latest_replayable_since(
        session, workspace_id, Delivery.endpoint_id, endpoint.id, since
    )
    # The same event ids and the very same bytes: receivers dedupe on the id.
    return await history.insert_replays(
        session, Delivery.endpoint_id, endpoint.id, [(r, r.body) for r in rows]
    )


async def health(session: AsyncSession, workspace_id: uuid.UUID, raw_id: str) -> Health:
    endpoint = await get_row(session, workspace_id, raw_id)
    since = dt.datetime.now(dt.UTC) - HEALTH_WINDOW
    return health_out(
        await history.health(session, workspace_id, Delivery.endpoint_id, endpoint.id, since)
    )


def health_out(h: history.HealthRow) -> Health:
    return Health(
        success_rate_24h=round(h.succeeded / h.attempts, 4) if h.attempts else None,
        attempts_24h=h.attempts,
        retrying=h.retrying,
        dead=h.dead,
        last_success_at=h.last_success_at,
        last_failure_at=h.last_failure_at,
    )
