"""GET /internal/v1/resolve: the edge fills Redis misses from the control plane."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import psycopg
import pytest
from starlette.testclient import TestClient

from control.internal.service import RepairThrottle
from control.relay.service import Relay
from control.settings import ControlSettings
from shared.keys import link_key
from shared.records import decode_link
from tests.integration.conftest import Seed, Tenant, resources, run

TOKEN = "t" * 32
AUTH = {"authorization": f"Bearer {TOKEN}"}
PATH = "/internal/v1/resolve"


class FakeResolver:
    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}

    async def txt(self, name: str) -> list[str]:
        return list(self.records.get(name, []))


@pytest.fixture
def dns() -> FakeResolver:
    return FakeResolver()


@pytest.fixture
def settings(control_settings: ControlSettings) -> ControlSettings:
    return msgspec.structs.replace(control_settings, internal_token=TOKEN)


@pytest.fixture
def client(settings: ControlSettings, dns: FakeResolver) -> Iterator[TestClient]:
    from control.app import create_app

    with TestClient(create_app(settings, resolver=dns)) as test_client:
        yield test_client


def _create(client: TestClient, tenant: Tenant, slug: str, **extra: Any) -> dict[str, Any]:
    body = {"destination": "a.example/x", "slug": slug, **extra}
    response = client.post("/api/v1/links", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    link: dict[str, Any] = response.json()
    return link


def _resolve(client: TestClient, host: str, slug: str, headers: dict[str, Any] = AUTH) -> Any:
    return client.get(PATH, params={"host": host, "slug": slug}, headers=headers)


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def _not_found(response: Any) -> None:
    assert response.status_code == 404, response.text
    assert response.content == b""


def _sql(settings: ControlSettings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.libpq_url, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def _repairs(settings: ControlSettings, key: str) -> int:
    rows = _sql(
        settings,
        "SELECT count(*) FROM outbox WHERE topic = 'link.projection' AND payload->>'key' = %s",
        key,
    )
    return int(rows[0][0])


def _custom_domain(client: TestClient, dns: FakeResolver, tenant: Tenant, name: str) -> None:
    domain = client.post("/api/v1/domains", json={"name": name}, headers=tenant.auth).json()
    record = domain["verification"]
    dns.records[record["name"]] = [record["value"]]
    verified = client.post(f"/api/v1/domains/{domain['id']}/verify", headers=tenant.auth)
    assert verified.json()["status"] == "verified", verified.text


# -- hits --------------------------------------------------------------------------------


def test_hit_answers_the_record_the_relay_would_project(
    client: TestClient, seed: Seed, settings: ControlSettings
) -> None:
    link = _create(client, seed.alice, "hello", redirect_status=301)

    response = _resolve(client, "sho.rt", "hello")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/msgpack"
    assert response.headers["x-ricochet-key"] == "l:sho.rt/hello"
    assert response.headers["x-ricochet-version"] == "1"
    record = decode_link(response.content)
    assert record.link_id == link["id"]
    assert record.workspace_id == seed.alice.workspace_id
    assert record.destination == "https://a.example/x"
    assert record.status == 301
    assert record.version == 1

    async def projected() -> Any:
        async with resources(settings) as (engine, redis):
            await Relay(settings, engine, redis).drain()
            return await redis.hget(link_key("sho.rt", "hello"), "r")

    assert run(projected()) == response.content  # byte for byte what the edge reads


def test_version_header_follows_updates(client: TestClient, seed: Seed) -> None:
    link = _create(client, seed.alice, "moving")
    client.patch(
        f"/api/v1/links/{link['id']}", json={"destination": "b.example"}, headers=seed.alice.auth
    )

    response = _resolve(client, "sho.rt", "moving")

    assert response.headers["x-ricochet-version"] == "2"
    assert decode_link(response.content).destination == "https://b.example"


def test_host_with_port_upper_case_and_trailing_dot_and_slug_case_are_normalised(
    client: TestClient, seed: Seed
) -> None:
    _create(client, seed.alice, "hello")

    for host, slug in [("SHO.RT:8400", "HeLLo"), ("sho.rt.", "HELLO"), (" Sho.Rt ", "hello")]:
        response = _resolve(client, host, slug)
        assert response.status_code == 200, (host, slug)
        assert response.headers["x-ricochet-key"] == "l:sho.rt/hello"


def test_custom_verified_domain_is_resolved_and_kept_apart_from_the_default(
    client: TestClient, seed: Seed, dns: FakeResolver, settings: ControlSettings
) -> None:
    _custom_domain(client, dns, seed.alice, "go.brand.com")
    custom = _create(client, seed.alice, "promo", domain="go.brand.com", destination="c.example")
    default = _create(client, seed.alice, "promo", destination="d.example")

    on_custom = _resolve(client, "Go.Brand.com:443", "promo")
    on_default = _resolve(client, "sho.rt", "promo")

    assert on_custom.headers["x-ricochet-key"] == "l:go.brand.com/promo"
    assert decode_link(on_custom.content).link_id == custom["id"]
    assert decode_link(on_custom.content).destination == "https://c.example"
    assert on_default.headers["x-ricochet-key"] == "l:sho.rt/promo"
    assert decode_link(on_default.content).link_id == default["id"]


def test_custom_domain_that_is_not_verified_answers_404(
    client: TestClient, seed: Seed, dns: FakeResolver, settings: ControlSettings
) -> None:
    _custom_domain(client, dns, seed.alice, "go.brand.com")
    _create(client, seed.alice, "promo", domain="go.brand.com")
    _sql(settings, "UPDATE domains SET status = 'failed' WHERE name = 'go.brand.com'")

    _not_found(_resolve(client, "go.brand.com", "promo"))


def test_taken_down_and_expired_links_are_still_answered(
    client: TestClient, seed: Seed, settings: ControlSettings
) -> None:
    _create(client, seed.alice, "old", expires_at="2030-01-01T00:00:00Z")
    _create(client, seed.alice, "bad")
    _sql(settings, "UPDATE links SET expires_at = now() - interval '1 day' WHERE slug = 'old'")
    _sql(settings, "UPDATE links SET taken_down_at = now() WHERE slug = 'bad'")

    expired = _resolve(client, "sho.rt", "old")
    taken_down = _resolve(client, "sho.rt", "bad")

    assert expired.status_code == 200
    assert decode_link(expired.content).expires_at_ms > 0
    assert taken_down.status_code == 200
    assert decode_link(taken_down.content).taken_down is True


# -- misses ------------------------------------------------------------------------------


def test_unknown_host_or_slug_answers_404_with_an_empty_body(
    client: TestClient, seed: Seed
) -> None:
    _create(client, seed.alice, "hello")

    _not_found(_resolve(client, "nope.example", "hello"))
    _not_found(_resolve(client, "sho.rt", "nope"))
    _not_found(_resolve(client, ":8400", "hello"))  # no host left once the port is gone


def test_deleted_link_answers_404(client: TestClient, seed: Seed) -> None:
    link = _create(client, seed.alice, "gone")
    deleted = client.delete(f"/api/v1/links/{link['id']}", headers=seed.alice.auth)
    assert deleted.status_code == 204

    _not_found(_resolve(client, "sho.rt", "gone"))


@pytest.mark.parametrize(
    ("host", "slug"),
    [("sho.rt", "a\x00b"), ("sho\x00.rt", "hello"), ("sho.rt", "x" * 5000), ("é.example", "ü")],
)
def test_values_no_link_can_have_answer_404_not_500(
    client: TestClient, seed: Seed, host: str, slug: str
) -> None:
    _not_found(_resolve(client, host, slug))


@pytest.mark.parametrize(
    ("query", "field"),
    [("", "host"), ("?slug=a", "host"), ("?host=sho.rt", "slug"), ("?host=+&slug=a", "host")],
)
def test_missing_parameters_answer_400_invalid_query(
    client: TestClient, query: str, field: str
) -> None:
    body = _problem(client.get(PATH + query, headers=AUTH), 400, "invalid_query")
    assert body["field"] == field


# -- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer " + "u" * 32},
        {"authorization": "Bearer " + TOKEN[:-1]},
        {"authorization": "Bearer " + TOKEN + "x"},
        {"authorization": "Basic " + TOKEN},
        {"authorization": TOKEN},
        {"authorization": "Bearer \xe9".encode("latin-1")},
    ],
    ids=["missing", "wrong", "prefix", "longer", "basic", "no-scheme", "non-ascii"],
)
def test_wrong_or_missing_token_answers_401(
    client: TestClient, seed: Seed, headers: dict[str, Any]
) -> None:
    _create(client, seed.alice, "hello")

    response = _resolve(client, "sho.rt", "hello", headers)

    _problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_token_is_checked_before_the_query(client: TestClient) -> None:
    _problem(client.get(PATH), 401, "unauthorized")


def test_scheme_is_case_insensitive(client: TestClient, seed: Seed) -> None:
    _create(client, seed.alice, "hello")

    assert _resolve(client, "sho.rt", "hello", {"authorization": f"bearer {TOKEN}"}).is_success


def test_without_a_configured_token_the_route_does_not_exist(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "hello")
    unknown = api.get("/internal/v1/nothing", headers=AUTH)

    for response in (
        _resolve(api, "sho.rt", "hello"),
        api.get(PATH),
        api.post(PATH, headers=AUTH),
    ):
        body = _problem(response, 404, "route_not_found")
        assert {k: v for k, v in body.items() if k not in ("instance", "detail")} == {
            k: v for k, v in unknown.json().items() if k not in ("instance", "detail")
        }


def test_other_methods_answer_405_with_a_token(client: TestClient) -> None:
    _problem(client.post(PATH, headers=AUTH), 405, "method_not_allowed")


def test_not_in_the_openapi_document(client: TestClient) -> None:
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    assert "/internal" not in response.text
    assert PATH not in response.json()["paths"]


# -- projection repair -------------------------------------------------------------------


def test_hit_queues_one_repair_per_key_within_the_interval(
    client: TestClient, seed: Seed, settings: ControlSettings
) -> None:
    _create(client, seed.alice, "hello")
    _create(client, seed.alice, "other")
    key = link_key("sho.rt", "hello")
    assert _repairs(settings, key) == 1  # the create's own projection message

    for _ in range(5):
        assert _resolve(client, "sho.rt", "hello").status_code == 200
    _resolve(client, "SHO.RT:80", "HELLO")  # same key, however it is spelled
    _resolve(client, "sho.rt", "other")

    assert _repairs(settings, key) == 2
    assert _repairs(settings, link_key("sho.rt", "other")) == 2
    [(payload,)] = _sql(
        settings,
        "SELECT payload FROM outbox WHERE payload->>'key' = %s ORDER BY id DESC LIMIT 1",
        key,
    )
    assert payload["op"] == "upsert"
    assert payload["version"] == 1


def test_misses_queue_no_repair(client: TestClient, seed: Seed, settings: ControlSettings) -> None:
    before = _sql(settings, "SELECT count(*) FROM outbox")

    _resolve(client, "sho.rt", "nope")

    assert _sql(settings, "SELECT count(*) FROM outbox") == before


def test_repair_restores_a_lost_key_through_the_relay(
    client: TestClient, seed: Seed, settings: ControlSettings
) -> None:
    _create(client, seed.alice, "hello")
    key = link_key("sho.rt", "hello")

    async def drain_and_flush() -> None:
        async with resources(settings) as (engine, redis):
            await Relay(settings, engine, redis).drain()
            await redis.flushdb()

    async def drain_and_read() -> tuple[Any, Any]:
        async with resources(settings) as (engine, redis):
            await Relay(settings, engine, redis).drain()
            return await redis.hget(key, "v"), await redis.hget(key, "r")

    run(drain_and_flush())  # Redis lost everything
    response = _resolve(client, "sho.rt", "hello")

    assert run(drain_and_read()) == (b"1", response.content)


def test_repair_waits_for_a_delete_in_progress_and_does_not_bring_the_link_back(
    client: TestClient, seed: Seed, settings: ControlSettings
) -> None:
    _create(client, seed.alice, "racy")
    key = link_key("sho.rt", "racy")

    with psycopg.connect(settings.libpq_url) as writer, ThreadPoolExecutor(1) as pool:
        writer.execute("SELECT 1 FROM links WHERE slug = 'racy' FOR UPDATE")  # a delete begins
        pending = pool.submit(_resolve, client, "sho.rt", "racy")
        time.sleep(0.5)
        assert not pending.done()  # the repair waits for the writer's lock...
        writer.execute("UPDATE links SET deleted_at = now(), version = 2 WHERE slug = 'racy'")
        writer.commit()
        response = pending.result(timeout=10)

    _not_found(response)  # ...and then sees the link gone: no upsert to race the delete
    assert _repairs(settings, key) == 1


def test_throttle_allows_a_key_again_after_the_interval() -> None:
    now = [100.0]
    throttle = RepairThrottle(interval=10.0, clock=lambda: now[0], max_keys=2)

    assert throttle.claim("a")
    assert not throttle.claim("a")
    now[0] += 9.9
    assert not throttle.due("a")
    assert throttle.claim("b")
    now[0] += 0.1
    assert throttle.claim("a")  # 10 s after its last repair
    assert throttle.claim("c")  # over max_keys: the oldest ("b") is forgotten
    assert throttle.due("b")
    assert not throttle.due("a")
    assert not throttle.due("c")
