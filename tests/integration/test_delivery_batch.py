"""Batched delivery (docs/adr/0011-batched-delivery.md): a broker message carries several
delivery ids; a worker attempts them concurrently with shared statements, records every
outcome, and queues the retries. Real PostgreSQL, real receivers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Iterator

import msgspec
import pytest
from sqlalchemy import func, select

from control.db import session_factory
from control.delivery import actors
from control.delivery.models import Delivery, DeliveryAttempt
from control.settings import ControlSettings
from shared.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.integration.conftest import Seed, resources, run
from tests.integration.test_delivery import Receiver, Reply, _emit, _endpoint, _fanout

EVENTS = 20


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(Receiver.running()) for name in ("ok", "flaky", "bad")}


@pytest.fixture
def settings(control_settings: ControlSettings) -> ControlSettings:
    return msgspec.structs.replace(
        control_settings,
        allow_private_destinations=True,
        delivery_schedule_s="1,1,1,1,1",
        delivery_connect_timeout_s=1.0,
        delivery_read_timeout_s=1.0,
        delivery_batch=25,
        delivery_endpoint_concurrency=4,
    )


async def _deliveries(settings: ControlSettings) -> dict[uuid.UUID, tuple[str, int, int]]:
    """delivery id -> (status, attempts, attempt rows)."""
    async with resources(settings) as (db, _), session_factory(db)() as session:
        rows = (
            await session.execute(
                select(
                    Delivery.id,
                    Delivery.status,
                    Delivery.attempts,
                    select(func.count())
                    .where(DeliveryAttempt.delivery_id == Delivery.id)
                    .scalar_subquery(),
                )
            )
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def _until_settled(
    settings: ControlSettings, ids: list[uuid.UUID], within_s: float
) -> dict[uuid.UUID, tuple[str, int, int]]:
    """Poll until none of `ids` is pending or retrying."""
    deadline = time.monotonic() + within_s
    while True:
        state = await _deliveries(settings)
        if all(state[i][0] not in ("pending", "retrying") for i in ids):
            return state
        assert time.monotonic() < deadline, "deliveries did not settle"
        await asyncio.sleep(0.1)


def test_batched_messages_attempt_each_delivery_once_and_record_every_outcome(
    settings: ControlSettings, seed: Seed, receivers: dict[str, Receiver]
) -> None:
    from dramatiq import Worker
    from dramatiq.brokers.stub import StubBroker

    # Given three endpoints: one answering 200, one 503 to every first attempt, one 400
    workspace = seed.alice.workspace_id
    receivers["flaky"].script = [Reply(503)] * EVENTS + [Reply(200)]
    receivers["bad"].script = [Reply(400, b"no")]
    endpoints = {
        name: run(_endpoint(settings, workspace, r.url(), ["link.created"]))
        for name, r in receivers.items()
    }
    # and 20 events, so 60 deliveries
    ids: list[uuid.UUID] = []
    for _ in range(EVENTS):
        event = run(_emit(settings, workspace, "link.created"))
        ids.extend(run(_fanout(settings, event["id"])))
    assert len(ids) == 3 * EVENTS

    broker = actors.configure(settings, StubBroker())
    broker.emit_after("process_boot")
    try:
        # When they are queued, 25 ids per message
        actors.enqueue(ids)
        assert broker.queues[actors.QUEUE].qsize() == 3
        worker = Worker(broker, worker_threads=2)
        worker.start()
        try:
            # Messages are acknowledged once claimed; the attempts (and retries) go on
            run(_until_settled(settings, ids, within_s=30))
        finally:
            worker.stop()
    finally:
        actors._actor = actors._runtime = None

    # Then each endpoint got each event once on the first pass; the flaky one once more
    assert len(receivers["ok"].requests) == EVENTS
    assert len(receivers["bad"].requests) == EVENTS
    assert len(receivers["flaky"].requests) == 2 * EVENTS
    for r in receivers.values():
        assert len({msgspec.json.decode(q.body)["id"] for q in r.requests}) == EVENTS
        for q in r.requests:  # every request signed afresh
            ts = int(q.headers[TIMESTAMP_HEADER.lower()])
            assert verify(q.headers[SIGNATURE_HEADER.lower()], "whsec_current", ts, q.body)
    # and every outcome is recorded: one attempt row per attempt
    state = run(_deliveries(settings))

    async def target_of() -> dict[uuid.UUID, uuid.UUID | None]:
        async with resources(settings) as (db, _), session_factory(db)() as session:
            rows = await session.execute(select(Delivery.id, Delivery.endpoint_id))
            return {r[0]: r[1] for r in rows}

    targets = run(target_of())
    by_name = {v: k for k, v in endpoints.items()}
    outcomes = sorted({(by_name[targets[i]], *state[i]) for i in ids})
    assert outcomes == [
        ("bad", "failed", 1, 1),
        ("flaky", "succeeded", 2, 2),
        ("ok", "succeeded", 1, 1),
    ]


def test_an_id_twice_in_one_message_is_sent_once(
    settings: ControlSettings, seed: Seed, receivers: dict[str, Receiver]
) -> None:
    from dramatiq import Worker
    from dramatiq.brokers.stub import StubBroker

    # Given one delivery whose id a message carries twice (a reconciler re-send met the
    # original in one batch)
    run(_endpoint(settings, seed.alice.workspace_id, receivers["ok"].url(), ["link.created"]))
    event = run(_emit(settings, seed.alice.workspace_id, "link.created"))
    (delivery_id,) = run(_fanout(settings, event["id"]))

    broker = actors.configure(settings, StubBroker())
    broker.emit_after("process_boot")
    try:
        actors.enqueue([delivery_id, delivery_id])
        worker = Worker(broker, worker_threads=1)
        worker.start()
        try:
            broker.join(actors.QUEUE, timeout=10_000)
        finally:
            worker.stop()
    finally:
        actors._actor = actors._runtime = None

    # Then it was sent once and recorded once
    assert len(receivers["ok"].requests) == 1
    assert run(_deliveries(settings))[delivery_id] == ("succeeded", 1, 1)


@pytest.mark.parametrize("taken", [False, True], ids=["renewed", "taken meanwhile"])
def test_a_claim_that_waited_for_the_cap_is_renewed_or_stands_down(
    settings: ControlSettings, seed: Seed, receivers: dict[str, Receiver], taken: bool
) -> None:
    from sqlalchemy import update

    from control.delivery import engine, guard

    # Given one request at a time to an endpoint that takes 0.6 s to answer, and a lease
    # margin of 0.4 s (a claim waiting over 0.2 s for the cap is renewed before sending)
    cfg = msgspec.structs.replace(
        settings, delivery_endpoint_concurrency=1, delivery_lease_margin_s=0.4
    )
    receivers["ok"].script = [Reply(200, delay=0.6)]
    run(_endpoint(cfg, seed.alice.workspace_id, receivers["ok"].url(), ["link.created"]))
    first, second = (
        run(_fanout(cfg, run(_emit(cfg, seed.alice.workspace_id, "link.created"))["id"]))[0]
        for _ in range(2)
    )

    async def both() -> list[engine.AttemptOutcome]:
        async with resources(cfg) as (db, _), guard.client(cfg) as http:
            sessions = session_factory(db)
            attempts = [
                asyncio.ensure_future(engine.attempt(sessions, http, cfg, d))
                for d in (first, second)
            ]
            if taken:
                # While the second waits, its lease runs out and another attempt claims it
                await asyncio.sleep(0.3)
                async with sessions.begin() as session:
                    await session.execute(
                        update(Delivery)
                        .where(Delivery.id == second)
                        .values(next_attempt_at=func.now() + dt.timedelta(minutes=5))
                    )
            return list(await asyncio.gather(*attempts))

    outcomes = run(both())

    # Then the first is sent at once; the second is sent once its claim is renewed, or,
    # its claim taken meanwhile, stands down without sending
    assert outcomes[0].status == "succeeded"
    if taken:
        assert (outcomes[1].status, outcomes[1].error) == ("skipped", "claim lost while waiting")
        assert len(receivers["ok"].requests) == 1
        assert run(_deliveries(cfg))[second] == ("pending", 0, 0)
    else:
        assert outcomes[1].status == "succeeded"
        assert len(receivers["ok"].requests) == 2


def test_a_slow_receivers_backlog_does_not_hold_up_a_fast_one(
    settings: ControlSettings, seed: Seed, receivers: dict[str, Receiver]
) -> None:
    from dramatiq import Worker
    from dramatiq.brokers.stub import StubBroker

    # Given a receiver taking 1.5 s per request, two at a time, and a fast one; one worker
    # thread; 30 deliveries to the slow one queued before 10 to the fast one
    cfg = msgspec.structs.replace(
        settings, delivery_endpoint_concurrency=2, delivery_read_timeout_s=3.0, delivery_batch=10
    )
    workspace = seed.alice.workspace_id
    receivers["flaky"].script = [Reply(200, delay=1.5)]
    run(_endpoint(cfg, workspace, receivers["flaky"].url(), ["link.updated"]))
    run(_endpoint(cfg, workspace, receivers["ok"].url(), ["link.created"]))

    def one(event_type: str) -> uuid.UUID:
        return run(_fanout(cfg, run(_emit(cfg, workspace, event_type))["id"]))[0]

    slow = [one("link.updated") for _ in range(30)]
    fast = [one("link.created") for _ in range(10)]

    broker = actors.configure(cfg, StubBroker(), threads=1)
    broker.emit_after("process_boot")
    try:
        actors.enqueue(slow)
        actors.enqueue(fast)
        worker = Worker(broker, worker_threads=1)
        started = time.monotonic()
        worker.start()
        try:
            # When the worker runs, Then the fast receiver's deliveries are done in a few
            # seconds, while the slow receiver's would take 30 / 2 x 1.5 = 22.5 s
            state = run(_until_settled(cfg, fast, within_s=10))
            fast_done = time.monotonic() - started
            assert all(state[i][0] == "succeeded" for i in fast)
            assert fast_done < 8, fast_done
            assert sum(state[i][0] == "succeeded" for i in slow) < len(slow)
            # and the slow backlog is only waiting (put back while crowded), none lost
            state = run(_until_settled(cfg, slow, within_s=60))
            assert all(state[i] == ("succeeded", 1, 1) for i in slow)
        finally:
            worker.stop()
    finally:
        actors._actor = actors._runtime = None
    assert len(receivers["flaky"].requests) == len(slow)
    assert len(receivers["ok"].requests) == len(fast)
