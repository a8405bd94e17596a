"""Click rollups and the analytics API, end to end.

A known mix of clicks goes through the real ingest (re-delivered batches included); the
rollups must equal counts taken straight from the stored `clicks` rows, and every analytics
route must answer what SQL over those raw rows says.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg
import pytest
from starlette.testclient import TestClient

from control.ingest.consumer import Ingest
from control.settings import ControlSettings
from shared.clicks import BATCH_FIELD, ClickEvent, encode_batch
from shared.ids import uuid7
from shared.keys import INGEST_GROUP, click_stream
from tests.integration.conftest import Seed, Tenant, resources, run

T0 = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=3)
DIMENSIONS = (
    "country",
    "device",
    "browser",
    "os",
    "referrer_host",
    "social",
    "utm_source",
    "utm_medium",
    "utm_campaign",
)
AGENTS = {
    "iphone": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/124.0.0.0 Safari/537.36",
    "android": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl": "curl/8.5.0",
}
# What ingest derives from each agent: (device, browser, os, bot).
DERIVED = {
    "iphone": ("mobile", "Mobile Safari", "iOS", False),
    "windows": ("desktop", "Chrome", "Windows", False),
    "android": ("mobile", "Chrome Mobile", "Android", False),
    "googlebot": ("bot", "Googlebot", "Other", True),
    "curl": ("bot", "curl", "Other", True),
}
REFERRERS = ["", "https://l.instagram.com/x", "https://www.google.com/", "https://t.co/abc"]
COUNTRIES = ["US", "DE", "FR", ""]
# A visitor-chosen value that a spreadsheet would run as a formula.
UTMS = [("", "", ""), ("news", "email", "spring"), ("ig", "social", "spring"), ("=cmd", "", "")]


class Dns:
    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}

    async def txt(self, name: str) -> list[str]:
        return self.records.get(name, [])


@pytest.fixture
def client(control_settings: ControlSettings) -> Iterator[tuple[TestClient, Dns]]:
    from control.app import create_app

    dns = Dns()
    settings = msgspec.structs.replace(control_settings, rate_limit_per_minute=0)
    with TestClient(create_app(settings, resolver=dns)) as test_client:
        yield test_client, dns


@dataclass(frozen=True)
class World:
    api: TestClient
    settings: ControlSettings
    seed: Seed
    links: dict[str, dict[str, Any]]  # spring (tag promo, space Marketing), daily (custom
    # domain, tag news), old (deleted), bobs (bob's)
    space_id: str
    events: list[ClickEvent]  # every distinct click pushed
    now_clicks: int  # human clicks on `spring` at the time of the test


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _link(api: TestClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    return dict(_ok(api.post("/api/v1/links", json=body, headers=tenant.auth), 201))


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def _click_id(ts_ms: int) -> str:
    """A UUIDv7 minted at `ts_ms`, as the edge would have: ingest takes the time from it."""
    value = uuid7().int & ((1 << 80) - 1)
    return uuid.UUID(int=(ts_ms << 80) | value).hex


def _event(link: dict[str, Any], ts_ms: int, rng: random.Random, agent: str = "") -> ClickEvent:
    source, medium, campaign = rng.choice(UTMS)
    return ClickEvent(
        id=_click_id(ts_ms),
        ts_ms=ts_ms,
        link_id=link["id"],
        workspace_id=link["workspace_id"],
        domain_id=link["domain_id"],
        touch=rng.choice(["link", "link", "qr"]),
        user_agent=AGENTS[agent or rng.choice(list(AGENTS))],
        referrer=rng.choice(REFERRERS),
        country=rng.choice(COUNTRIES),
        utm_source=source,
        utm_medium=medium,
        utm_campaign=campaign,
    )


def _ingest(settings: ControlSettings, batches: list[list[ClickEvent]], unique: int) -> int:
    """Push the batches round-robin over the shards and ingest until all are consumed."""

    async def go() -> int:
        async with resources(settings) as (engine, redis):
            ingest = Ingest(settings, engine, redis, "t")
            await ingest.ensure_groups()
            for i, batch in enumerate(batches):
                shard = i % settings.click_shards
                await redis.xadd(click_stream(shard), {BATCH_FIELD: encode_batch(batch)})
            while ingest.stored < unique:
                await ingest.step()
            for _ in range(3):  # whatever re-delivered entries are left
                await ingest.step()
            for shard in range(settings.click_shards):
                pending = await redis.xpending(click_stream(shard), INGEST_GROUP)
                assert pending["pending"] == 0
            return ingest.stored

    return int(run(go()))


def _sql(settings: ControlSettings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.libpq_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def world(client: tuple[TestClient, Dns], seed: Seed, control_settings: ControlSettings) -> World:
    api, dns = client
    alice, bob = seed.alice, seed.bob
    space = _ok(api.post("/api/v1/spaces", json={"name": "Marketing"}, headers=alice.auth), 201)
    domain = _ok(
        api.post("/api/v1/domains", json={"name": "go.alice.test"}, headers=alice.auth), 201
    )
    dns.records[domain["verification"]["name"]] = [domain["verification"]["value"]]
    assert (
        _ok(api.post(f"/api/v1/domains/{domain['id']}/verify", headers=alice.auth))["status"]
        == "verified"
    )
    links = {
        "spring": _link(
            api,
            alice,
            destination="https://a.example/spring",
            slug="spring",
            tags=["promo"],
            space="Marketing",
        ),
        "daily": _link(
            api,
            alice,
            destination="https://a.example/daily",
            slug="daily",
            tags=["news"],
            domain="go.alice.test",
        ),
        "old": _link(api, alice, destination="https://a.example/old", slug="old"),
        "bobs": _link(api, bob, destination="https://b.example/", slug="bobs"),
    }
    rng = random.Random(20260310)
    events: list[ClickEvent] = []
    for _ in range(360):
        name = rng.choice(["spring", "spring", "daily", "old"])
        at = T0 + dt.timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))
        events.append(_event(links[name], _ms(at), rng))
    # Outside the range used below: the hour before T0 and the day after it.
    for at in (T0 - dt.timedelta(minutes=30), T0 + SPAN + dt.timedelta(hours=2)):
        events.extend(_event(links["daily"], _ms(at), rng) for _ in range(4))
    # Same instant: export pages must break the tie on the id.
    tied = _ms(T0 + dt.timedelta(hours=5, minutes=7))
    events.extend(_event(links["spring"], tied, rng, "iphone") for _ in range(15))
    events.extend(_event(links["bobs"], _ms(T0 + dt.timedelta(hours=9)), rng) for _ in range(25))
    now_clicks = 3
    events.extend(
        _event(links["spring"], int(time.time() * 1000) - 1000, rng, "windows")
        for _ in range(now_clicks)
    )
    # Batches of 40, then the edge's retries: a whole batch again, one straddling two
    # batches, and one whose first half is new.
    held_back = events[-5:]
    batches = [events[i : i + 40] for i in range(0, len(events) - 5, 40)]
    batches += [batches[0], batches[1][-10:] + batches[2][:10], batches[3][:5] + held_back]
    assert _ingest(control_settings, batches, len(events)) == len(events)
    # A deleted link keeps its history.
    assert api.delete(f"/api/v1/links/{links['old']['id']}", headers=alice.auth).status_code == 204
    return World(api, control_settings, seed, links, space["id"], events, now_clicks)


# -- expectations, straight from the raw clicks ---------------------------------------------


def _raw_where(
    workspace_id: str, start: dt.datetime, end: dt.datetime, link_ids: list[str] | None = None
) -> tuple[str, list[Any]]:
    where = (
        "FROM clicks c JOIN links l ON l.id = c.link_id AND l.workspace_id = c.workspace_id "
        "WHERE c.workspace_id = %s AND c.clicked_at >= %s AND c.clicked_at < %s"
    )
    params: list[Any] = [workspace_id, start, end]
    if link_ids is not None:
        where += " AND c.link_id = ANY(%s::uuid[])"
        params.append(link_ids)
    return where, params


def _raw_counts(
    w: World,
    group: str,
    start: dt.datetime = T0,
    end: dt.datetime = T0 + SPAN,
    *,
    bots: bool = False,
    qr: bool = False,
    link_ids: list[str] | None = None,
) -> dict[Any, int]:
    """Alice's clicks in [start, end) counted by `group`, from the raw rows."""
    where, params = _raw_where(w.seed.alice.workspace_id, start, end, link_ids)
    bot_filter = ("" if bots else " AND NOT c.bot") + (" AND c.touch = 'qr'" if qr else "")
    rows = _sql(w.settings, f"SELECT {group}, count(*) {where}{bot_filter} GROUP BY 1", *params)
    return {key: n for key, n in rows}


