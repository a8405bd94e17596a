"""The ceiling: a bare ASGI app answering a constant 302, served by Granian exactly like the
edge (same interface, loop and workers), so the ratio edge / bare isolates our own cost."""

from __future__ import annotations

from typing import Any

_START = {
    "type": "http.response.start",
    "status": 302,
    "headers": [
        (b"location", b"https://example.com/landing"),
        (b"cache-control", b"private, no-cache"),
        (b"content-length", b"0"),
    ],
}
_BODY = {"type": "http.response.body", "body": b""}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(_START)
    await send(_BODY)


def create_app() -> Any:
    """Factory, so Granian serves this exactly as `ricochet edge` serves the edge."""
    return app
