"""A real `ricochet edge` (two Granian workers) under password guessing and oversized bodies.

Each argon2 verify is counted by `ricochet_edge_password_checks_total`, so "at most the limit
in verifies" is measured, not inferred from status codes.
"""

from __future__ import annotations

import asyncio
import select
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2 as httpx
import psutil
import pytest
import redis
from argon2 import PasswordHasher

from edge.password import MAX_FORM_BYTES, PREFIX_FACTOR
from ricochet.embedded import EmbeddedRedis
from shared.keys import link_key
from shared.records import LinkRecord, encode_link
from tests.e2e.conftest import spawn_edge

LIMIT = 10
FIFTY_MB = 50 * 1024 * 1024
HASH = PasswordHasher().hash("the right one")


@dataclass
class Edge:
    base: str
    port: int
    proc: subprocess.Popen[bytes]
    store: redis.Redis

    def link(self, slug: str, n: int, password: bool = True) -> None:
        record = LinkRecord(
            f"00000000-0000-4000-8000-{n:012d}",
            "ws",
            "dom",
            1,
            "https://example.com/",
            password_hash=HASH if password else "",
        )
        self.store.hset(link_key("localhost", slug), mapping={"v": 1, "r": encode_link(record)})

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.base}/_/metrics").text
        for line in text.splitlines():
            if line.startswith(f"ricochet_edge_{name} "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in metrics:\n{text[:2000]}")

    def metric_reaches(self, name: str, value: float, timeout: float = 10) -> float:
        """Workers mirror their counters once a second: wait for the sum to arrive."""
        deadline = time.monotonic() + timeout
        while (seen := self.metric(name)) < value and time.monotonic() < deadline:
            time.sleep(0.2)
        return seen

    def worker_rss(self) -> int:
        return sum(p.memory_info().rss for p in psutil.Process(self.proc.pid).children())


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    home = tmp_path_factory.mktemp("password-race")
    server = EmbeddedRedis(home / "redis", durable=False)
    url = server.start()
    proc, port = spawn_edge(
        url,
        home / "spool",
        {
            "RICOCHET_PASSWORD_ATTEMPTS": str(LIMIT),
            # The test talks to the edge from 127.0.0.1: that is the "proxy" whose
            # X-Forwarded-For is believed (the /64 test sends IPv6 visitors through it).
            "RICOCHET_TRUSTED_PROXIES": "127.0.0.0/8",
        },
    )
    store = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while len(psutil.Process(proc.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        yield Edge(f"http://127.0.0.1:{port}", port, proc, store)
    finally:
        proc.send_signal(signal.SIGTERM)  # Granian's parent stops its workers
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        store.close()
        server.stop()


async def _guess(base: str, slug: str, forwarded: list[str | None]) -> Counter[int]:
    """One wrong password per entry, all at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(forwarded), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one(xff: str | None) -> int:
            headers = {"host": "localhost", **({"x-forwarded-for": xff} if xff else {})}
            form = {"password": "wrong"}
            return (await client.post(f"/{slug}", data=form, headers=headers)).status_code

        return Counter(await asyncio.gather(*(one(xff) for xff in forwarded)))


def test_300_concurrent_wrong_passwords_cost_at_most_the_limit_in_verifies(edge: Edge) -> None:
    # Given a password link and the edge's count of argon2 verifies so far
    edge.link("race", 1)
    checks_before = edge.metric("password_checks_total")
    limited_before = edge.metric("password_limited_total")

    # When 300 wrong passwords arrive at once from one address
    codes = asyncio.run(_guess(edge.base, "race", [None] * 300))

    # Then the limit's worth were checked and refused, the rest refused unchecked
    assert codes == {403: LIMIT, 429: 300 - LIMIT}
    edge.metric_reaches("password_limited_total", limited_before + 300 - LIMIT)
    assert edge.metric("password_checks_total") - checks_before == LIMIT


def test_addresses_of_one_ipv6_64_share_one_budget(edge: Edge) -> None:
    # Given a password link, and 100 visitors of one /64 reaching it through our proxy
    edge.link("race64", 2)
    visitors = [f"2001:db8:1:2::{n:x}" for n in range(100) for _ in range(3)]
    checks_before = edge.metric("password_checks_total")
    limited_before = edge.metric("password_limited_total")

    # When each sends 3 wrong passwords, all at once (no address reaches its own limit)
    codes = asyncio.run(_guess(edge.base, "race64", visitors))

    # Then the /64 as a whole was checked its budget's worth of times
    budget = LIMIT * PREFIX_FACTOR
    assert codes == {403: budget, 429: 300 - budget}
    edge.metric_reaches("password_limited_total", limited_before + 300 - budget)
    assert edge.metric("password_checks_total") - checks_before == budget
    # And a visitor of another /64 is not locked out by them
    other = asyncio.run(_guess(edge.base, "race64", ["2001:db8:1:3::1"]))
    assert other == {403: 1}


# -- bodies ---------------------------------------------------------------------------------


def _send_until_answered(
    port: int, head: str, chunks: Iterator[bytes], pace_s: float = 0.0
) -> tuple[int, int]:
    """Send `head`, then body chunks until the edge answers. (status, body bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent = 0
    answer = b""
    try:
        sock.sendall(head.encode())
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], pace_s)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # it closed on us: read what it said before
            sent += len(chunk)
        while b"\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 "), (answer[:200], sent)
    return int(answer.split()[1]), sent


def _chunks(size: int, total: int) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"a" * size


def _chunked(size: int, total: int) -> Iterator[bytes]:
    for chunk in _chunks(size, total):
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"


def _head(method: str, path: str, framing: str) -> str:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n"
    )