def _hours(start: dt.datetime, end: dt.datetime, step: dt.timedelta) -> list[dt.datetime]:
    out = []
    while start < end:
        out.append(start)
        start += step
    return out


def _get(w: World, path: str, tenant: Tenant | None = None, **params: Any) -> Any:
    return _ok(w.api.get(path, params=params, headers=(tenant or w.seed.alice).auth))


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _series(w: World, **params: Any) -> dict[dt.datetime, dict[str, Any]]:
    body = _get(w, "/api/v1/analytics/timeseries", **params)
    return {dt.datetime.fromisoformat(p.pop("t")): p for p in body["points"]}


def _problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    if code is not None:
        assert body["code"] == code
    return body


# -- rollups --------------------------------------------------------------------------------


def test_rollups_equal_counts_from_the_raw_clicks_despite_redelivery(world: World) -> None:
    w = world
    assert _sql(w.settings, "SELECT count(*) FROM clicks") == [(len(w.events),)]
    hourly = _sql(
        w.settings,
        "SELECT link_id, hour, workspace_id, humans, bots, human_qr, bot_qr FROM click_hourly",
    )
    expected_hourly = _sql(
        w.settings,
        "SELECT link_id, date_trunc('hour', clicked_at), workspace_id, "
        "count(*) FILTER (WHERE NOT bot), count(*) FILTER (WHERE bot), "
        "count(*) FILTER (WHERE NOT bot AND touch = 'qr'), "
        "count(*) FILTER (WHERE bot AND touch = 'qr') "
        "FROM clicks GROUP BY 1, 2, 3",
    )
    assert sorted(hourly) == sorted(expected_hourly)
    assert sum(r[3] + r[4] for r in hourly) == len(w.events)

    dims = _sql(
        w.settings,
        "SELECT link_id, hour, dimension, value, workspace_id, humans, bots FROM click_hourly_dims",
    )
    expected_dims = [
        row
        for dimension in DIMENSIONS
        for row in _sql(
            w.settings,
            f"SELECT link_id, date_trunc('hour', clicked_at), '{dimension}', {dimension}, "
            "workspace_id, count(*) FILTER (WHERE NOT bot), count(*) FILTER (WHERE bot) "
            "FROM clicks GROUP BY 1, 2, 4, 5",
        )
    ]
    assert sorted(dims) == sorted(expected_dims)
    # Empty values are stored as "": every dimension adds up to the same total.
    for dimension in DIMENSIONS:
        assert sum(r[5] + r[6] for r in dims if r[2] == dimension) == len(w.events)
    assert any(r[3] == "" for r in dims if r[2] == "utm_source")


