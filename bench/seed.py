"""Links for a bench to visit: created through the bulk API, then fetched once at the edge.

Warming uses HEAD, which resolves (and so caches) a link exactly as GET does but counts no
click, so the warm-up adds nothing to ingest's queue before the measured run.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench.stack import Target, host_of

BULK_MAX = 1000


@dataclass(frozen=True)
class Seeded:
    host: str  # Host header the links answer under
    slugs: list[str]  # most popular first (the order visitors' Zipf ranks follow)
    link_ids: list[str]
    seconds: float

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps({"host": self.host, "slugs": self.slugs, "ids": self.link_ids}))
        return path


def link_items(run: str, start: int, count: int) -> list[dict[str, Any]]:
    """Campaign-shaped links (seed 001's matrix): brands, channels, UTM values, tags."""
    return [
        {
            "destination": f"https://brand{i % 5}.example/launch?ref={i}",
            "slug": f"b{run}-{i}",
            "utm_source": f"channel-{i % 10}",
            "utm_medium": "cpc",
            "utm_campaign": f"brand{i % 5}-q2",
            "tags": [f"brand{i % 5}", f"channel-{i % 10}"],
        }
        for i in range(start, start + count)
    ]


def seed_links(target: Target, count: int) -> Seeded:
    run = uuid.uuid4().hex[:6]
    slugs: list[str] = []
    ids: list[str] = []
    host = ""
    started = time.perf_counter()
    with httpx.Client(timeout=120) as http:
        for start in range(0, count, BULK_MAX):
            items = link_items(run, start, min(BULK_MAX, count - start))
            response = http.post(
                f"{target.control_url}/api/v1/links/bulk",
                json={"items": items},
                headers=target.auth,
            )
            if response.status_code != 200:
                raise RuntimeError(f"seeding: {response.status_code} {response.text[:300]}")
            for result in response.json()["results"]:
                if result["status"] != "created":
                    raise RuntimeError(f"seeding: {json.dumps(result)[:300]}")
                link = result["link"]
                slugs.append(link["slug"])
                ids.append(link["id"])
                host = host_of(link["short_url"])
    return Seeded(host, slugs, ids, time.perf_counter() - started)


def warm(edge_url: str, host: str, slugs: list[str], passes: int = 1) -> float:
    """HEAD every slug `passes` times over fresh connections (one pass per edge worker
    gives each worker's cache a fair chance to see each link); returns seconds taken."""
    started = time.perf_counter()
    asyncio.run(_warm(edge_url, host, slugs, passes))
    return time.perf_counter() - started


async def _warm(edge_url: str, host: str, slugs: list[str], passes: int) -> None:
    for _ in range(passes):
        queue: asyncio.Queue[str] = asyncio.Queue()
        for slug in slugs:
            queue.put_nowait(slug)
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(
            base_url=edge_url, headers={"host": host}, limits=limits, timeout=30
        ) as http:
            await asyncio.gather(*(_head_all(http, queue) for _ in range(16)))


async def _head_all(http: httpx.AsyncClient, queue: asyncio.Queue[str]) -> None:
    while not queue.empty():
        slug = queue.get_nowait()
        response = await http.head(f"/{slug}")
        if response.status_code >= 400:
            raise RuntimeError(f"warming /{slug}: {response.status_code}")
