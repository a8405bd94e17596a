"""A fast local webhook receiver for `ricochet bench webhooks`, served by Granian (one worker).

Every POST is answered at once (204, or the status last set by `PUT /_status` with the
status as its body) and remembered with its arrival time; nothing is parsed on that path,
so the receiver is never what limits deliveries. `GET /_arrivals` answers what arrived,
parsed then: [arrival unix time, event id, type, created_at, short_code, delivery reason].
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import msgspec

_arrivals: list[tuple[float, bytes, bytes]] = []
_answer = {"type": "http.response.start", "status": 204, "headers": []}
_EMPTY = {"type": "http.response.body", "body": b""}


class _Envelope(msgspec.Struct):
    id: str
    type: str
    created_at: str
    data: dict[str, Any] = {}


_decode = msgspec.json.Decoder(_Envelope).decode


def _parsed() -> list[tuple[float, str, str, float, str, str]]:
    out = []
    for arrived, body, reason in list(_arrivals):
        try:
            env = _decode(body)
            created = dt.datetime.fromisoformat(env.created_at.replace("Z", "+00:00"))
        except (msgspec.DecodeError, ValueError):
            continue
        code = str(env.data.get("short_code", ""))
        out.append((arrived, env.id, env.type, created.timestamp(), code, reason.decode()))
    return out


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["method"] == "GET" and scope["path"] == "/_arrivals":
        body = msgspec.json.encode(_parsed())
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["method"] == "PUT" and scope["path"] == "/_status":
        message = await receive()
        _answer["status"] = int(message.get("body", b"204"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send(_EMPTY)
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    reason = next((v for k, v in scope["headers"] if k == b"x-nim-delivery-reason"), b"")
    _arrivals.append((time.time(), b"".join(chunks), reason))
    await send(_answer)
    await send(_EMPTY)


def create_app() -> Any:
    """Factory, as bench/serve.py expects."""
    return app