def test_ingest_derives_the_known_visitor_values_the_rollups_count(world: World) -> None:
    w = world
    devices = {
        value: humans + bots
        for value, humans, bots in _sql(
            w.settings,
            "SELECT value, sum(humans), sum(bots) FROM click_hourly_dims "
            "WHERE dimension = 'device' GROUP BY 1",
        )
    }
    assert set(devices) <= {"mobile", "desktop", "bot"}
    stored = {
        r[0]: r[1:] for r in _sql(w.settings, "SELECT id, device, browser, os, bot FROM clicks")
    }
    for event in w.events:
        agent = next(k for k, v in AGENTS.items() if v == event.user_agent)
        assert stored[uuid.UUID(hex=event.id)] == DERIVED[agent]


# -- timeseries ---------------------------------------------------------------------------


def test_timeseries_by_hour_is_zero_filled_and_leaves_bots_out(world: World) -> None:
    w = world
    series = _series(w, interval="hour", start=_iso(T0), end=_iso(T0 + SPAN))
    hours = _hours(T0, T0 + SPAN, dt.timedelta(hours=1))
    assert list(series) == hours
    clicks = _raw_counts(w, "date_trunc('hour', c.clicked_at)")
    qr = _raw_counts(w, "date_trunc('hour', c.clicked_at)", qr=True)
    for hour in hours:
        assert series[hour] == {"clicks": clicks.get(hour, 0), "qr_scans": qr.get(hour, 0)}
    assert any(p["clicks"] == 0 for p in series.values())  # zero-filled, not left out
    assert sum(p["clicks"] for p in series.values()) == sum(clicks.values()) > 0


