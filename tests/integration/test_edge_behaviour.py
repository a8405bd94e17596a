"""Every redirect behaviour of the edge, against real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import redis
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from control.settings import ControlSettings
from edge.app import create_app
from edge.settings import EdgeSettings
from shared.clicks import BATCH_FIELD, ClickEvent, decode_batch
from shared.keys import INVALIDATE_CHANNEL, click_streams, link_key
from shared.records import LinkRecord, encode_link

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BASE = LinkRecord(
    "11111111-1111-4111-8111-111111111111", "ws-1", "dom-1", 1, "https://dest.example/landing?a=1"
)


@pytest.fixture
def store(control_settings: ControlSettings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(control_settings.redis_url)
    yield client
    client.close()


def project(store: redis.Redis, slug: str, record: LinkRecord, domain: str = "sho.rt") -> None:
    store.hset(link_key(domain, slug), mapping={"v": record.version, "r": encode_link(record)})
    store.publish(INVALIDATE_CHANNEL, link_key(domain, slug))


def edge(settings: ControlSettings, tmp_path: Any, **overrides: Any) -> TestClient:
    cfg = EdgeSettings(
        redis_url=settings.redis_url,
        default_domain="sho.rt",
        capture_flush_ms=10,
        spool_dir=str(tmp_path / "spool"),
        edge_secret="s" * 40,
    )
    return TestClient(
        create_app(msgspec.structs.replace(cfg, **overrides)),
        base_url="http://sho.rt",
        follow_redirects=False,
    )


def events(store: redis.Redis) -> list[ClickEvent]:
    """The clicks in the streams, once each. Capture is at-least-once: a shutdown that cancels
    an XADD in flight writes that batch again when it drains (ingest stores a click id once),
    which under a loaded test run made a test see a click twice."""
    found = {
        e.id: e
        for stream in click_streams(4)
        for _, fields in store.xrange(stream)
        for e in decode_batch(fields[BATCH_FIELD])
    }
    return sorted(found.values(), key=lambda e: e.id)


def rec(**changes: Any) -> LinkRecord:
    return msgspec.structs.replace(BASE, **changes)


# -- status, not found, gone ----------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_each_link_answers_its_own_status(control_settings, store, tmp_path, status) -> None:  # type: ignore[no-untyped-def]
    project(store, "s", rec(status=status))

    with edge(control_settings, tmp_path) as client:
        response = client.get("/s")

    assert response.status_code == status
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["x-robots-tag"] == "noindex, nofollow"


def test_unknown_link_is_a_small_404_page(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with edge(control_settings, tmp_path) as client:
        response = client.get("/nope")

    assert response.status_code == 404
    assert "does not exist" in response.text
    assert events(store) == []


def test_expired_link_is_gone(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "old", rec(expires_at_ms=int(time.time() * 1000) - 1000))

    with edge(control_settings, tmp_path) as client:
        response = client.get("/old")

    assert response.status_code == 410
    assert "expired" in response.text
    assert events(store) == []


def test_expired_link_with_fallback_redirects_there(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "old", rec(expires_at_ms=1, expired_url="https://brand.example/ended"))

    with edge(control_settings, tmp_path) as client:
        response = client.get("/old")

    assert response.status_code == 302
    assert response.headers["location"] == "https://brand.example/ended"


def test_link_not_yet_expired_redirects(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "soon", rec(expires_at_ms=int(time.time() * 1000) + 60_000))

    with edge(control_settings, tmp_path) as client:
        assert client.get("/soon").status_code == 302


def test_taken_down_link_is_gone(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "bad", rec(taken_down=True))

    with edge(control_settings, tmp_path) as client:
        response = client.get("/bad")

    assert response.status_code == 410
    assert "disabled" in response.text


# -- password -------------------------------------------------------------------------


def test_password_link_asks_then_remembers(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "secret", rec(password_hash=PasswordHasher().hash("open sesame")))

    with edge(control_settings, tmp_path) as client:
        form = client.get("/secret")
        wrong = client.post("/secret", data={"password": "nope"})
        right = client.post("/secret", data={"password": "open sesame"})
        after = client.get("/secret")

    assert form.status_code == 200
    assert 'method="post"' in form.text
    assert wrong.status_code == 403
    assert right.status_code == 303
    assert right.headers["location"] == "/secret"
    assert "open sesame" not in right.headers["location"]
    assert after.status_code == 302
    assert after.headers["location"] == BASE.destination
    assert len(events(store)) == 1  # the form views and POSTs are not clicks


def test_password_cookie_is_void_after_the_password_changes(
    control_settings, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    hasher = PasswordHasher()
    project(store, "secret", rec(password_hash=hasher.hash("one")))

    with edge(control_settings, tmp_path, cache_ttl_s=0.0) as client:
        client.post("/secret", data={"password": "one"})
        project(store, "secret", rec(version=2, password_hash=hasher.hash("two")))
        time.sleep(0.05)
        response = client.get("/secret")

    assert response.status_code == 200  # the form again


def test_password_guessing_is_limited(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "secret", rec(password_hash=PasswordHasher().hash("right")))

    with edge(control_settings, tmp_path, password_attempts=3) as client:
        codes = [client.post("/secret", data={"password": f"w{i}"}).status_code for i in range(4)]
        locked = client.post("/secret", data={"password": "right"})

    assert codes == [403, 403, 403, 429]
    assert locked.status_code == 429


def test_a_right_password_does_not_use_up_a_try(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "secret", rec(password_hash=PasswordHasher().hash("right")))

    with edge(control_settings, tmp_path, password_attempts=2) as client:
        rights = [client.post("/secret", data={"password": "right"}) for _ in range(3)]
        client.cookies.clear()
        wrongs = [client.post("/secret", data={"password": "w"}).status_code for _ in range(3)]

    assert [r.status_code for r in rights] == [303, 303, 303]
    assert wrongs == [403, 403, 429]


def test_a_form_larger_than_any_password_is_refused(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "secret", rec(password_hash=PasswordHasher().hash("right")))

    def streamed() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b"password=right"
        yield b"&pad=" + b"x" * 8192

    with edge(control_settings, tmp_path) as client:
        declared = client.post("/secret", content=b"password=" + b"x" * 5000)
        chunked = client.post("/secret", content=streamed())
        text = client.get("/_/metrics").text

    assert declared.status_code == chunked.status_code == 413
    assert "ricochet_edge_bodies_refused_total 2.0" in text
    assert "ricochet_edge_password_checks_total 0.0" in text


def test_a_post_to_a_link_without_a_password_is_not_found(
    control_settings, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    project(store, "open", rec())

    with edge(control_settings, tmp_path) as client:
        response = client.post("/open", data={"password": "x"})

    assert response.status_code == 404


# -- routing ---------------------------------------------------------------------------


def test_country_rule_from_a_trusted_cdn_header(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "r", rec(countries={"DE": "https://brand.de/"}))

    with edge(control_settings, tmp_path, country_header="cf-ipcountry") as client:
        german = client.get("/r", headers={"cf-ipcountry": "de"})
        french = client.get("/r", headers={"cf-ipcountry": "FR"})
    with edge(control_settings, tmp_path) as untrusting:
        spoofed = untrusting.get("/r", headers={"cf-ipcountry": "DE"})

    assert german.headers["location"] == "https://brand.de/"
    assert french.headers["location"] == BASE.destination
    assert spoofed.headers["location"] == BASE.destination


def test_device_rule(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(
        store,
        "app",
        rec(devices={"ios": "https://apps.apple.com/x", "android": "https://play.google.com/x"}),
    )

    with edge(control_settings, tmp_path) as client:
        ios = client.get("/app", headers={"user-agent": IPHONE})
        android = client.get("/app", headers={"user-agent": ANDROID})
        desktop = client.get("/app", headers={"user-agent": DESKTOP})

    assert ios.headers["location"] == "https://apps.apple.com/x"
    assert android.headers["location"] == "https://play.google.com/x"
    assert desktop.headers["location"] == BASE.destination


def test_ab_variants_are_weighted_and_sticky(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "ab", rec(variants=[("https://a.example/", 3), ("https://b.example/", 1)]))

    with edge(control_settings, tmp_path) as client:
        first = client.get("/ab")
        cookie = first.cookies.get("ric_vid")
        # The client keeps the cookie it was given: the same visitor comes back.
        again = {client.get("/ab").headers["location"] for _ in range(5)}
        client.cookies.clear()
        spread = [
            client.get("/ab", headers={"cookie": f"ric_vid=v{i}"}).headers["location"]
            for i in range(400)
        ]

    assert cookie
    assert again == {first.headers["location"]}
    share_a = spread.count("https://a.example/") / len(spread)
    assert 0.65 < share_a < 0.85  # 3:1 weights
    variants = {e.variant for e in events(store)}
    assert variants == {0, 1}


# -- query handling --------------------------------------------------------------------


def test_utm_merge_and_query_forwarding(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "q", rec(utm={"source": "news", "campaign": "spring"}, forward_query=True))

    with edge(control_settings, tmp_path) as client:
        response = client.get("/q?ref=abc&utm_source=visitor&qr=1")

    location = response.headers["location"]
    assert location.startswith("https://dest.example/landing?")
    params = dict(p.split("=") for p in location.split("?")[1].split("&"))
    assert params == {"a": "1", "ref": "abc", "utm_source": "news", "utm_campaign": "spring"}
    [event] = events(store)
    assert event.touch == "qr"
    assert (event.utm_source, event.utm_campaign) == ("news", "spring")


def test_query_is_not_forwarded_unless_the_link_says(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "q", rec())

    with edge(control_settings, tmp_path) as client:
        response = client.get("/q?ref=abc")

    assert response.headers["location"] == BASE.destination


def test_qr_scan_is_marked(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "qr", rec())

    with edge(control_settings, tmp_path) as client:
        client.get("/qr?qr=1")
        client.get("/qr")

    assert [e.touch for e in events(store)] == ["qr", "link"]


def test_click_token_is_appended_when_tracking(control_settings, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project(store, "t", rec(track_conversions=True))

    with edge(control_settings, tmp_path) as client:
        location = client.get("/t").headers["location"]

    [event] = events(store)
    assert location == f"{BASE.destination}&nim_ct=nimct_{event.id}"
    assert event.tracked is True


@pytest.mark.parametrize(
    "destination",
    [
        "https://bucket.s3.amazonaws.com/f.pdf?X-Amz-Algorithm=AWS4&X-Amz-Signature=abc",
        "https://storage.googleapis.com/b/f?X-Goog-Algorithm=x&X-Goog-Signature=abc",
        "https://d1.cloudfront.net/f.mp4?Expires=1&Signature=abc&Key-Pair-Id=K1",
        "https://d1.cloudfront.net/f.mp4?Policy=eyJ&Signature=abc&Key-Pair-Id=K1",
    ],
)
def test_signed_destinations_are_never_modified(
    control_settings, store, tmp_path, destination
) -> None:  # type: ignore[no-untyped-def]
    project(
        store,
        "s",
        rec(
            destination=destination, track_conversions=True, utm={"source": "x"}, forward_query=True
        ),
    )

    with edge(control_settings, tmp_path) as client:
        location = client.get("/s?ref=1").headers["location"]

    assert location == destination
    assert events(store)[0].tracked is False


# -- visitor context -------------------------------------------------------------------


def test_click_carries_the_cdn_country_and_the_raw_visitor_facts(
    control_settings, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    project(store, "v", rec())

    with edge(control_settings, tmp_path, country_header="cf-ipcountry") as client:
        client.get(
            "/v",
            headers={
                "user-agent": IPHONE,
                "referer": "https://l.instagram.com/x",
                "cf-ipcountry": "us",
            },
        )

    [event] = events(store)
    assert event.country == "US"
    assert event.user_agent == IPHONE
    assert event.referrer == "https://l.instagram.com/x"

    assert event.ip == "testclient"  # the socket peer as the server reports it


def test_without_a_trusted_header_the_country_is_left_to_ingest(
    control_settings, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    project(store, "v", rec())

    with edge(control_settings, tmp_path) as client:
        client.get("/v", headers={"cf-ipcountry": "DE", "x-forwarded-for": "8.8.8.8"})

    [event] = events(store)
    assert event.country == ""  # the header is not trusted here
    assert event.ip == "testclient"  # nor is X-Forwarded-For without trusted proxies


def test_country_routing_without_a_header_looks_the_address_up(
    control_settings, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    project(store, "r", rec(countries={"US": "https://brand.us/"}))

    with behind_proxy(control_settings, tmp_path) as client:
        american = client.get("/r", headers={"x-forwarded-for": "8.8.8.8"})
        private = client.get("/r", headers={"x-forwarded-for": "192.168.1.3"})

    assert american.headers["location"] == "https://brand.us/"
    assert private.headers["location"] == BASE.destination


# -- trusted proxies (RICOCHET_TRUSTED_PROXIES) ---------------------------------------

PROXY = ("10.0.0.2", 40000)


def behind_proxy(settings: ControlSettings, tmp_path: Any, **overrides: Any) -> TestClient:
    """An edge trusting 10.0.0.0/8, reached through a proxy at 10.0.0.2."""
    app = edge(settings, tmp_path, trusted_proxies="10.0.0.0/8", **overrides).app
    return TestClient(app, base_url="http://sho.rt", follow_redirects=False, client=PROXY)


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(
    control_settings, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # Given an edge trusting 10/8 and a visitor connecting straight from 203.0.113.9
    project(store, "v", rec())
    app = edge(control_settings, tmp_path, trusted_proxies="10.0.0.0/8").app

    # When it forges X-Forwarded-For
    with TestClient(app, base_url="http://sho.rt", client=("203.0.113.9", 1)) as client:
        client.get("/v", headers={"x-forwarded-for": "8.8.8.8"}, follow_redirects=False)

    # Then the click carries its own address
    [event] = events(store)
    assert event.ip == "203.0.113.9"


def test_from_a_trusted_peer_the_rightmost_untrusted_entry_is_the_client(
    control_settings, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # Given a forged entry, the visitor as the CDN saw it, and the CDN (10.9.9.9) as our
    # balancer (10.0.0.2, the peer) saw it
    project(store, "v", rec())

    with behind_proxy(control_settings, tmp_path) as client:
        client.get("/v", headers={"x-forwarded-for": "1.2.3.4, 8.8.8.8, 10.9.9.9"})

    [event] = events(store)
    assert event.ip == "8.8.8.8"


def test_x_forwarded_proto_from_a_trusted_proxy_makes_the_visitor_cookie_secure(
    control_settings, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    project(store, "ab", rec(variants=[("https://a.example/", 1), ("https://b.example/", 1)]))
    https = {"x-forwarded-proto": "https"}
    app = edge(control_settings, tmp_path, trusted_proxies="10.0.0.0/8").app

    with behind_proxy(control_settings, tmp_path) as proxied:
        secure = proxied.get("/ab", headers=https).headers["set-cookie"]
        plain = proxied.get("/ab", headers={"x-forwarded-proto": "http"}).headers["set-cookie"]
    with TestClient(app, base_url="http://sho.rt", client=("203.0.113.9", 1)) as direct:
        spoofed = direct.get("/ab", headers=https, follow_redirects=False).headers["set-cookie"]

    assert secure.startswith("ric_vid=")
    assert "; Secure" in secure
    assert "Secure" not in plain
    assert "Secure" not in spoofed


def test_x_forwarded_proto_from_a_trusted_proxy_makes_the_password_cookie_secure(
    control_settings, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    project(store, "secret", rec(password_hash=PasswordHasher().hash("right")))
    form = {"password": "right"}
    https = {"x-forwarded-proto": "https"}
    app = edge(control_settings, tmp_path, trusted_proxies="10.0.0.0/8").app

    with behind_proxy(control_settings, tmp_path) as proxied:
        secure = proxied.post("/secret", data=form, headers=https)
    with TestClient(app, base_url="http://sho.rt", client=("203.0.113.9", 1)) as direct:
        spoofed = direct.post("/secret", data=form, headers=https, follow_redirects=False)

    assert secure.status_code == spoofed.status_code == 303
    assert "secure" in secure.headers["set-cookie"].lower()
    assert "secure" not in spoofed.headers["set-cookie"].lower()


# -- operations ------------------------------------------------------------------------


def test_metrics_count_redirects_and_never_a_dropped_click(
    control_settings, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    project(store, "m", rec())

    with edge(control_settings, tmp_path) as client:
        for _ in range(3):
            client.get("/m")
        client.get("/missing")
        text = client.get("/_/metrics").text

    assert "ricochet_edge_redirects_total 3.0" in text
    assert "ricochet_edge_not_found_total 1.0" in text
    assert "ricochet_edge_clicks_dropped_total 0.0" in text
