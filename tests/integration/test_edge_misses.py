"""Redis misses at the edge (ADR 0013), against real Redis and a real loopback control plane.

While the projection marker is present a miss is a 404 and the control plane never hears of
it; without the marker, misses are asked of the control plane, capped per worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgspec
import pytest
import redis
from starlette.testclient import TestClient

from control.settings import ControlSettings
from edge.app import create_app
from edge.settings import EdgeSettings
from shared.keys import PROJECTION_MARKER, link_key
from shared.records import LinkRecord, encode_link

TOKEN = "i" * 32
RECORD = LinkRecord("link-1", "ws-1", "dom-1", 1, "https://dest.example/", 302)


class Control:
    """A loopback stand-in for `GET /internal/v1/resolve` that counts what it is asked."""

    def __init__(self, known: dict[str, bytes]) -> None:
        self.known = known
        self.asked: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.asked.append(self.path)
                body = next((v for k, v in owner.known.items() if k in self.path), None)
                self.send_response(200 if body else 404)
                self.send_header("content-length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Control:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def store(control_settings: ControlSettings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(control_settings.redis_url)
    yield client
    client.close()


@pytest.fixture
def control() -> Iterator[Control]:
    with Control({"slug=lost": encode_link(RECORD)}) as server:
        yield server


def _edge(control_settings: ControlSettings, control: Control, **overrides: object) -> TestClient:
    cfg = msgspec.structs.replace(
        EdgeSettings(
            redis_url=control_settings.redis_url,
            default_domain="sho.rt",
            control_url=control.url,
            internal_token=TOKEN,
        ),
        **overrides,
    )
    return TestClient(create_app(cfg), base_url="http://sho.rt", follow_redirects=False)


def _metric(edge: TestClient, name: str) -> float:
    for line in edge.get("/_/metrics").text.splitlines():
        if line.startswith(f"ricochet_edge_{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def _subscribed(edge: TestClient) -> None:
    deadline = time.monotonic() + 10
    while not edge.get("/_/readyz").json()["invalidations"]:
        assert time.monotonic() < deadline, "the edge never subscribed to invalidations"
        time.sleep(0.01)


def test_while_the_projection_is_complete_a_miss_never_reaches_the_control_plane(
    control_settings: ControlSettings, store: redis.Redis, control: Control
) -> None:
    # Given a complete projection holding one link
    store.hset(PROJECTION_MARKER, mapping={"seq": 1, "since": 1})
    store.hset(link_key("sho.rt", "here"), mapping={"v": 1, "r": encode_link(RECORD)})

    with _edge(control_settings, control) as edge:
        # When visitors ask for unknown slugs, on known and unknown hosts
        statuses = {edge.get(f"/nope-{n}").status_code for n in range(50)}
        for n in range(50):
            statuses.add(edge.get("/nope", headers={"host": f"h{n}.example"}).status_code)
        known = edge.get("/here").status_code
        authoritative = _metric(edge, "authoritative_misses_total")

    # Then every one is a 404 answered from Redis alone
    assert statuses == {404}
    assert known == 302
    assert control.asked == []
    assert authoritative == 100


def test_without_the_marker_a_lost_link_is_filled_from_the_control_plane(
    control_settings: ControlSettings, store: redis.Redis, control: Control
) -> None:
    # Given Redis without the marker (flushed) and without the link
    with _edge(control_settings, control) as edge:
        # When a visitor follows the lost link
        response = edge.get("/lost")

    # Then the control plane answered it
    assert response.status_code == 302
    assert response.headers["location"] == RECORD.destination
    assert len(control.asked) == 1


def test_without_the_marker_control_plane_look_ups_are_capped_per_worker(
    control_settings: ControlSettings, store: redis.Redis, control: Control
) -> None:
    # Given an edge allowed 5 control-plane look-ups a second
    with _edge(control_settings, control, control_lookups_per_s=5.0) as edge:
        # When a scan sends 60 distinct unknown slugs as fast as it can
        start = time.monotonic()
        statuses = [edge.get(f"/scan-{n}") for n in range(60)]
        elapsed = time.monotonic() - start
        capped = _metric(edge, "control_capped_total")

    # Then a burst's worth (and what the bucket refilled meanwhile) reached the control
    # plane, and the rest answered 503 to retry
    assert 5 <= len(control.asked) <= 5 + int(elapsed * 5) + 1
    refused = [r for r in statuses if r.status_code == 503]
    assert len(refused) == 60 - len(control.asked) == capped
    assert all(r.headers["retry-after"] == "2" for r in refused)


def test_a_scan_of_unknown_slugs_does_not_evict_cached_links(
    control_settings: ControlSettings, store: redis.Redis, control: Control
) -> None:
    # Given a cached link in a small cache, and a complete projection
    store.hset(PROJECTION_MARKER, mapping={"seq": 1, "since": 1})
    store.hset(link_key("sho.rt", "hot"), mapping={"v": 1, "r": encode_link(RECORD)})
    with _edge(control_settings, control, cache_size=10, negative_cache_size=10) as edge:
        _subscribed(edge)  # subscribing clears the cache: only then is "cached" sure
        assert edge.get("/hot").status_code == 302
        store.delete(link_key("sho.rt", "hot"))  # only the worker's cache still has it
        # When a scan far larger than both caches passes
        for n in range(100):
            assert edge.get(f"/scan-{n}").status_code == 404
        # Then the hot link is still answered from the cache
        assert edge.get("/hot").status_code == 302


def test_a_redis_that_forgot_its_scripts_still_answers(
    control_settings: ControlSettings, store: redis.Redis, control: Control
) -> None:
    # Given a complete projection, and a Redis that lost its scripts (as after a restart)
    store.hset(PROJECTION_MARKER, mapping={"seq": 1, "since": 1})
    store.hset(link_key("sho.rt", "here"), mapping={"v": 1, "r": encode_link(RECORD)})
    with _edge(control_settings, control) as edge:
        assert edge.get("/first").status_code == 404
        store.script_flush()

        # When visitors come, then the edge loads its script again and answers as before
        assert edge.get("/here").status_code == 302
        assert edge.get("/second").status_code == 404
    assert control.asked == []