def test_a_50_mb_password_post_is_refused_before_its_body_is_sent(edge: Edge) -> None:
    # Given a password link, and the workers' memory
    edge.link("big", 3)
    rss_before = edge.worker_rss()

    # When a 50 MB form is announced and sent, 64 KB every 5 ms
    status, sent = _send_until_answered(
        edge.port,
        _head("POST", "/big", f"Content-Length: {FIFTY_MB}\r\n"),
        _chunks(65536, FIFTY_MB),
        pace_s=0.005,
    )

    # Then 413 comes back before the first chunk is even needed, and nothing was buffered
    assert status == 413
    assert sent <= 65536
    assert edge.worker_rss() - rss_before < 20 * 1024 * 1024


def test_a_chunked_password_post_past_the_cap_is_refused_as_it_streams(edge: Edge) -> None:
    # Given a password link / When a form of no declared length streams in, 1 KB at a time
    edge.link("chunky", 4)
    status, sent = _send_until_answered(
        edge.port,
        _head("POST", "/chunky", "Transfer-Encoding: chunked\r\n"),
        _chunked(1024, FIFTY_MB),
        pace_s=0.02,
    )

    # Then it is refused soon after passing the cap, not at the end
    assert status == 413
    assert MAX_FORM_BYTES < sent < 64 * 1024


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("PUT", "/big", 405),
        ("PATCH", "/big", 405),
        ("DELETE", "/big", 405),
        ("POST", "/_/metrics", 405),
        ("POST", "/a/b", 404),
        # A POST to a slug is judged by its declared length first, link or no link
        ("POST", "/plain", 413),
        ("POST", "/nosuchlink", 413),
    ],
)
def test_other_requests_with_a_50_mb_body_are_answered_without_reading_it(
    edge: Edge, method: str, path: str, expected: int
) -> None:
    edge.link("big", 3)
    edge.link("plain", 5, password=False)
    rss_before = edge.worker_rss()

    status, sent = _send_until_answered(
        edge.port,
        _head(method, path, f"Content-Length: {FIFTY_MB}\r\n"),
        _chunks(65536, FIFTY_MB),
        pace_s=0.005,
    )

    assert status == expected
    assert sent <= 65536
    assert edge.worker_rss() - rss_before < 20 * 1024 * 1024