def test_timeseries_with_bots_counts_them_and_says_how_many(world: World) -> None:
    w = world
    series = _series(w, interval="hour", start=_iso(T0), end=_iso(T0 + SPAN), bots="true")
    everyone = _raw_counts(w, "date_trunc('hour', c.clicked_at)", bots=True)
    humans = _raw_counts(w, "date_trunc('hour', c.clicked_at)")
    qr = _raw_counts(w, "date_trunc('hour', c.clicked_at)", bots=True, qr=True)
    for hour, point in series.items():
        assert point == {
            "clicks": everyone.get(hour, 0),
            "qr_scans": qr.get(hour, 0),
            "bots": everyone.get(hour, 0) - humans.get(hour, 0),
        }
    assert sum(p["bots"] for p in series.values()) > 0


def test_timeseries_by_day_sums_the_hours_of_each_utc_day(world: World) -> None:
    w = world
    start, end = T0 - dt.timedelta(days=1), T0 + SPAN + dt.timedelta(days=1)
    body = _get(w, "/api/v1/analytics/timeseries", start=_iso(start), end=_iso(end))
    assert body["interval"] == "day"
    assert (body["start"], body["end"]) == (_iso(start), _iso(end))
    days = _raw_counts(w, "date_trunc('day', c.clicked_at)", start, end)
    qr = _raw_counts(w, "date_trunc('day', c.clicked_at)", start, end, qr=True)
    assert [p["t"] for p in body["points"]] == [
        _iso(d) for d in _hours(start, end, dt.timedelta(1))
    ]
    for point in body["points"]:
        day = dt.datetime.fromisoformat(point["t"])
        assert point == {"t": point["t"], "clicks": days.get(day, 0), "qr_scans": qr.get(day, 0)}
    assert body["points"][0]["clicks"] > 0  # the half hour before T0
    assert body["points"][-1]["clicks"] > 0  # the day after the span


def test_timeseries_rounds_the_range_out_to_whole_buckets(world: World) -> None:
    body = _get(
        world,
        "/api/v1/analytics/timeseries",
        interval="hour",
        start="2026-03-10T01:30:00+01:00",  # 00:30Z
        end="2026-03-10T03:00:01Z",
    )
    assert (body["start"], body["end"]) == ("2026-03-10T00:00:00Z", "2026-03-10T04:00:00Z")
    assert len(body["points"]) == 4


def test_default_ranges_end_with_the_current_day_and_hour(world: World) -> None:
    w = world
    day = _get(w, "/api/v1/analytics/timeseries")
    hour = _get(w, "/api/v1/analytics/timeseries", interval="hour")
    assert len(day["points"]) == 7
    assert len(hour["points"]) == 24
    now = dt.datetime.now(dt.UTC)
    assert dt.datetime.fromisoformat(day["end"]) - dt.timedelta(days=1) <= now
    assert now < dt.datetime.fromisoformat(day["end"])
    assert dt.datetime.fromisoformat(hour["end"]) - dt.timedelta(hours=1) <= now
    assert sum(p["clicks"] for p in day["points"]) == w.now_clicks
    assert sum(p["clicks"] for p in hour["points"]) == w.now_clicks


# -- breakdown ------------------------------------------------------------------------------


def test_breakdown_by_every_dimension_matches_the_raw_clicks(world: World) -> None:
    w = world
    for dimension in (*DIMENSIONS, "touch"):
        for bots in (False, True):
            body = _get(
                w,
                "/api/v1/analytics/breakdown",
                dimension=dimension,
                start=_iso(T0),
                end=_iso(T0 + SPAN),
                bots=str(bots).lower(),
            )
            assert body["dimension"] == dimension
            expected = _raw_counts(w, f"c.{dimension}", bots=bots)
            got = {row["value"]: row["clicks"] for row in body["rows"]}
            assert got == expected, (dimension, bots)
            counts = [row["clicks"] for row in body["rows"]]
            assert counts == sorted(counts, reverse=True)
    devices = _get(
        w, "/api/v1/analytics/breakdown", dimension="device", start=_iso(T0), end=_iso(T0 + SPAN)
    )
    assert {r["value"] for r in devices["rows"]} == {"mobile", "desktop"}  # bots left out
    limited = _get(
        w,
        "/api/v1/analytics/breakdown",
        dimension="country",
        start=_iso(T0),
        end=_iso(T0 + SPAN),
        limit=2,
    )
    assert len(limited["rows"]) == 2


