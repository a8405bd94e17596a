"""The Conversion API against real PostgreSQL and Redis: signed callbacks, the secret,
idempotency, immutable negatives, and attribution to clicks stored by the real ingest."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.testclient import TestClient

from control.settings import ControlSettings
from shared import signing
from shared.clicks import ClickEvent
from shared.ids import uuid7
from tests.integration.conftest import Seed, Tenant, resources, run

CALLBACK = "/api/conversions/callback/{}"
DAY = dt.timedelta(days=1)


# -- helpers (the report tests use them too) ------------------------------------------------


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def ok_response(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response


@dataclass
class Callback:
    """Sends signed Conversion API requests for one workspace, as an integrator would."""

    api: TestClient
    workspace_id: str
    secret: str

    def raw(
        self,
        body: bytes,
        *,
        ts: int | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        stamp = int(time.time()) if ts is None else ts
        sent = {
            "content-type": "application/json",
            signing.TIMESTAMP_HEADER: str(stamp),
            signing.SIGNATURE_HEADER: signing.signature_header(
                [secret or self.secret], stamp, body
            ),
            **(headers or {}),
        }
        return self.api.post(CALLBACK.format(self.workspace_id), content=body, headers=sent)

    def send(self, body: dict[str, Any], **kwargs: Any) -> Any:
        return self.raw(json.dumps(body).encode(), **kwargs)


def make_secret(api: TestClient, tenant: Tenant) -> str:
    issued = ok(api.post("/api/v1/conversions/secret", headers=tenant.auth), 201)
    return str(issued["secret"])


def click_id_at(at: dt.datetime) -> str:
    """A UUIDv7 minted at `at` (hex), as the edge mints click ids."""
    ms = int(at.timestamp() * 1000)
    return uuid.UUID(int=(ms << 80) | (uuid7().int & ((1 << 80) - 1))).hex


def click(
    link: dict[str, Any], at: dt.datetime, *, variant: int = -1, bot: bool = False
) -> ClickEvent:
    agent = "curl/8.5.0" if bot else "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0"
    return ClickEvent(
        id=click_id_at(at),
        ts_ms=int(at.timestamp() * 1000),
        link_id=link["id"],
        workspace_id=link["workspace_id"],
        domain_id=link["domain_id"],
        user_agent=agent,
        variant=variant,
        tracked=True,
    )


def ingest(settings: ControlSettings, events: list[ClickEvent]) -> None:
    """Store clicks as ingest does (control/ingest/consumer.py): each event becomes a row
    (control/clicks/enrich.py) and is stored with the rollups in one transaction."""
    from control.clicks import enrich
    from control.clicks import repository as clicks

    async def go() -> None:
        async with resources(settings) as (engine, _), engine.begin() as conn:
            rows = [enrich.row(e, enrich.visitors()) for e in events]
            await clicks.store(conn, rows)

    run(go())
    stored = sql(
        settings,
        "SELECT count(*) FROM clicks WHERE id = ANY(:ids)",
        ids=[uuid.UUID(hex=e.id) for e in events],
    )
    assert stored == [(len(events),)]


def token(event: ClickEvent) -> str:
    return "nimct_" + event.id


def in_db(settings: ControlSettings, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    from control.db import session_factory

    async def go() -> Any:
        async with resources(settings) as (engine, _), session_factory(engine).begin() as session:
            return await work(session)

    return run(go())


def sql(settings: ControlSettings, query: str, **params: Any) -> list[Any]:
    async def work(session: AsyncSession) -> list[Any]:
        return list((await session.execute(text(query), params)).all())

    return list(in_db(settings, work))


def settle(settings: ControlSettings, now: dt.datetime | None = None) -> int:
    from control.conversions import tasks
    from control.db import session_factory

    async def go() -> int:
        async with resources(settings) as (engine, _):
            return await tasks.settle_all(session_factory(engine), settings, now)

    return int(run(go()))


def conversion_events(settings: ControlSettings) -> list[dict[str, Any]]:
    rows = sql(
        settings,
        "SELECT envelope FROM events WHERE type = 'conversion.recorded' ORDER BY id",
    )
    return [r[0] for r in rows]


@pytest.fixture
def quiet_settings(control_settings: ControlSettings) -> ControlSettings:
    """No background settling (tests settle when they mean to) and no rate limit."""
    return msgspec.structs.replace(
        control_settings, conversion_settle_poll_s=0, rate_limit_per_minute=0
    )


@pytest.fixture
def client(quiet_settings: ControlSettings) -> Iterator[TestClient]:
    from control.app import create_app

    with TestClient(create_app(quiet_settings)) as test_client:
        yield test_client


@pytest.fixture
def alice(client: TestClient, seed: Seed) -> Callback:
    return Callback(client, seed.alice.workspace_id, make_secret(client, seed.alice))


def tracked_link(api: TestClient, tenant: Tenant, slug: str, **extra: Any) -> dict[str, Any]:
    body = {"destination": f"https://shop.example/{slug}", "slug": slug, **extra}
    body.setdefault("track_conversions", True)
    return dict(ok(api.post("/api/v1/links", json=body, headers=tenant.auth), 201))


def lead(event_id: str, click_token: str | None = None, **extra: Any) -> dict[str, Any]:
    """A lead naming its click, else (unless `user_data` is given) a customer id."""
    body: dict[str, Any] = {"event_name": "lead", "event_id": event_id, **extra}
    if click_token is not None:
        body["user_data"] = {"click_id": click_token}
    body.setdefault("user_data", {"external_id": "customer-1"})
    return body


def sale(
    event_id: str, click_token: str | None, value: str, order_id: str, **extra: Any
) -> dict[str, Any]:
    body = lead(event_id, click_token, **extra)
    body["event_name"] = "sale"
    body["custom_data"] = {"value": value, "currency": "EUR", "order_id": order_id}
    return body


# -- the signing secret ------------------------------------------------------------------------


def test_the_secret_is_shown_once_then_only_masked(client: TestClient, seed: Seed) -> None:
    # Given a workspace without a conversion secret
    problem(
        client.get("/api/v1/conversions/secret", headers=seed.alice.auth),
        404,
        "conversion_secret_not_found",
    )

    # When one is generated
    response = client.post("/api/v1/conversions/secret", headers=seed.alice.auth)

    # Then it is in that answer only, not cached, and never again
    issued = ok(response, 201)
    assert response.headers["cache-control"] == "no-store"
    assert issued["secret"].startswith("cvsec_")
    shown = ok(client.get("/api/v1/conversions/secret", headers=seed.alice.auth))
    assert "secret" not in shown
    assert shown["secret_masked"] == "cvsec_…" + issued["secret"][-4:]
    again = client.post("/api/v1/conversions/secret", headers=seed.alice.auth)
    problem(again, 409, "conversion_secret_exists")
    assert issued["secret"] not in again.text


def test_the_secret_is_stored_encrypted(
    client: TestClient, seed: Seed, quiet_settings: ControlSettings
) -> None:
    secret = make_secret(client, seed.alice)

    [(stored,)] = sql(quiet_settings, "SELECT secret_encrypted FROM conversion_secrets")

    assert secret not in stored


def test_after_a_rotation_both_secrets_verify_until_the_overlap_ends(
    client: TestClient, seed: Seed, alice: Callback
) -> None:
    # Given a rotation with an hour of overlap
    old = alice.secret
    rotated = ok(
        client.post(
            "/api/v1/conversions/secret/rotate", json={"overlap_s": 3600}, headers=seed.alice.auth
        )
    )
    new = rotated["secret"]
    assert new != old
    assert rotated["previous_secret_expires_at"] is not None

    # Then requests signed with either are accepted
    ok(alice.send(lead("r-1"), secret=old), 201)
    ok(alice.send(lead("r-2"), secret=new), 201)

    # When it is rotated again with no overlap
    newest = ok(
        client.post(
            "/api/v1/conversions/secret/rotate", json={"overlap_s": 0}, headers=seed.alice.auth
        )
    )["secret"]

    # Then only the newest one verifies
    problem(alice.send(lead("r-3"), secret=new), 401, "invalid_signature")
    ok(alice.send(lead("r-3"), secret=newest), 201)


def test_managing_the_secret_needs_the_conversions_write_scope(
    client: TestClient, seed: Seed, quiet_settings: ControlSettings
) -> None:
    from control.keys import service as keys

    async def create(session: AsyncSession) -> str:
        _, key = await keys.create(
            session,
            quiet_settings.secret_key,
            uuid.UUID(seed.alice.workspace_id),
            "reader",
            ["conversions:read"],
        )
        return key

    reader = {"authorization": f"Bearer {in_db(quiet_settings, create)}"}

    response = client.post("/api/v1/conversions/secret", headers=reader)

    problem(response, 403, "insufficient_scope")


# -- verification ---------------------------------------------------------------------------


def test_a_bad_signature_is_refused_and_nothing_is_recorded(
    alice: Callback, quiet_settings: ControlSettings
) -> None:
    response = alice.send(lead("bad-sig"), secret="cvsec_not-the-secret")

    problem(response, 401, "invalid_signature")
    assert sql(quiet_settings, "SELECT count(*) FROM conversions") == [(0,)]


def test_a_body_changed_after_signing_is_refused(alice: Callback) -> None:
    stamp = int(time.time())
    signed = json.dumps(lead("tamper")).encode()
    header = signing.signature_header([alice.secret], stamp, signed)
    tampered = signed.replace(b"lead", b"sale")

    response = alice.raw(tampered, ts=stamp, headers={signing.SIGNATURE_HEADER: header})

    problem(response, 401, "invalid_signature")


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_a_stale_or_future_timestamp_is_refused(alice: Callback, offset: int) -> None:
    # Given a request correctly signed, but at a time outside the 300 s tolerance
    response = alice.send(lead("stale"), ts=int(time.time()) + offset)

    body = problem(response, 401, "stale_timestamp")
    assert body["tolerance_s"] == 300


def test_a_timestamp_within_the_tolerance_is_accepted(alice: Callback) -> None:
    ok(alice.send(lead("almost-stale"), ts=int(time.time()) - 290), 201)


@pytest.mark.parametrize(
    ("drop", "value", "code"),
    [
        (signing.TIMESTAMP_HEADER, None, "missing_signature"),
        (signing.SIGNATURE_HEADER, None, "missing_signature"),
        (None, (signing.TIMESTAMP_HEADER, "12.5"), "invalid_timestamp"),
        (None, (signing.TIMESTAMP_HEADER, "-1700000000"), "invalid_timestamp"),
        (None, (signing.SIGNATURE_HEADER, "v0=abc"), "invalid_signature"),
    ],
)
def test_missing_or_malformed_signature_headers_are_refused(
    alice: Callback, drop: str | None, value: tuple[str, str] | None, code: str
) -> None:
    body = json.dumps(lead("hdr")).encode()
    stamp = int(time.time())
    headers = {
        "content-type": "application/json",
        signing.TIMESTAMP_HEADER: str(stamp),
        signing.SIGNATURE_HEADER: signing.signature_header([alice.secret], stamp, body),
    }
    if drop:
        del headers[drop]
    if value:
        headers[value[0]] = value[1]

    response = alice.api.post(CALLBACK.format(alice.workspace_id), content=body, headers=headers)

    problem(response, 401, code)


@pytest.mark.parametrize("workspace", ["00000000-0000-7000-8000-000000000000", "not-a-uuid"])
def test_an_unknown_workspace_is_404(alice: Callback, workspace: str) -> None:
    other = Callback(alice.api, workspace, alice.secret)

    problem(other.send(lead("nowhere")), 404, "workspace_not_found")


def test_a_workspace_without_a_secret_is_told_to_make_one(client: TestClient, seed: Seed) -> None:
    bob = Callback(client, seed.bob.workspace_id, "cvsec_whatever")

    problem(bob.send(lead("no-secret")), 403, "conversion_secret_not_set")


def test_another_workspaces_secret_does_not_verify(
    client: TestClient, seed: Seed, alice: Callback
) -> None:
    bobs_secret = make_secret(client, seed.bob)

    problem(alice.send(lead("cross"), secret=bobs_secret), 401, "invalid_signature")


def test_the_signature_is_checked_before_the_body_is_parsed(alice: Callback) -> None:
    # Not even JSON, and a wrong signature: the signature is what is reported
    problem(alice.raw(b"{not json", secret="cvsec_wrong"), 401, "invalid_signature")
    # Correctly signed, the same bytes are a clear 400
    problem(alice.raw(b"{not json"), 400, "malformed_json")


def test_an_oversized_body_is_refused(alice: Callback) -> None:
    body = json.dumps(lead("big", external_id="x" * 70_000)).encode()

    problem(alice.raw(body), 413, "body_too_large")


# -- attribution ------------------------------------------------------------------------------


def test_a_lead_with_a_stored_click_is_attributed_to_its_link_and_variant(
    client: TestClient, seed: Seed, alice: Callback, quiet_settings: ControlSettings
) -> None:
    # Given a tracked A/B link and a click on its second variant, stored by ingest
    link = tracked_link(
        client,
        seed.alice,
        "ab",
        routing={
            "variants": [
                {"destination": "https://shop.example/a"},
                {"destination": "https://shop.example/b"},
            ]
        },
    )
    clicked = click(link, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), variant=1)
    ingest(quiet_settings, [clicked])

    # When the landing page's backend reports a lead with the nim_ct token
    response = alice.send(lead("crm-lead-abc123", token(clicked)))

    # Then it is attributed at once, to the link and the variant
    recorded = ok(response, 201)
    assert response.headers["location"] == f"/api/v1/conversions/{recorded['id']}"
    assert recorded["click_id"] == token(clicked)
    assert recorded["attribution"] == {
        "status": "attributed",
        "reason": None,
        "via": "click_id",
        "link_id": link["id"],
        "variant": 1,
        "click_id": token(clicked),
        "clicked_at": recorded["attribution"]["clicked_at"],
    }
    # And one conversion.recorded event names the link as link.clicked does
    [envelope] = conversion_events(quiet_settings)
    assert envelope["workspace_id"] == seed.alice.workspace_id
    data = envelope["data"]
    assert data["conversion_id"] == recorded["id"]
    assert data["event_id"] == "crm-lead-abc123"
    assert data["attribution"]["short_code"] == "ab"
    assert data["attribution"]["link_id"] == link["id"]
    assert data["attribution"]["variant"] == 1


def test_an_outcome_arriving_before_its_click_waits_and_is_attributed_when_it_lands(
    client: TestClient, seed: Seed, alice: Callback, quiet_settings: ControlSettings
) -> None:
    # Given a click the edge made a moment ago that ingest has not stored yet
    link = tracked_link(client, seed.alice, "fast")
    clicked = click(link, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))

    # When the lead arrives first
    recorded = ok(alice.send(lead("early", token(clicked))), 201)

    # Then it is kept as pending, with no event yet, and settling leaves it so
    assert recorded["attribution"]["status"] == "pending"
    assert recorded["attribution"]["link_id"] is None
    assert conversion_events(quiet_settings) == []
    assert settle(quiet_settings) == 0

    # When ingest stores the click and the settler runs
    ingest(quiet_settings, [clicked])
    assert settle(quiet_settings) == 1

    # Then it is attributed, and its event is written then, once
    got = ok(alice.api.get(f"/api/v1/conversions/{recorded['id']}", headers=seed.alice.auth))
    assert got["attribution"]["status"] == "attributed"
    assert got["attribution"]["link_id"] == link["id"]
    [envelope] = conversion_events(quiet_settings)
    assert envelope["data"]["attribution"]["status"] == "attributed"
    assert settle(quiet_settings) == 0


def test_the_background_settler_attributes_without_being_asked(
    control_settings: ControlSettings, seed: Seed
) -> None:
    from control.app import create_app

    settings = msgspec.structs.replace(
        control_settings, conversion_settle_poll_s=0.1, rate_limit_per_minute=0
    )
    with TestClient(create_app(settings)) as api:
        sender = Callback(api, seed.alice.workspace_id, make_secret(api, seed.alice))
        link = tracked_link(api, seed.alice, "bg")
        clicked = click(link, dt.datetime.now(dt.UTC))
        recorded = ok(sender.send(lead("bg-lead", token(clicked))), 201)
        assert recorded["attribution"]["status"] == "pending"

        ingest(settings, [clicked])

        deadline = time.monotonic() + 10
        while True:
            got = ok(api.get(f"/api/v1/conversions/{recorded['id']}", headers=seed.alice.auth))
            if got["attribution"]["status"] != "pending":
                break
            assert time.monotonic() < deadline, "the settler never attributed the lead"
            time.sleep(0.05)
        assert got["attribution"]["status"] == "attributed"


def test_an_unknown_click_token_is_kept_and_settled_as_unattributed(
    alice: Callback, quiet_settings: ControlSettings
) -> None:
    # Given a well-formed token of a click that was never stored
    never = "nimct_" + click_id_at(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))

    # When a sale names it
    recorded = ok(alice.send(sale("s-unknown", never, "49.90", "o-unknown")), 201)

    # Then the sale is kept, waiting for the click while ingest could still bring it
    assert recorded["attribution"]["status"] == "pending"
    assert settle(quiet_settings) == 0
    # And once RICOCHET_CONVERSION_PENDING_S has passed since the click, it is unattributed
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=quiet_settings.conversion_pending_s)
    assert settle(quiet_settings, later) == 1
    [envelope] = conversion_events(quiet_settings)
    assert envelope["data"]["attribution"]["status"] == "unattributed"
    assert envelope["data"]["attribution"]["reason"] == "click_not_found"
    assert envelope["data"]["value"] == "49.90"


def test_an_unknown_token_older_than_the_ingest_wait_is_unattributed_at_once(
    alice: Callback,
) -> None:
    never = "nimct_" + click_id_at(dt.datetime.now(dt.UTC) - dt.timedelta(days=2))

    recorded = ok(alice.send(lead("l-unknown-old", never)), 201)

    assert recorded["attribution"]["status"] == "unattributed"
    assert recorded["attribution"]["reason"] == "click_not_found"


def test_a_token_older_than_30_days_is_kept_but_not_attributed(
    client: TestClient, seed: Seed, alice: Callback, quiet_settings: ControlSettings
) -> None:
    # Given a click that really happened, 31 days ago
    link = tracked_link(client, seed.alice, "old-campaign")
    clicked = click(link, dt.datetime.now(dt.UTC) - 31 * DAY)
    ingest(quiet_settings, [clicked])

    # When a sale reports its token today
    recorded = ok(alice.send(sale("s-late", token(clicked), "10", "o-late")), 201)

    # Then the sale is recorded, unattributed, outside the window
    assert recorded["attribution"]["status"] == "unattributed"
    assert recorded["attribution"]["reason"] == "outside_window"
    assert recorded["attribution"]["link_id"] is None
    [envelope] = conversion_events(quiet_settings)
    assert envelope["data"]["attribution"]["reason"] == "outside_window"


def test_the_window_is_measured_to_when_the_outcome_happened(
    client: TestClient, seed: Seed, alice: Callback, quiet_settings: ControlSettings
) -> None:
    # Given a click 40 days ago, and a sale that happened 29 days after it, reported late
    link = tracked_link(client, seed.alice, "late-report")
    clicked_at = dt.datetime.now(dt.UTC) - 40 * DAY
    clicked = click(link, clicked_at)
    ingest(quiet_settings, [clicked])
    happened = int((clicked_at + 29 * DAY).timestamp())

    recorded = ok(
        alice.send(sale("s-backfill", token(clicked), "5", "o-backfill", event_time=happened)),
        201,
    )

    assert recorded["attribution"]["status"] == "attributed"
    assert recorded["event_time"].startswith((clicked_at + 29 * DAY).date().isoformat())


def test_an_outcome_before_its_click_is_not_attributed(
    client: TestClient, seed: Seed, alice: Callback, quiet_settings: ControlSettings
) -> None:
    link = tracked_link(client, seed.alice, "before")
    clicked = click(link, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    ingest(quiet_settings, [clicked])
    earlier = int(time.time()) - 2 * 3600

    recorded = ok(alice.send(lead("l-before", token(clicked), event_time=earlier)), 201)

    assert recorded["attribution"]["reason"] == "outside_window"


def test_a_click_of_another_workspace_is_never_attributed(
    client: TestClient, seed: Seed, alice: Callback, quiet_settings: ControlSettings
) -> None:
    bobs = tracked_link(client, seed.bob, "bobs")
    clicked = click(bobs, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    ingest(quiet_settings, [clicked])

    recorded = ok(alice.send(lead("l-cross", token(clicked))), 201)

    assert recorded["attribution"]["status"] == "unattributed"
    assert recorded["attribution"]["reason"] == "click_not_found"
    assert recorded["attribution"]["link_id"] is None


@pytest.mark.parametrize(
    "bad",
    [
        "nimct_xyz",
        "nimct_" + "0" * 32,  # not a UUIDv7
        "0192f0c1a2b37c3d8e4f5a6b7c8d9e0f",  # no prefix
        "tomorrow",  # a token minted tomorrow (made below: ids must not vary by worker)
    ],
)
def test_a_malformed_click_token_is_a_clear_422(alice: Callback, bad: str) -> None:
    if bad == "tomorrow":
        bad = "nimct_" + click_id_at(dt.datetime.now(dt.UTC) + DAY)

    body = problem(alice.send(lead("l-bad-token", bad)), 422, "invalid_click_id")

    assert body["field"] == "user_data.click_id"


def test_an_external_id_alone_takes_the_click_of_the_customers_earlier_outcome(
    client: TestClient, seed: Seed, alice: Callback, quiet_settings: ControlSettings
) -> None:
    # Given a lead with the token and the customer's CRM id
    link = tracked_link(client, seed.alice, "crm")
    clicked = click(link, dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    ingest(quiet_settings, [clicked])
    ok(
        alice.send(
            lead(
                "l-crm",
                None,
                user_data={"click_id": token(clicked), "external_id": "cust-42"},
            )
        ),
        201,
    )

    # When billing, which only knows the customer, reports the sale
    body = sale("s-crm", None, "99.00", "o-crm")
    body["user_data"] = {"external_id": "cust-42"}
    recorded = ok(alice.send(body), 201)

    # Then the sale is attributed to the same click, through the external id
    assert recorded["click_id"] is None
    assert recorded["attribution"]["status"] == "attributed"
    assert recorded["attribution"]["via"] == "external_id"
    assert recorded["attribution"]["link_id"] == link["id"]
    assert recorded["attribution"]["click_id"] == token(clicked)


def test_an_external_id_without_any_earlier_click_is_unattributed(alice: Callback) -> None:
    recorded = ok(alice.send(lead("l-ext", None, user_data={"external_id": "cust-7"})), 201)

    assert recorded["attribution"]["status"] == "unattributed"
    assert recorded["attribution"]["reason"] == "no_click_id"


def test_a_lead_needs_a_click_id_or_an_external_id(alice: Callback) -> None:
    problem(alice.send({"event_name": "lead", "event_id": "l-nobody"}), 422, "user_data_required")


# -- immutability and negatives ---------------------------------------------------------------


def test_a_refund_is_a_new_record_beside_the_sale_it_undoes(
    client: TestClient, seed: Seed, alice: Callback, quiet_settings: ControlSettings
) -> None:
    # Given an attributed sale
    link = tracked_link(client, seed.alice, "launch")
    clicked = click(link, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30))
    ingest(quiet_settings, [clicked])
    sold = ok(alice.send(sale("s-1", token(clicked), "129.00", "order-1")), 201)

    # When part of it is refunded, naming the order
    refund = ok(
        alice.send(
            {
                "event_name": "refund",
                "event_id": "r-1",
                "custom_data": {"related_order_id": "order-1", "value": 29, "currency": "eur"},
            }
        ),
        201,
    )

    # Then the refund is its own record, tied to the sale and sharing its attribution
    assert refund["related_conversion_id"] == sold["id"]
    assert refund["value"] == "29"
    assert refund["currency"] == "EUR"
    assert refund["attribution"]["status"] == "attributed"
    assert refund["attribution"]["via"] == "sale"
    assert refund["attribution"]["link_id"] == link["id"]
    # And the sale is exactly as it was
    assert ok(client.get(f"/api/v1/conversions/{sold['id']}", headers=seed.alice.auth)) == sold

    # When the rest is charged back, naming the sale's event id, without a value
    reversal = ok(
        alice.send(
            {
                "event_name": "reversal",
                "event_id": "cb-1",
                "custom_data": {"related_event_id": "s-1"},
            }
        ),
        201,
    )

    # Then it undoes what was left, and nothing more can be undone
    assert reversal["value"] == "100.00"
    over = alice.send(
        {
            "event_name": "cancellation",
            "event_id": "c-1",
            "custom_data": {"related_order_id": "order-1", "value": "0.01"},
        }
    )
    problem(over, 422, "exceeds_sale_value")
    names = [
        c["event_name"]
        for c in ok(client.get("/api/v1/conversions", headers=seed.alice.auth))["data"]
    ]
    assert names == ["reversal", "refund", "sale"]
    assert len(conversion_events(quiet_settings)) == 3


@pytest.mark.parametrize("name", ["refund", "cancellation", "reversal"])
def test_a_negative_outcome_without_a_prior_sale_is_refused(alice: Callback, name: str) -> None:
    unknown = alice.send(
        {"event_name": name, "event_id": f"{name}-1", "custom_data": {"related_order_id": "nope"}}
    )
    body = problem(unknown, 422, "related_sale_not_found")
    assert body["field"] == "custom_data.related_order_id"

    unnamed = alice.send({"event_name": name, "event_id": f"{name}-2"})
    problem(unnamed, 422, "related_sale_required")


def test_a_negative_outcome_cannot_refer_to_a_lead(
    client: TestClient, seed: Seed, alice: Callback
) -> None:
    ok(alice.send(lead("l-only", None, user_data={"external_id": "c"})), 201)

    refund = alice.send(
        {
            "event_name": "refund",
            "event_id": "r-lead",
            "custom_data": {"related_event_id": "l-only"},
        }
    )

    problem(refund, 422, "related_sale_not_found")


def test_a_refund_in_another_currency_than_its_sale_is_refused(alice: Callback) -> None:
    ok(alice.send(sale("s-eur", None, "10", "o-eur", user_data={"external_id": "c"})), 201)

    refund = alice.send(
        {
            "event_name": "refund",
            "event_id": "r-usd",
            "custom_data": {"related_order_id": "o-eur", "value": 5, "currency": "USD"},
        }
    )

    problem(refund, 422, "currency_mismatch")


def test_a_refund_of_a_pending_sale_settles_with_it(
    client: TestClient, seed: Seed, alice: Callback, quiet_settings: ControlSettings
) -> None:
    link = tracked_link(client, seed.alice, "pending-sale")
    clicked = click(link, dt.datetime.now(dt.UTC))
    ok(alice.send(sale("s-p", token(clicked), "20", "o-p")), 201)
    refund = ok(
        alice.send(
            {"event_name": "refund", "event_id": "r-p", "custom_data": {"related_order_id": "o-p"}}
        ),
        201,
    )
    assert refund["attribution"]["status"] == "pending"

    ingest(quiet_settings, [clicked])
    assert settle(quiet_settings) == 2

    got = ok(client.get(f"/api/v1/conversions/{refund['id']}", headers=seed.alice.auth))
    assert got["attribution"]["status"] == "attributed"
    assert got["attribution"]["link_id"] == link["id"]


# -- idempotency -------------------------------------------------------------------------------


def test_a_repeated_event_id_returns_the_stored_result(
    alice: Callback, quiet_settings: ControlSettings
) -> None:
    body = sale("crm-order-1", None, "129.00", "o-dup", user_data={"external_id": "c"})
    first = ok(alice.send(body), 201)

    # The same outcome again (re-signed, numbers and currency written differently)
    again = dict(body, custom_data={"value": 129, "currency": "eur", "order_id": "o-dup"})
    repeat = alice.send(again)

    assert ok(repeat, 201) == first
    assert repeat.headers["idempotent-replayed"] == "true"
    assert sql(quiet_settings, "SELECT count(*) FROM conversions") == [(1,)]
    assert len(conversion_events(quiet_settings)) == 1
    assert "idempotent-replayed" not in ok_response(alice.send(lead("l-other"))).headers


def test_a_repeated_event_id_with_a_different_outcome_is_refused(
    alice: Callback, quiet_settings: ControlSettings
) -> None:
    ok(alice.send(sale("crm-order-2", None, "10", "o-2", user_data={"external_id": "c"})), 201)

    changed = alice.send(sale("crm-order-2", None, "11", "o-2", user_data={"external_id": "c"}))

    problem(changed, 409, "event_id_conflict")
    [(value,)] = sql(quiet_settings, "SELECT value FROM conversions")
    assert str(value) == "10"


def test_two_sales_cannot_share_an_order_id(alice: Callback) -> None:
    ok(alice.send(sale("s-a", None, "1", "o-shared", user_data={"external_id": "c"})), 201)

    body = problem(
        alice.send(sale("s-b", None, "1", "o-shared", user_data={"external_id": "c"})),
        409,
        "order_id_taken",
    )
    assert body["field"] == "custom_data.order_id"


def test_an_idempotency_key_replays_the_first_response(
    alice: Callback, quiet_settings: ControlSettings
) -> None:
    body = lead("l-key", None, user_data={"external_id": "c"})
    first = alice.send(body, headers={"idempotency-key": "k-1"})
    assert first.status_code == 201

    replay = alice.send(body, headers={"idempotency-key": "k-1"})

    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content
    reused = alice.send(
        lead("l-key-2", None, user_data={"external_id": "c"}), headers={"idempotency-key": "k-1"}
    )
    problem(reused, 422, "idempotency_key_reused")
    assert sql(quiet_settings, "SELECT count(*) FROM conversions") == [(1,)]


def test_concurrent_requests_with_one_event_id_record_it_once(
    seed: Seed, quiet_settings: ControlSettings
) -> None:
    from control.conversions import service
    from control.conversions.schemas import ConversionEvent
    from control.db import session_factory

    event = msgspec.convert(
        sale("s-race", None, "5", "o-race", user_data={"external_id": "c"}), ConversionEvent
    )
    workspace = uuid.UUID(seed.alice.workspace_id)

    async def once(sessions: Any, org: uuid.UUID) -> bool:
        async with sessions.begin() as session:
            created, _ = await service.record(
                session, quiet_settings, workspace, org, event, dt.datetime.now(dt.UTC)
            )
            await asyncio.sleep(0.2)  # hold the transaction open while the other runs
            return created

    async def race() -> list[bool]:
        async with resources(quiet_settings) as (engine, _):
            sessions = session_factory(engine)
            async with sessions.begin() as session:
                org = (
                    await session.execute(
                        text("SELECT organization_id FROM workspaces WHERE id = :id"),
                        {"id": workspace},
                    )
                ).scalar_one()
            return list(await asyncio.gather(once(sessions, org), once(sessions, org)))

    outcomes = run(race())

    assert sorted(outcomes) == [False, True]
    assert sql(quiet_settings, "SELECT count(*) FROM conversions") == [(1,)]


# -- events ------------------------------------------------------------------------------------


def test_a_webhook_subscribed_to_conversion_recorded_gets_each_outcome(
    client: TestClient, seed: Seed, alice: Callback, quiet_settings: ControlSettings
) -> None:
    from control.relay.service import Relay

    # Given an endpoint subscribed to conversion events only
    endpoint = ok(
        client.post(
            "/api/v1/webhooks",
            json={"url": "https://hooks.example.com/c", "event_types": ["conversion.recorded"]},
            headers=seed.alice.auth,
        ),
        201,
    )
    assert endpoint["event_types"] == ["conversion.recorded"]

    # When an outcome is recorded and the relay drains the outbox
    ok(alice.send(lead("l-hook")), 201)
    queued: list[uuid.UUID] = []

    async def drain() -> None:
        async with resources(quiet_settings) as (engine, redis):
            await Relay(quiet_settings, engine, redis, enqueue=queued.extend).drain()

    run(drain())

    # Then one delivery of that event is made for the endpoint, and queued
    [envelope] = conversion_events(quiet_settings)
    rows = sql(quiet_settings, "SELECT id, endpoint_id, event_type, event_id FROM deliveries")
    assert [(r[1], r[2], r[3].hex) for r in rows] == [
        (uuid.UUID(endpoint["id"]), "conversion.recorded", envelope["id"].removeprefix("evt_"))
    ]
    assert queued == [rows[0][0]]
    assert alice.secret not in json.dumps(envelope)
