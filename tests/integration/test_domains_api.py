"""Custom domains against real PostgreSQL, with DNS answered by an in-memory resolver."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from control.settings import ControlSettings
from tests.integration.conftest import Seed, Tenant, resources, run

CHALLENGE = "_ricochet-challenge."


class FakeResolver:
    """TXT answers from a dict; an exception as the value is raised, like a failed look-up."""

    def __init__(self) -> None:
        self.records: dict[str, list[str] | Exception] = {}
        self.asked: list[str] = []

    async def txt(self, name: str) -> list[str]:
        self.asked.append(name)
        answer = self.records.get(name, [])
        if isinstance(answer, Exception):
            raise answer
        return list(answer)


@pytest.fixture
def dns() -> FakeResolver:
    return FakeResolver()


@pytest.fixture
def client(control_settings: ControlSettings, dns: FakeResolver) -> Iterator[TestClient]:
    from control.app import create_app

    with TestClient(create_app(control_settings, resolver=dns)) as test_client:
        yield test_client


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    return body


def _add(client: TestClient, tenant: Tenant, name: str) -> dict[str, Any]:
    response = client.post("/api/v1/domains", json={"name": name}, headers=tenant.auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _publish(dns: FakeResolver, domain: dict[str, Any], value: str | None = None) -> None:
    record = domain["verification"]
    dns.records[record["name"]] = [value if value is not None else record["value"]]


def _verify(client: TestClient, tenant: Tenant, domain: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/api/v1/domains/{domain['id']}/verify", headers=tenant.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _sql(settings: ControlSettings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.libpq_url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def _events(settings: ControlSettings) -> list[dict[str, Any]]:
    rows = _sql(
        settings,
        "SELECT envelope FROM events WHERE type = 'domain.verification_updated' ORDER BY id",
    )
    return [r[0] for r in rows]


def _key_with(settings: ControlSettings, tenant: Tenant, scopes: list[str]) -> dict[str, str]:
    async def make() -> str:
        from control.db import session_factory
        from control.keys import service

        async with (
            resources(settings) as (engine, _),
            session_factory(engine).begin() as session,
        ):
            _, key = await service.create(
                session, settings.secret_key, uuid.UUID(tenant.workspace_id), "scoped", scopes
            )
        return key

    return {"authorization": f"Bearer {run(make())}"}


# -- add --------------------------------------------------------------------------------------


def test_add_answers_201_pending_with_the_txt_record_to_publish(
    client: TestClient, seed: Seed
) -> None:
    response = client.post(
        "/api/v1/domains", json={"name": " Go.Brand.COM. "}, headers=seed.alice.auth
    )

    assert response.status_code == 201, response.text
    domain = response.json()
    assert response.headers["location"] == f"/api/v1/domains/{domain['id']}"
    assert domain["name"] == "go.brand.com"
    assert domain["status"] == "pending"
    assert domain["is_default"] is False
    assert domain["verified_at"] is None
    assert domain["checked_at"] is None
    assert domain["failure_reason"] is None
    assert domain["created_at"]
    record = domain["verification"]
    assert record["type"] == "TXT"
    assert record["name"] == "_ricochet-challenge.go.brand.com"
    assert record["value"].startswith("ricochet-verification=")
    assert len(record["value"]) > len("ricochet-verification=") + 30


def test_each_domain_gets_its_own_token(client: TestClient, seed: Seed) -> None:
    one = _add(client, seed.alice, "a.brand.com")["verification"]["value"]
    two = _add(client, seed.alice, "b.brand.com")["verification"]["value"]

    assert one != two


def test_idn_is_stored_as_punycode(client: TestClient, seed: Seed) -> None:
    domain = _add(client, seed.alice, "Bücher.example")

    assert domain["name"] == "xn--bcher-kva.example"
    assert domain["verification"]["name"] == "_ricochet-challenge.xn--bcher-kva.example"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "brand",
        "localhost",
        "go.localhost",
        "127.0.0.1",
        "1.2.3.4",
        "0x7f.1",
        "[::1]",
        "::1",
        "brand.com:8080",
        "https://brand.com",
        "brand.com/path",
        "user@brand.com",
        "-brand.com",
        "brand-.com",
        "bra_nd.com",
        "bra nd.com",
        "brand..com",
        ".brand.com",
        "*.brand.com",
        "a" * 64 + ".com",
        ".".join(["a" * 60] * 5) + ".com",
        "brand.123",
        "xn--.com",
    ],
)
def test_bad_name_answers_422_invalid_domain(client: TestClient, seed: Seed, name: str) -> None:
    response = client.post("/api/v1/domains", json={"name": name}, headers=seed.alice.auth)

    body = _problem(response, 422, "invalid_domain")
    assert body["field"] == "name"


def test_longest_allowed_name_is_accepted(client: TestClient, seed: Seed) -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57]) + ".com"
    assert len(name) == 253

    assert _add(client, seed.alice, name)["name"] == name


@pytest.mark.parametrize("body", [{}, {"name": 5}, {"name": "a.example", "extra": 1}])
def test_wrong_shape_answers_422_validation_failed(
    client: TestClient, seed: Seed, body: dict[str, Any]
) -> None:
    response = client.post("/api/v1/domains", json=body, headers=seed.alice.auth)

    _problem(response, 422, "validation_failed")


def test_name_taken_by_another_workspace_answers_409_without_saying_whose(
    client: TestClient, seed: Seed
) -> None:
    _add(client, seed.alice, "go.brand.com")

    response = client.post("/api/v1/domains", json={"name": "GO.brand.com"}, headers=seed.bob.auth)

    body = _problem(response, 409, "domain_taken")
    assert seed.alice.workspace_id not in response.text
    assert "id" not in body


def test_name_taken_in_the_same_workspace_answers_409(client: TestClient, seed: Seed) -> None:
    _add(client, seed.alice, "go.brand.com")

    response = client.post(
        "/api/v1/domains", json={"name": "go.brand.com"}, headers=seed.alice.auth
    )

    _problem(response, 409, "domain_taken")


def test_the_default_domain_cannot_be_added(client: TestClient, seed: Seed) -> None:
    response = client.post("/api/v1/domains", json={"name": "sho.rt"}, headers=seed.alice.auth)

    _problem(response, 409, "domain_taken")


def test_idempotency_key_replays_the_first_response(
    client: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "add-go-brand"}

    first = client.post("/api/v1/domains", json={"name": "go.brand.com"}, headers=headers)
    again = client.post("/api/v1/domains", json={"name": "go.brand.com"}, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert _sql(control_settings, "SELECT count(*) FROM domains WHERE name = 'go.brand.com'") == [
        (1,)
    ]


def test_idempotency_key_with_another_body_answers_422(client: TestClient, seed: Seed) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "k1"}
    client.post("/api/v1/domains", json={"name": "go.brand.com"}, headers=headers)

    response = client.post("/api/v1/domains", json={"name": "other.brand.com"}, headers=headers)

    _problem(response, 422, "idempotency_key_reused")


# -- list and get -----------------------------------------------------------------------------


def test_list_has_the_default_and_own_domains_but_not_others(
    client: TestClient, seed: Seed
) -> None:
    mine = [_add(client, seed.alice, f"d{i}.alice.example") for i in range(3)]
    _add(client, seed.bob, "bob.example")

    response = client.get("/api/v1/domains", headers=seed.alice.auth)

    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    default, *custom = page["data"]
    assert default["name"] == "sho.rt"
    assert default["is_default"] is True
    assert default["status"] == "verified"
    assert default["verification"] is None
    assert custom == mine


def test_list_pages_with_cursor(client: TestClient, seed: Seed) -> None:
    for i in range(4):
        _add(client, seed.alice, f"d{i}.alice.example")
    _add(client, seed.bob, "bob.example")

    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/domains", params=params, headers=seed.alice.auth).json()
        pages += 1
        names += [d["name"] for d in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert names == ["sho.rt", *(f"d{i}.alice.example" for i in range(4))]
    assert pages == 3


def test_list_with_limit_one_walks_past_the_default(client: TestClient, seed: Seed) -> None:
    _add(client, seed.alice, "only.alice.example")

    first = client.get("/api/v1/domains?limit=1", headers=seed.alice.auth).json()
    second = client.get(
        f"/api/v1/domains?limit=1&cursor={first['next_cursor']}", headers=seed.alice.auth
    ).json()

    assert [d["name"] for d in first["data"]] == ["sho.rt"]
    assert [d["name"] for d in second["data"]] == ["only.alice.example"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=201", "limit"), ("cursor=%21%21", "cursor"), ("sort=x", "sort")],
)
def test_bad_list_query_answers_400(client: TestClient, seed: Seed, query: str, field: str) -> None:
    response = client.get(f"/api/v1/domains?{query}", headers=seed.alice.auth)

    code = "invalid_cursor" if field == "cursor" else "invalid_query"
    assert _problem(response, 400, code)["field"] == field


def test_get_answers_the_domain(client: TestClient, seed: Seed) -> None:
    domain = _add(client, seed.alice, "go.brand.com")

    response = client.get(f"/api/v1/domains/{domain['id']}", headers=seed.alice.auth)

    assert response.status_code == 200
    assert response.json() == domain


def test_another_workspaces_domain_answers_404_everywhere(client: TestClient, seed: Seed) -> None:
    domain = _add(client, seed.alice, "go.brand.com")
    path = f"/api/v1/domains/{domain['id']}"

    _problem(client.get(path, headers=seed.bob.auth), 404, "domain_not_found")
    _problem(client.post(f"{path}/verify", headers=seed.bob.auth), 404, "domain_not_found")
    _problem(client.delete(path, headers=seed.bob.auth), 404, "domain_not_found")
    assert client.get(path, headers=seed.alice.auth).status_code == 200


@pytest.mark.parametrize("domain_id", ["nope", "00000000-0000-0000-0000-000000000000", "1' OR 1=1"])
def test_unknown_or_malformed_id_answers_404(
    client: TestClient, seed: Seed, domain_id: str
) -> None:
    _problem(
        client.get(f"/api/v1/domains/{domain_id}", headers=seed.alice.auth),
        404,
        "domain_not_found",
    )


def test_default_domain_is_not_the_workspaces_to_read_verify_or_delete(
    client: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    default_id = client.get("/api/v1/domains", headers=seed.alice.auth).json()["data"][0]["id"]
    path = f"/api/v1/domains/{default_id}"

    _problem(client.get(path, headers=seed.alice.auth), 404, "domain_not_found")
    _problem(client.post(f"{path}/verify", headers=seed.alice.auth), 404, "domain_not_found")
    _problem(client.delete(path, headers=seed.alice.auth), 404, "domain_not_found")
    assert _sql(control_settings, "SELECT count(*) FROM domains WHERE is_default") == [(1,)]


# -- verify -----------------------------------------------------------------------------------


def test_verify_with_the_record_published_verifies_and_emits_once(
    client: TestClient, seed: Seed, dns: FakeResolver, control_settings: ControlSettings
) -> None:
    domain = _add(client, seed.alice, "go.brand.com")
    dns.records[CHALLENGE + "go.brand.com"] = ["v=spf1 -all", domain["verification"]["value"]]

    verified = _verify(client, seed.alice, domain)

    assert dns.asked == ["_ricochet-challenge.go.brand.com"]
    assert verified["status"] == "verified"
    assert verified["verified_at"] is not None
    assert verified["checked_at"] is not None
    assert verified["failure_reason"] is None
    assert verified["verification"] == domain["verification"]
    assert client.get(f"/api/v1/domains/{domain['id']}", headers=seed.alice.auth).json() == verified

    [event] = _events(control_settings)
    assert event["type"] == "domain.verification_updated"
    assert event["workspace_id"] == seed.alice.workspace_id
    [(organization_id,)] = _sql(
        control_settings,
        "SELECT organization_id::text FROM workspaces WHERE id = %s",
        seed.alice.workspace_id,
    )
    assert event["organization_id"] == organization_id
    assert event["data"] == {
        "domain_id": domain["id"],
        "domain_name": "go.brand.com",
        "status": "verified",
        "previous_status": "pending",
        "verified_at": event["data"]["verified_at"],
        "failure_reason": None,
    }
    assert event["data"]["verified_at"].endswith("Z")
    notices = _sql(
        control_settings,
        "SELECT o.payload->>'type' FROM outbox o JOIN events e "
        "ON e.id::text = o.payload->>'event_id' WHERE o.topic = 'event'",
    )
    assert notices == [("domain.verification_updated",)]


def test_verify_with_a_wrong_value_fails_and_emits(
    client: TestClient, seed: Seed, dns: FakeResolver, control_settings: ControlSettings
) -> None:
    domain = _add(client, seed.alice, "go.brand.com")
    _publish(dns, domain, "ricochet-verification=somebody-elses-token")

    failed = _verify(client, seed.alice, domain)

    assert failed["status"] == "failed"
    assert failed["failure_reason"] == "TXT record does not match"
    assert failed["verified_at"] is None
    assert failed["checked_at"] is not None
    [event] = _events(control_settings)
    assert event["data"]["status"] == "failed"
    assert event["data"]["previous_status"] == "pending"
    assert event["data"]["failure_reason"] == "TXT record does not match"
    assert event["data"]["verified_at"] is None


def test_verify_without_a_record_fails_with_not_found(
    client: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    domain = _add(client, seed.alice, "go.brand.com")

    failed = _verify(client, seed.alice, domain)

    assert failed["status"] == "failed"
    assert failed["failure_reason"] == "TXT record not found"


def test_verifying_again_with_the_same_outcome_emits_nothing_new(
    client: TestClient, seed: Seed, dns: FakeResolver, control_settings: ControlSettings
) -> None:
    domain = _add(client, seed.alice, "go.brand.com")
    first = _verify(client, seed.alice, domain)
    second = _verify(client, seed.alice, domain)

    _publish(dns, domain)
    verified = _verify(client, seed.alice, domain)
    again = _verify(client, seed.alice, domain)

    assert first["status"] == second["status"] == "failed"
    assert second["checked_at"] >= first["checked_at"]
    assert verified["status"] == again["status"] == "verified"
    assert again["verified_at"] == verified["verified_at"]
    assert again["checked_at"] >= verified["checked_at"]
    assert [
        (e["data"]["previous_status"], e["data"]["status"]) for e in _events(control_settings)
    ] == [
        ("pending", "failed"),
        ("failed", "verified"),
    ]


def test_a_verified_domain_whose_record_disappears_drops_back_to_failed(
    client: TestClient, seed: Seed, dns: FakeResolver, control_settings: ControlSettings
) -> None:
    domain = _add(client, seed.alice, "go.brand.com")
    _publish(dns, domain)
    _verify(client, seed.alice, domain)
    dns.records.clear()

    dropped = _verify(client, seed.alice, domain)

    assert dropped["status"] == "failed"
    assert dropped["failure_reason"] == "TXT record not found"
    assert dropped["verified_at"] is None
    last = _events(control_settings)[-1]["data"]
    assert (last["previous_status"], last["status"]) == ("verified", "failed")
    assert len(_events(control_settings)) == 2


def test_dns_failure_fails_with_the_resolvers_reason(
    client: TestClient, seed: Seed, dns: FakeResolver, control_settings: ControlSettings
) -> None:
    domain = _add(client, seed.alice, "go.brand.com")
    reason = "DNS look-up of _ricochet-challenge.go.brand.com failed: LifetimeTimeout"
    dns.records[CHALLENGE + "go.brand.com"] = LookupError(reason)

    failed = _verify(client, seed.alice, domain)

    assert failed["status"] == "failed"
    assert failed["failure_reason"] == reason
    [event] = _events(control_settings)
    assert event["data"]["failure_reason"] == reason


def test_concurrent_verifications_emit_one_event_per_change(
    client: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    domain = _add(client, seed.alice, "go.brand.com")
    [(organization_id,)] = _sql(
        control_settings,
        "SELECT organization_id FROM workspaces WHERE id = %s",
        seed.alice.workspace_id,
    )

    class SlowResolver:
        async def txt(self, name: str) -> list[str]:
            # Both checks read "pending" before either writes its result.
            await asyncio.sleep(0.1)
            return [domain["verification"]["value"]]

    async def both() -> list[str]:
        from control.db import session_factory
        from control.domains import service
        from control.keys.service import Principal

        principal = Principal(
            uuid.uuid4(), uuid.UUID(seed.alice.workspace_id), organization_id, ("domains:write",)
        )
        async with resources(control_settings) as (engine, _):
            sessions = session_factory(engine)
            results = await asyncio.gather(
                *(service.verify(sessions, SlowResolver(), principal, domain["id"]) for _ in "ab")
            )
        return [r.status for r in results]

    assert run(both()) == ["verified", "verified"]
    assert len(_events(control_settings)) == 1


# -- delete -----------------------------------------------------------------------------------


def test_delete_answers_204_then_404(
    client: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    domain = _add(client, seed.alice, "go.brand.com")
    path = f"/api/v1/domains/{domain['id']}"

    response = client.delete(path, headers=seed.alice.auth)

    assert response.status_code == 204
    assert response.content == b""
    _problem(client.get(path, headers=seed.alice.auth), 404, "domain_not_found")
    _problem(client.delete(path, headers=seed.alice.auth), 404, "domain_not_found")
    # The name is free again.
    assert _add(client, seed.bob, "go.brand.com")["name"] == "go.brand.com"


def _insert_link(
    settings: ControlSettings, tenant: Tenant, domain_id: str, slug: str, deleted: bool = False
) -> None:
    _sql(
        settings,
        "INSERT INTO links (id, workspace_id, domain_id, slug, destination, redirect_status,"
        " version, deleted_at) VALUES (%s, %s, %s, %s, 'https://x.example', 302, 1, "
        + ("now()" if deleted else "NULL")
        + ") RETURNING id",
        uuid.uuid4(),
        tenant.workspace_id,
        domain_id,
        slug,
    )


def test_delete_is_refused_while_a_live_link_uses_the_domain(
    client: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    domain = _add(client, seed.alice, "go.brand.com")
    _insert_link(control_settings, seed.alice, domain["id"], "launch")

    response = client.delete(f"/api/v1/domains/{domain['id']}", headers=seed.alice.auth)

    _problem(response, 409, "domain_in_use")
    assert client.get(f"/api/v1/domains/{domain['id']}", headers=seed.alice.auth).status_code == 200


def test_delete_goes_ahead_when_only_deleted_links_used_the_domain(
    client: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    domain = _add(client, seed.alice, "go.brand.com")
    _insert_link(control_settings, seed.alice, domain["id"], "old", deleted=True)

    response = client.delete(f"/api/v1/domains/{domain['id']}", headers=seed.alice.auth)

    assert response.status_code == 204, response.text
    assert _sql(control_settings, "SELECT count(*) FROM links") == [(0,)]


# -- scopes -----------------------------------------------------------------------------------


def test_read_only_key_can_read_but_not_write(
    client: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    domain = _add(client, seed.alice, "go.brand.com")
    read_only = _key_with(control_settings, seed.alice, ["domains:read"])

    assert client.get("/api/v1/domains", headers=read_only).status_code == 200
    assert client.get(f"/api/v1/domains/{domain['id']}", headers=read_only).status_code == 200
    for response in (
        client.post("/api/v1/domains", json={"name": "x.brand.com"}, headers=read_only),
        client.post(f"/api/v1/domains/{domain['id']}/verify", headers=read_only),
        client.delete(f"/api/v1/domains/{domain['id']}", headers=read_only),
    ):
        assert _problem(response, 403, "insufficient_scope")["scope"] == "domains:write"


def test_key_without_domain_scopes_cannot_list(
    client: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    links_only = _key_with(control_settings, seed.alice, ["links:write"])

    body = _problem(client.get("/api/v1/domains", headers=links_only), 403, "insufficient_scope")
    assert body["scope"] == "domains:read"


def test_missing_key_answers_401(client: TestClient, seed: Seed) -> None:
    _problem(client.get("/api/v1/domains"), 401, "unauthorized")


def test_openapi_documents_the_domain_routes(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]

    assert set(paths["/api/v1/domains"]) == {"get", "post"}
    assert set(paths["/api/v1/domains/{domain_id}"]) == {"get", "delete"}
    assert set(paths["/api/v1/domains/{domain_id}/verify"]) == {"post"}


# -- for_link ---------------------------------------------------------------------------------


def _for_link(settings: ControlSettings, workspace_id: str, name: str | None) -> Any:
    """The chosen domain's name, or the ApiError code for_link raised."""

    async def go() -> Any:
        from control.db import session_factory
        from control.domains import service
        from control.errors import ApiError

        async with (
            resources(settings) as (engine, _),
            session_factory(engine).begin() as session,
        ):
            try:
                domain = await service.for_link(session, uuid.UUID(workspace_id), name)
            except ApiError as exc:
                return exc.status, exc.code, exc.extra.get("field")
            return domain.name

    return run(go())


