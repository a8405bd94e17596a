"""CPU per webhook request: the delivery client (aiohttp behind the SSRF guard) against
httpx2, side by side in one run, both posting a signed-size envelope to bench/receiver.py.

This is the measurement behind docs/adr/0011-batched-delivery.md. Run it with
`.venv/bin/python -m bench.http_clients [--requests 5000] [--concurrency 32]`; it prints
requests/s and the client process's CPU per request for each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import httpx2

from bench.stack import ROOT, bench_env
from control.delivery import guard
from control.settings import ControlSettings
from ricochet import procs

BODY = b'{"id":"evt","type":"link.created","created_at":"2026-01-01T00:00:00Z","data":{}}' * 5
HEADERS = {
    "content-type": "application/json",
    "x-nim-timestamp": "1700000000",
    "x-nim-signature": "v1=" + "a" * 64,
}


async def _timed(
    one: Callable[[], Awaitable[None]], n: int, concurrency: int
) -> tuple[float, float]:
    """(requests/s, CPU µs per request) for n requests, `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def go() -> None:
        async with gate:
            await one()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(go() for _ in range(n)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, cpu / n * 1e6


async def _compare(url: str, n: int, concurrency: int) -> list[tuple[str, float, float]]:
    settings = ControlSettings(
        database_url="postgresql://unused/unused",
        redis_url="redis://unused",
        secret_key="x" * 44,
        allow_private_destinations=True,  # the receiver is on loopback
    )
    results = []
    async with guard.client(settings) as session:

        async def delivery_client() -> None:
            await guard.post(session, settings, url, BODY, HEADERS)

        await _timed(delivery_client, min(n, 500), concurrency)  # connections, caches
        results.append(("aiohttp (guard.post)", *await _timed(delivery_client, n, concurrency)))
    async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=200)) as client:

        async def plain_httpx2() -> None:
            response = await client.post(url, content=BODY, headers=HEADERS)
            await response.aread()

        await _timed(plain_httpx2, min(n, 500), concurrency)
        results.append(("httpx2 (plain client)", *await _timed(plain_httpx2, n, concurrency)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    port = procs.free_port(None)
    log = ROOT / ".ricochet" / "bench-http-clients-receiver.log"
    log.parent.mkdir(exist_ok=True)
    receiver = procs.spawn(
        [sys.executable, "-m", "bench.serve", "bench.receiver:create_app", str(port), "1"],
        log=log,
        env=bench_env(),
        cwd=ROOT,
    )
    try:
        if not procs.wait_port(port, time.monotonic() + 30, receiver):
            print(f"the receiver did not start:\n{procs.tail(log)}", file=sys.stderr)
            return 1
        url = f"http://127.0.0.1:{port}/hook"
        rows = asyncio.run(_compare(url, args.requests, args.concurrency))
    finally:
        procs.stop(receiver)
    print(f"{args.requests:,} POSTs, {args.concurrency} in flight, one receiver worker:")
    for name, rate, cpu_us in rows:
        print(f"  {name:24} {rate:8,.0f} req/s  {cpu_us:6,.0f} µs CPU per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
