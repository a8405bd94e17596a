"""The engine's statements, coalesced per database engine and event loop.

Each attempt asks for its claim and its record one delivery at a time (that
keeps the engine's logic per delivery); here concurrent asks become one statement each
(control/delivery/coalesce.py), on a pooled connection kept while the batches keep coming.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
import weakref
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from control.delivery import repository
from control.delivery.coalesce import Coalescer

EARLY_S = 1.0  # a message may arrive this much before next_attempt_at and still run


class Statements:
    def __init__(self, db: AsyncEngine) -> None:
        self.db = db
        self.loop = asyncio.get_running_loop()
        self.claim = Coalescer[repository.Conn, tuple[uuid.UUID, float], repository.ClaimResult](
            self._connection, self._claims
        )
        self.record = Coalescer[repository.Conn, dict[str, Any], bool](
            self._connection, self._records
        )

    def _connection(self) -> AbstractAsyncContextManager[repository.Conn]:
        return repository.connection(self.db)

    async def _claims(
        self, conn: repository.Conn, items: list[tuple[uuid.UUID, float]]
    ) -> list[repository.ClaimResult]:
        """Claims share one clock; `lease_s` is per item (one setting per process, so one
        statement almost always)."""
        now = dt.datetime.now(dt.UTC)
        found: dict[tuple[uuid.UUID, float], repository.ClaimResult] = {}
        for lease_s in dict.fromkeys(lease for _, lease in items):
            ids = list(dict.fromkeys(i for i, lease in items if lease == lease_s))
            results = await repository.claim(
                conn,
                ids,
                now,
                due_by=now + dt.timedelta(seconds=EARLY_S),
                lease_until=now + dt.timedelta(seconds=lease_s),
            )
            for delivery_id, result in zip(ids, results, strict=True):
                found[(delivery_id, lease_s)] = result
        # The same delivery asked for twice in one batch (a duplicate message): one claim
        # wins; the other caller sees it claimed, which is what it would see a moment later.
        answered: set[tuple[uuid.UUID, float]] = set()
        out: list[repository.ClaimResult] = []
        for item in items:
            result = found[item]
            if item in answered and isinstance(result, repository.Claimed):
                result = "pending"  # claimed by the other caller: not due for this one
            answered.add(item)
            out.append(result)
        return out

    async def _records(
        self, conn: repository.Conn, attempts: list[dict[str, Any]]
    ) -> Sequence[bool]:
        """One statement per round of distinct deliveries (two attempts of one delivery
        recorded together happen only after a lease ran out; the second then loses)."""
        done: list[bool | None] = [None] * len(attempts)
        while None in done:
            seen: set[uuid.UUID] = set()
            round_ = []
            for index, attempt in enumerate(attempts):
                if done[index] is None and attempt["id"] not in seen:
                    seen.add(attempt["id"])
                    round_.append(index)
            results = await repository.record(conn, [attempts[i] for i in round_])
            for index, ok in zip(round_, results, strict=True):
                done[index] = ok
        return [bool(ok) for ok in done]


_by_engine: weakref.WeakKeyDictionary[AsyncEngine, Statements] = weakref.WeakKeyDictionary()


def for_engine(db: AsyncEngine) -> Statements:
    """This engine's statements on the running loop (a new loop gets new ones)."""
    statements = _by_engine.get(db)
    if statements is None or statements.loop is not asyncio.get_running_loop():
        statements = _by_engine[db] = Statements(db)
    return statements
