"""A scan floods the real edge while visitors follow real links (ADR 0013).

While the projection is complete, 20,000 unknown slugs and 2,000 unknown hosts cost the
control plane nothing; after FLUSHALL the live links keep redirecting, control-plane
look-ups stay within the per-worker cap, and the relay makes misses authoritative again by
itself.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid

import httpx2 as httpx
import redis

from shared.keys import PROJECTION_MARKER
from tests.e2e.conftest import Up

KNOWN = 20
UNKNOWN_SLUGS = 20_000
UNKNOWN_HOSTS = 2_000


def _metric(http: httpx.Client, edge_url: str, name: str) -> float:
    for line in http.get(f"{edge_url}/_/metrics").text.splitlines():
        if line.startswith(f"ricochet_edge_{name} "):
            return float(line.split()[1])
    return 0.0


def _settled_metric(http: httpx.Client, edge_url: str, name: str) -> float:
    """Workers mirror their counters into the metrics files once a second."""
    time.sleep(1.2)
    return _metric(http, edge_url, name)


async def _flood(
    edge_url: str, requests: list[tuple[str, str]], known: list[str], concurrency: int = 48
) -> tuple[dict[int, int], list[int]]:
    """Send every (host, slug) once, `concurrency` at a time, while a visitor keeps
    following the known links; returns the flood's statuses and the visitor's."""
    statuses: dict[int, int] = {}
    visitor: list[int] = []
    queue = iter(requests)
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=10, limits=limits, follow_redirects=False) as http:

        async def scanner() -> None:
            for host, slug in queue:
                response = await http.get(f"{edge_url}/{slug}", headers={"host": host})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        async def visit() -> None:
            n = 0
            while not done.is_set():
                response = await http.get(f"{edge_url}/{known[n % len(known)]}")
                visitor.append(response.status_code)
                n += 1

        watcher = asyncio.create_task(visit())
        await asyncio.gather(*(scanner() for _ in range(concurrency)))
        done.set()
        await watcher
    return statuses, visitor


def _wait_marker(redis_url: str, timeout: float) -> float:
    """When (monotonic) the projection marker is present, polling every 10 ms."""
    start = time.monotonic()
    with redis.Redis.from_url(redis_url) as store:
        while not store.exists(PROJECTION_MARKER):
            assert time.monotonic() - start < timeout, "the projection never became complete"
            time.sleep(0.01)
    return time.monotonic()


def test_a_flood_of_unknown_slugs_and_hosts_never_reaches_the_control_plane(up: Up) -> None:
    # Given the whole system, 1,000 live links and a complete projection
    info = up.start()
    edge, control = info["edge_url"], info["control_url"]
    auth = {"authorization": f"Bearer {info['api_key']}"}
    store = redis.Redis.from_url(info["redis_url"])
    host = edge.split("//", 1)[1]
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        items = [
            {"destination": f"https://example.com/{n}", "slug": f"live-{n}"} for n in range(1000)
        ]
        created = http.post(f"{control}/api/v1/links/bulk", json={"items": items}, headers=auth)
        assert created.status_code == 200, created.text
        known = [f"live-{n}" for n in range(KNOWN)]
        deadline = time.monotonic() + 15
        while http.get(f"{edge}/live-999").status_code != 302:
            assert time.monotonic() < deadline, "links never reached the edge"
            time.sleep(0.05)
        _wait_marker(info["redis_url"], 30)
        for slug in known:
            assert http.get(f"{edge}/{slug}").status_code == 302  # now in the worker's cache
        before = _settled_metric(http, edge, "control_fallbacks_total")

        # When 20,000 unknown slugs and 2,000 unknown hosts arrive during visits
        scan = [(host, f"nope-{uuid.uuid4().hex[:12]}") for _ in range(UNKNOWN_SLUGS)]
        scan += [(f"{uuid.uuid4().hex[:10]}.example", "live-1") for _ in range(UNKNOWN_HOSTS)]
        statuses, visits = asyncio.run(_flood(edge, scan, known))

        # Then every one is a 404, the visitors were redirected, and the control plane
        # was never asked
        assert statuses == {404: UNKNOWN_SLUGS + UNKNOWN_HOSTS}
        assert visits
        assert set(visits) == {302}
        assert _settled_metric(http, edge, "control_fallbacks_total") == before

        # When Redis loses everything
        store.flushall()
        flushed = time.monotonic()
        back: list[float] = []
        watcher = threading.Thread(target=lambda: back.append(_wait_marker(info["redis_url"], 60)))
        watcher.start()
        # Then live links still redirect: cached ones, and ones no worker had cached yet
        # (from the control plane, within the cap)
        assert {http.get(f"{edge}/{slug}").status_code for slug in known} == {302}
        uncached = [http.get(f"{edge}/live-{n}").status_code for n in range(900, 905)]
        assert set(uncached) <= {302, 503}, uncached
        assert 302 in uncached, uncached
        # And a scan meanwhile stays within the cap (20 a second per worker, a second's burst)
        rescan: list[tuple[str, str]] = [(host, f"again-{n}") for n in range(3000)]
        statuses, visits = asyncio.run(_flood(edge, rescan, known))
        elapsed = time.monotonic() - flushed
        assert set(statuses) <= {404, 503}, statuses
        assert set(visits) == {302}
        fallbacks = _settled_metric(http, edge, "control_fallbacks_total") - before
        assert fallbacks <= 20 * (elapsed + 2.5) + 20, (fallbacks, elapsed)

        # And the relay makes misses authoritative again by itself
        watcher.join()
        assert back, "the projection never became complete again"
        print(f"projection authoritative again {back[0] - flushed:.2f} s after FLUSHALL")
        assert http.get(f"{edge}/live-950").status_code == 302  # rebuilt into Redis
        settled = _settled_metric(http, edge, "control_fallbacks_total")
        last: list[tuple[str, str]] = [(host, f"late-{n}") for n in range(2000)]
        statuses, _ = asyncio.run(_flood(edge, last, known))
        assert statuses == {404: 2000}
        assert _settled_metric(http, edge, "control_fallbacks_total") == settled

    store.close()
    assert up.stop(signal.SIGINT) == 0
