"""The edge app against real Redis: resolve, redirect, capture, invalidation."""

from __future__ import annotations

import time
from collections.abc import Iterator

import msgspec
import pytest
import redis
from starlette.testclient import TestClient

from control.settings import ControlSettings
from edge.app import create_app
from edge.settings import EdgeSettings
from shared.clicks import BATCH_FIELD, decode_batch
from shared.keys import INVALIDATE_CHANNEL, click_streams, link_key
from shared.records import LinkRecord, encode_link


def _project(client: redis.Redis, domain: str, slug: str, record: LinkRecord) -> None:
    client.hset(link_key(domain, slug), mapping={"v": record.version, "r": encode_link(record)})
    client.publish(INVALIDATE_CHANNEL, link_key(domain, slug))


@pytest.fixture
def store(control_settings: ControlSettings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(control_settings.redis_url)
    yield client
    client.close()


def _edge(control_settings: ControlSettings, **overrides: object) -> TestClient:
    cfg = msgspec.structs.replace(
        EdgeSettings(
            redis_url=control_settings.redis_url, default_domain="sho.rt", capture_flush_ms=10
        ),
        **overrides,
    )
    return TestClient(create_app(cfg), base_url="http://sho.rt", follow_redirects=False)


RECORD = LinkRecord("link-1", "ws-1", "dom-1", 1, "https://dest.example/landing?a=1", 302)


def _stream_events(store: redis.Redis, shards: int = 4) -> list:
    events = []
    for stream in click_streams(shards):
        for _, fields in store.xrange(stream):
            events.extend(decode_batch(fields[BATCH_FIELD]))
    return events


def test_known_slug_redirects_with_the_link_status(control_settings, store) -> None:  # type: ignore[no-untyped-def]
    _project(store, "sho.rt", "launch", msgspec.structs.replace(RECORD, status=301))

    with _edge(control_settings) as edge:
        response = edge.get("/launch")

    assert response.status_code == 301
    assert response.headers["location"] == "https://dest.example/landing?a=1"
    assert "noindex" in response.headers["x-robots-tag"]


def test_slug_and_host_match_case_insensitively_without_port(control_settings, store) -> None:  # type: ignore[no-untyped-def]
    _project(store, "sho.rt", "launch", RECORD)

    with _edge(control_settings) as edge:
        response = edge.get("/LAUNCH", headers={"host": "SHO.RT:8443"})

    assert response.status_code == 302


def test_unknown_slug_answers_404(control_settings, store) -> None:  # type: ignore[no-untyped-def]
    with _edge(control_settings) as edge:
        assert edge.get("/nothing-here").status_code == 404


def test_only_configured_aliases_serve_the_default_domains_links(control_settings, store) -> None:  # type: ignore[no-untyped-def]
    _project(store, "sho.rt", "launch", RECORD)

    with _edge(control_settings) as strict:
        assert strict.get("/launch", headers={"host": "127.0.0.1:8400"}).status_code == 404
    with _edge(control_settings, default_domain_aliases="127.0.0.1, Localhost") as aliased:
        assert aliased.get("/launch", headers={"host": "127.0.0.1:8400"}).status_code == 302
        assert aliased.get("/launch", headers={"host": "localhost"}).status_code == 302
        # A domain somebody else pointed at the edge republishes nothing.
        assert aliased.get("/launch", headers={"host": "evil.example"}).status_code == 404


def test_a_missing_or_malformed_host_answers_400(control_settings, store) -> None:  # type: ignore[no-untyped-def]
    _project(store, "sho.rt", "launch", RECORD)

    with _edge(control_settings) as edge:
        assert edge.get("/launch", headers={"host": ""}).status_code == 400
        assert edge.get("/launch", headers={"host": b"\xff\xfe.com"}).status_code == 400
        assert edge.get("/launch", headers={"host": "a b.com"}).status_code == 400
        assert edge.get("/launch").status_code == 302  # the same edge still serves others


def test_paths_no_slug_can_have_answer_404_without_a_look_up(control_settings, store) -> None:  # type: ignore[no-untyped-def]
    with _edge(control_settings) as edge:
        for path in ("/.env", "/wp-login.php", "/-x", "/" + "x" * 65, "/\u212a"):
            assert edge.get(path).status_code == 404, path
        metrics = edge.get("/_/metrics").text

    assert "ricochet_edge_cache_misses_total 0.0" in metrics


def test_click_is_captured_into_a_stream_with_visitor_headers(control_settings, store) -> None:  # type: ignore[no-untyped-def]
    _project(store, "sho.rt", "launch", RECORD)

    with _edge(control_settings) as edge:
        edge.get("/launch", headers={"user-agent": "UA/1", "referer": "https://t.co/x"})
        edge.get("/launch?qr=1")
    # Leaving the context runs the lifespan shutdown, which drains the buffer.

    events = sorted(_stream_events(store), key=lambda e: e.ts_ms)
    assert [e.touch for e in events] == ["link", "qr"]
    assert events[0].link_id == "link-1"
    assert events[0].user_agent == "UA/1"
    assert events[0].referrer == "https://t.co/x"
    assert len({e.id for e in events}) == 2


def test_no_click_is_captured_when_capture_is_off(control_settings, store) -> None:  # type: ignore[no-untyped-def]
    _project(store, "sho.rt", "launch", RECORD)

    with _edge(control_settings, capture=False) as edge:
        assert edge.get("/launch").status_code == 302

    assert _stream_events(store) == []


def test_destination_change_reaches_a_warm_cache_through_invalidation(
    control_settings, store
) -> None:  # type: ignore[no-untyped-def]
    _project(store, "sho.rt", "launch", RECORD)

    with _edge(control_settings, cache_ttl_s=3600) as edge:
        assert edge.get("/launch").headers["location"] == RECORD.destination  # now cached
        changed = msgspec.structs.replace(RECORD, version=2, destination="https://new.example/")
        _project(store, "sho.rt", "launch", changed)
        deadline = time.monotonic() + 5
        while edge.get("/launch").headers["location"] != changed.destination:
            assert time.monotonic() < deadline, "cache was never invalidated"
            time.sleep(0.01)


def test_ops_endpoints_answer(control_settings, store) -> None:  # type: ignore[no-untyped-def]
    with _edge(control_settings) as edge:
        assert edge.get("/_/livez").status_code == 200
        ready = edge.get("/_/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"


def test_head_request_redirects_without_counting_a_click(control_settings, store) -> None:  # type: ignore[no-untyped-def]
    _project(store, "sho.rt", "launch", RECORD)

    with _edge(control_settings) as edge:
        assert edge.head("/launch").status_code == 302

    assert _stream_events(store) == []