# -- per-link totals ------------------------------------------------------------------------


def test_link_totals_match_the_raw_clicks_and_page_through(world: World) -> None:
    w = world
    start, end = T0, T0 + SPAN
    body = _get(w, "/api/v1/analytics/links", start=_iso(start), end=_iso(end))
    assert body["next_cursor"] is None
    where, params = _raw_where(w.seed.alice.workspace_id, start, end)
    expected = {
        str(link_id): (humans, qr, bots)
        for link_id, humans, qr, bots in _sql(
            w.settings,
            "SELECT c.link_id, count(*) FILTER (WHERE NOT c.bot), "
            "count(*) FILTER (WHERE NOT c.bot AND c.touch = 'qr'), count(*) FILTER (WHERE c.bot) "
            f"{where} GROUP BY 1",
            *params,
        )
    }
    got = {r["link_id"]: (r["clicks"], r["qr_scans"], r["bots"]) for r in body["data"]}
    assert got == expected
    assert [r["clicks"] for r in body["data"]] == sorted(
        (r["clicks"] for r in body["data"]), reverse=True
    )
    by_slug = {r["slug"]: r for r in body["data"]}
    assert set(by_slug) == {"spring", "daily", "old"}  # never bob's
    assert by_slug["old"]["deleted"] is True
    assert by_slug["spring"]["deleted"] is False
    assert by_slug["daily"]["domain"] == "go.alice.test"
    assert by_slug["spring"]["domain"] == "sho.rt"

    pages, cursor = [], None
    while True:
        params_page: dict[str, Any] = {"start": _iso(start), "end": _iso(end), "limit": 1}
        if cursor:
            params_page["cursor"] = cursor
        page = _get(w, "/api/v1/analytics/links", **params_page)
        pages.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == body["data"]


# -- export ----------------------------------------------------------------------------------


def _export(
    w: World, tenant: Tenant | None = None, **params: Any
) -> tuple[Any, list[dict[str, str]]]:
    response = w.api.get(
        "/api/v1/analytics/export", params=params, headers=(tenant or w.seed.alice).auth
    )
    assert response.status_code == 200, response.text
    return response, list(csv.DictReader(io.StringIO(response.text)))


def _raw_export(
    w: World,
    start: dt.datetime,
    end: dt.datetime,
    *,
    bots: bool = False,
    link_ids: list[str] | None = None,
) -> list[dict[str, str]]:
    where, params = _raw_where(w.seed.alice.workspace_id, start, end, link_ids)
    rows = _sql(
        w.settings,
        "SELECT c.id, c.clicked_at, c.link_id, l.slug, c.touch, c.country, c.device, "
        "c.browser, c.os, c.referrer_host, c.social, c.utm_source, c.utm_medium, "
        f"c.utm_campaign, c.bot {where}{'' if bots else ' AND NOT c.bot'} "
        "ORDER BY c.clicked_at, c.id",
        *params,
    )
    out = []
    for row in rows:
        (
            click_id,
            at,
            link_id,
            slug,
            touch,
            country,
            device,
            browser,
            os_,
            host,
            social,
            source,
            medium,
            campaign,
            bot,
        ) = row
        out.append(
            {
                "id": str(click_id),
                "clicked_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "link_id": str(link_id),
                "slug": slug,
                "touch": touch,
                "country": country,
                "device": device,
                "browser": browser,
                "os": os_,
                "referrer_host": host,
                "social": social,
                "utm_source": "'" + source if source.startswith("=") else source,
                "utm_medium": medium,
                "utm_campaign": campaign,
                "bot": "true" if bot else "false",
            }
        )
    return out


