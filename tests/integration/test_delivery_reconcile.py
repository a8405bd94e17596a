"""The reconciler re-sends lost messages and expired claims, not deliveries that are only
waiting in the queue behind a backlog (real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
import pytest
from sqlalchemy import update

from control.db import session_factory
from control.delivery import engine
from control.delivery.models import Delivery
from control.settings import ControlSettings
from tests.integration.conftest import Seed, resources, run
from tests.integration.test_delivery import _emit, _endpoint, _fanout


@pytest.fixture
def settings(control_settings: ControlSettings) -> ControlSettings:
    return msgspec.structs.replace(control_settings, allow_private_destinations=True)


async def _deliveries(settings: ControlSettings, seed: Seed, n: int) -> list[uuid.UUID]:
    a = seed.alice.workspace_id
    await _endpoint(settings, a, "https://a.example/1", ["link.created"])
    out = []
    for _ in range(n):
        out.extend(await _fanout(settings, (await _emit(settings, a, "link.created"))["id"]))
    return out


async def _set(settings: ControlSettings, delivery_id: uuid.UUID, **values: object) -> None:
    async with resources(settings) as (db, _), session_factory(db).begin() as session:
        await session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


async def _reconcile(settings: ControlSettings) -> list[uuid.UUID]:
    sent: list[uuid.UUID] = []
    async with resources(settings) as (db, _):
        await engine.reconcile(session_factory(db), sent.extend, overdue_s=30)
    return sent


def _queued(at: dt.datetime) -> dict[str, object]:
    """Never claimed: created (and due) at `at`."""
    return {"created_at": at, "updated_at": at, "next_attempt_at": at}


def _in_flight(created: dt.datetime, now: dt.datetime) -> dict[str, object]:
    """Claimed just now, its lease running."""
    return {
        "created_at": created,
        "updated_at": now,
        "next_attempt_at": now + dt.timedelta(seconds=40),
    }


def test_a_delivery_waiting_behind_the_backlog_is_not_resent(
    settings: ControlSettings, seed: Seed
) -> None:
    async def go() -> list[uuid.UUID]:
        now = dt.datetime.now(dt.UTC)  # when the test runs, not when it is imported
        # Given workers attempting a delivery of 90 s ago, and one of 60 s ago still queued
        working, waiting = await _deliveries(settings, seed, 2)
        await _set(settings, working, **_in_flight(now - dt.timedelta(seconds=90), now))
        await _set(settings, waiting, **_queued(now - dt.timedelta(seconds=60)))
        # When the reconciler runs / Then it leaves the queued one to the workers
        return await _reconcile(settings)

    assert run(go()) == []


def test_a_lost_message_behind_the_workers_is_resent(settings: ControlSettings, seed: Seed) -> None:
    async def go() -> tuple[uuid.UUID, list[uuid.UUID]]:
        now = dt.datetime.now(dt.UTC)  # when the test runs, not when it is imported
        # Given workers at deliveries of 60 s ago, and one of 120 s ago never claimed
        working, lost = await _deliveries(settings, seed, 2)
        await _set(settings, working, **_in_flight(now - dt.timedelta(seconds=60), now))
        await _set(settings, lost, **_queued(now - dt.timedelta(seconds=120)))
        # When the reconciler runs / Then the passed-over one is sent again
        return lost, await _reconcile(settings)

    lost, sent = run(go())
    assert sent == [lost]


def test_an_expired_claim_is_resent_whatever_the_backlog(
    settings: ControlSettings, seed: Seed
) -> None:
    async def go() -> tuple[uuid.UUID, list[uuid.UUID]]:
        now = dt.datetime.now(dt.UTC)  # when the test runs, not when it is imported
        # Given a backlog being worked on, and a newer delivery whose worker died mid-attempt
        working, dead = await _deliveries(settings, seed, 2)
        await _set(settings, working, **_in_flight(now - dt.timedelta(seconds=90), now))
        await _set(
            settings,
            dead,
            created_at=now - dt.timedelta(seconds=80),
            updated_at=now - dt.timedelta(seconds=75),  # claimed then
            next_attempt_at=now - dt.timedelta(seconds=35),  # the lease ran out
        )
        # When the reconciler runs / Then it is sent again
        return dead, await _reconcile(settings)

    dead, sent = run(go())
    assert sent == [dead]


def test_with_nothing_in_flight_every_overdue_delivery_is_resent(
    settings: ControlSettings, seed: Seed
) -> None:
    async def go() -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        now = dt.datetime.now(dt.UTC)  # when the test runs, not when it is imported
        # Given overdue deliveries never claimed and no worker attempting anything
        # (a flushed broker, say)
        ids = await _deliveries(settings, seed, 2)
        for i, delivery_id in enumerate(ids):
            await _set(settings, delivery_id, **_queued(now - dt.timedelta(seconds=60 + i)))
        # When the reconciler runs / Then all of them are sent again
        return ids, await _reconcile(settings)

    ids, sent = run(go())
    assert sorted(sent) == sorted(ids)
