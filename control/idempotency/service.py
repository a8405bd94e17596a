"""`Idempotency-Key` on POST: the same key and body replay the first response.

The response is stored in the same transaction as the work it describes, so it exists if
and only if the work committed. Two concurrent requests with one key: the second blocks on
the key's unique index until the first commits, finds the key taken, rolls its own work
back and replays the first response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from control.context import AppContext
from control.errors import ApiError, Unprocessable
from control.idempotency import repository
from control.keys.service import Principal

HEADER = "idempotency-key"
REPLAYED = "idempotent-replayed"  # on a stored response answered again
MAX_KEY = 255

# The work: given the open transaction, return (status, JSON body bytes, Location or None).
Work = Callable[[AsyncSession], Awaitable[tuple[int, bytes, str | None]]]


class _Raced(Exception):
    """Another request with the same key committed first."""


def _fingerprint(request: Request, body: bytes) -> bytes:
    return hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + body
    ).digest()


def _response(status: int, body: bytes, location: str | None, replayed: bool) -> Response:
    headers = {"location": location} if location else {}
    if replayed:
        headers[REPLAYED] = "true"
    return Response(body, status, headers, media_type="application/json")


def replayed(response: Response) -> bool:
    """Whether `run` answered a stored response (its work, and side effects, ran before)."""
    return response.headers.get(REPLAYED) == "true"


async def run(ctx: AppContext, request: Request, principal: Principal, work: Work) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        async with ctx.sessions.begin() as session:
            status, body, location = await work(session)
        return _response(status, body, location, replayed=False)
    if not 0 < len(key) <= MAX_KEY or not key.isprintable():
        raise ApiError(
            "invalid_idempotency_key", f"An Idempotency-Key is 1 to {MAX_KEY} printable characters."
        )
    fingerprint = _fingerprint(request, await request.body())
    try:
        async with ctx.sessions.begin() as session:
            stored = await repository.find(session, principal.workspace_id, key)
            if stored is not None:
                return _replay(
                    stored.fingerprint, fingerprint, stored.status, stored.body, stored.location
                )
            status, body, location = await work(session)
            if not await repository.save(
                session, principal.workspace_id, key, fingerprint, status, body, location
            ):
                raise _Raced
    except _Raced:
        async with ctx.sessions.begin() as session:
            stored = await repository.find(session, principal.workspace_id, key)
        assert stored is not None
        return _replay(stored.fingerprint, fingerprint, stored.status, stored.body, stored.location)
    return _response(status, body, location, replayed=False)


def _replay(
    stored_fp: bytes, fingerprint: bytes, status: int, body: bytes, location: str | None
) -> Response:
    if stored_fp != fingerprint:
        raise Unprocessable(
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request; use a new key.",
        )
    return _response(status, body, location, replayed=True)