def test_export_streams_the_raw_clicks_of_the_range_in_small_pages(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from control.analytics import service

    w = world
    monkeypatch.setattr(service, "EXPORT_PAGE", 7)  # many pages, one boundary inside the tie
    start, end = T0, T0 + SPAN
    response, rows = _export(w, start=_iso(start), end=_iso(end))
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="clicks-')
    assert rows == _raw_export(w, start, end)
    assert all(r["bot"] == "false" for r in rows)
    assert any(r["utm_source"] == "'=cmd" for r in rows)  # not a live formula
    assert "user_agent" not in rows[0]
    assert "referrer" not in rows[0]

    _, with_bots = _export(w, start=_iso(start), end=_iso(end), bots="true")
    assert with_bots == _raw_export(w, start, end, bots=True)
    assert len(with_bots) > len(rows)


def test_an_empty_export_is_just_the_header(world: World) -> None:
    response, rows = _export(world, start="2020-01-01T00:00:00Z", end="2020-01-02T00:00:00Z")
    assert rows == []
    assert response.text.splitlines()[0].startswith("id,clicked_at,link_id,slug,touch")


# -- scope filters and isolation ----------------------------------------------------------


def test_scope_filters_narrow_every_answer_to_their_links(world: World) -> None:
    w = world
    ids = {name: link["id"] for name, link in w.links.items()}
    cases = [
        ({"tag": "promo"}, [ids["spring"]]),
        ({"tag": "news"}, [ids["daily"]]),
        ({"space": "Marketing"}, [ids["spring"]]),
        ({"space": w.space_id}, [ids["spring"]]),
        ({"domain": "go.alice.test"}, [ids["daily"]]),
        ({"domain": "SHO.RT"}, [ids["spring"], ids["old"]]),
        ({"link_id": ids["old"]}, [ids["old"]]),  # a deleted link's history
        ({"tag": "promo", "space": "Marketing"}, [ids["spring"]]),
        ({"tag": "news", "space": "Marketing"}, []),
        ({"tag": "no such tag"}, []),
        ({"space": "nowhere"}, []),
    ]
    rng = {"start": _iso(T0), "end": _iso(T0 + SPAN)}
    for scope, link_ids in cases:
        series = _get(w, "/api/v1/analytics/timeseries", interval="hour", **rng, **scope)
        expected = sum(_raw_counts(w, "c.link_id", link_ids=link_ids).values())
        assert sum(p["clicks"] for p in series["points"]) == expected, scope
        assert len(series["points"]) == 72

        countries = _get(w, "/api/v1/analytics/breakdown", dimension="country", **rng, **scope)
        assert {r["value"]: r["clicks"] for r in countries["rows"]} == _raw_counts(
            w, "c.country", link_ids=link_ids
        ), scope

        totals = _get(w, "/api/v1/analytics/links", **rng, **scope)
        assert sorted(r["link_id"] for r in totals["data"]) == sorted(link_ids), scope

        _, rows = _export(w, **rng, **scope)
        assert rows == _raw_export(w, T0, T0 + SPAN, link_ids=link_ids), scope


def test_unknown_filters_answer_404_or_422(world: World) -> None:
    w = world
    auth = w.seed.alice.auth
    for path in ("timeseries", "breakdown?dimension=os", "links", "export"):
        url = f"/api/v1/analytics/{path}"
        sep = "&" if "?" in url else "?"
        _problem(
            w.api.get(f"{url}{sep}link_id={uuid.uuid4()}", headers=auth), 404, "link_not_found"
        )
        # Bob's link is no link of Alice's.
        _problem(
            w.api.get(f"{url}{sep}link_id={w.links['bobs']['id']}", headers=auth),
            404,
            "link_not_found",
        )
        _problem(
            w.api.get(f"{url}{sep}domain=elsewhere.example", headers=auth), 422, "unknown_domain"
        )
        _problem(w.api.get(f"{url}{sep}link_id=not-a-uuid", headers=auth), 400)


def test_a_workspace_never_sees_another_ones_clicks(world: World) -> None:
    w = world
    bob = w.seed.bob
    rng = {"start": _iso(T0), "end": _iso(T0 + SPAN)}
    series = _get(w, "/api/v1/analytics/timeseries", bob, interval="hour", bots="true", **rng)
    assert sum(p["clicks"] for p in series["points"]) == 25
    totals = _get(w, "/api/v1/analytics/links", bob, **rng)
    assert [r["slug"] for r in totals["data"]] == ["bobs"]
    _, rows = _export(w, bob, bots="true", **rng)
    assert len(rows) == 25
    assert {r["link_id"] for r in rows} == {w.links["bobs"]["id"]}
    browsers = _get(w, "/api/v1/analytics/breakdown", bob, dimension="browser", bots="true", **rng)
    assert sum(r["clicks"] for r in browsers["rows"]) == 25

    # And Alice's answers hold none of Bob's clicks.
    alice = _get(w, "/api/v1/analytics/timeseries", interval="hour", bots="true", **rng)
    assert sum(p["clicks"] for p in alice["points"]) == sum(
        _raw_counts(w, "c.link_id", bots=True).values()
    )
    _, alice_rows = _export(w, bots="true", **rng)
    assert w.links["bobs"]["id"] not in {r["link_id"] for r in alice_rows}


# -- access and bad input (no clicks needed) -----------------------------------------------

ROUTES = [
    "/api/v1/analytics/timeseries",
    "/api/v1/analytics/breakdown?dimension=country",
    "/api/v1/analytics/links",
    "/api/v1/analytics/export",
]


@pytest.mark.parametrize("url", ROUTES)
def test_a_key_without_analytics_read_is_refused(
    client: tuple[TestClient, Dns], seed: Seed, url: str
) -> None:
    api, _ = client
    created = _ok(
        api.post(
            "/api/v1/api-keys",
            json={"name": "links only", "scopes": ["links:read"]},
            headers=seed.alice.auth,
        ),
        201,
    )
    limited = {"authorization": f"Bearer {created['key']}"}
    body = _problem(api.get(url, headers=limited), 403, "insufficient_scope")
    assert body["scope"] == "analytics:read"
    _problem(api.get(url), 401)
    assert api.get(url, headers=seed.alice.auth).status_code == 200


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/v1/analytics/breakdown?dimension=planet", 400),
        ("/api/v1/analytics/breakdown", 400),  # dimension is required
        ("/api/v1/analytics/breakdown?dimension=os&limit=0", 400),
        ("/api/v1/analytics/timeseries?interval=week", 400),
        ("/api/v1/analytics/timeseries?start=yesterday", 400),
        ("/api/v1/analytics/timeseries?start=2026-13-01T00:00:00Z", 400),
        ("/api/v1/analytics/timeseries?start=2026-03-01T00:00:00", 400),  # no zone
        ("/api/v1/analytics/timeseries?bots=maybe", 400),
        ("/api/v1/analytics/timeseries?colour=red", 400),
        ("/api/v1/analytics/links?cursor=%21%21", 400),
        ("/api/v1/analytics/links?cursor=AAAAAAAA", 400),
        ("/api/v1/analytics/export?end=2026-03-01T00:00:00Z&start=2026-03-02T00:00:00Z", 422),
        ("/api/v1/analytics/links?start=2026-03-01T00:00:00Z&end=2026-03-01T00:00:00Z", 422),
        (
            "/api/v1/analytics/timeseries?interval=hour"
            "&start=2026-01-01T00:00:00Z&end=2026-02-01T00:00:01Z",
            422,
        ),
        (
            "/api/v1/analytics/timeseries?start=2023-01-01T00:00:00Z&end=2026-01-01T00:00:00Z",
            422,
        ),
        ("/api/v1/analytics/export?start=2020-01-01T00:00:00Z&end=2026-01-01T00:00:00Z", 422),
        ("/api/v1/analytics/timeseries?end=0001-01-01T00:00:00Z", 422),
        ("/api/v1/analytics/timeseries?start=9999-12-31T23:00:00Z&end=9999-12-31T23:59:00Z", 422),
    ],
)
def test_bad_parameters_are_problems_not_crashes(
    client: tuple[TestClient, Dns], seed: Seed, url: str, status: int
) -> None:
    api, _ = client
    body = _problem(api.get(url, headers=seed.alice.auth), status)
    assert body["code"] in {"invalid_query", "invalid_cursor", "invalid_range"}


def test_the_longest_ranges_are_accepted(client: tuple[TestClient, Dns], seed: Seed) -> None:
    api, _ = client
    hourly = _ok(
        api.get(
            "/api/v1/analytics/timeseries?interval=hour"
            "&start=2026-01-01T00:00:00Z&end=2026-02-01T00:00:00Z",
            headers=seed.alice.auth,
        )
    )
    assert len(hourly["points"]) == 31 * 24
    daily = _ok(
        api.get(
            "/api/v1/analytics/timeseries?start=2024-01-01T00:00:00Z&end=2026-01-01T00:00:00Z",
            headers=seed.alice.auth,
        )
    )
    assert len(daily["points"]) == 731
    assert all(p == {"t": p["t"], "clicks": 0, "qr_scans": 0} for p in daily["points"])
    assert Counter(p["t"][11:] for p in daily["points"]) == {"00:00:00Z": 731}
