"""Run a long-lived async service with clean signal handling (relay, ingest)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def ready_marker(path: Path | None) -> Callable[[], None]:
    """Tell a supervisor we are ready by creating a file it waits for."""

    def mark() -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("ready\n")

    return mark


def run_service(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        import uvloop

        uvloop.run(_run())
    except ImportError:  # uvloop is optional at run time; asyncio works, slower
        asyncio.run(_run())