def test_for_link_picks_the_default_or_a_verified_own_domain(
    client: TestClient, seed: Seed, dns: FakeResolver, control_settings: ControlSettings
) -> None:
    verified = _add(client, seed.alice, "go.alice.example")
    _publish(dns, verified)
    _verify(client, seed.alice, verified)
    _add(client, seed.alice, "pending.alice.example")
    failed = _add(client, seed.alice, "failed.alice.example")
    _verify(client, seed.alice, failed)
    bobs = _add(client, seed.bob, "go.bob.example")
    _publish(dns, bobs)
    _verify(client, seed.bob, bobs)

    def pick(name: str | None) -> Any:
        return _for_link(control_settings, seed.alice.workspace_id, name)

    assert pick(None) == "sho.rt"
    assert pick("sho.rt") == "sho.rt"
    assert pick("go.alice.example") == "go.alice.example"
    assert pick("GO.Alice.Example.") == "go.alice.example"
    assert pick("pending.alice.example") == (422, "domain_not_verified", "domain")
    assert pick("failed.alice.example") == (422, "domain_not_verified", "domain")
    assert pick("go.bob.example") == (422, "unknown_domain", "domain")
    assert pick("nowhere.example") == (422, "unknown_domain", "domain")
    assert pick("not a domain") == (422, "unknown_domain", "domain")
