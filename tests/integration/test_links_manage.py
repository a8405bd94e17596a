"""The complete links API against real PostgreSQL (and Redis for projections)."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from starlette.testclient import TestClient

from control.relay.service import Relay
from control.settings import ControlSettings
from shared.keys import link_key
from shared.records import decode_link
from tests.integration.conftest import Seed, resources, run

LINKS = "/api/v1/links"


def _create(api: TestClient, seed: Seed, **body: object) -> dict:
    body.setdefault("destination", "https://brand.example/launch")
    response = api.post(LINKS, json=body, headers=seed.alice.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _sql(settings: ControlSettings, query: str, *args: object) -> list[tuple]:
    with psycopg.connect(settings.libpq_url) as conn:
        return conn.execute(query, args).fetchall()


def _relay(settings: ControlSettings) -> None:
    async def go() -> None:
        async with resources(settings) as (engine, redis):
            await Relay(settings, engine, redis).drain()

    run(go())


def _projected(settings: ControlSettings, domain: str, slug: str):  # type: ignore[no-untyped-def]
    async def go() -> bytes | None:
        async with resources(settings) as (_, redis):
            return await redis.hget(link_key(domain, slug), "r")  # type: ignore[no-any-return]

    raw = run(go())
    return decode_link(raw) if raw else None


# -- create ---------------------------------------------------------------------------


def test_create_with_every_field(api: TestClient, seed: Seed) -> None:
    link = _create(
        api,
        seed,
        slug="full",
        redirect_status=307,
        expires_at="2030-01-01T00:00:00Z",
        expired_url="brand.example/expired",
        password="open sesame",
        utm_source="news",
        utm_medium="email",
        tags=["Q2", "email", "q2"],
        track_conversions=True,
        forward_query=True,
        external_id="crm-1",
        routing={
            "countries": {"de": "brand.de"},
            "devices": {"ios": "apps.apple.com/x"},
            "variants": [{"destination": "a.example", "weight": 3}, {"destination": "b.example"}],
        },
    )

    assert link["redirect_status"] == 307
    assert link["expires_at"] == "2030-01-01T00:00:00Z"
    assert link["expired_url"] == "https://brand.example/expired"
    assert link["has_password"] is True
    assert "password" not in link
    assert "password_hash" not in link
    assert link["utm"] == {"source": "news", "medium": "email"}
    assert link["tags"] == ["Q2", "email", "q2"]  # names are kept as written
    assert link["routing"] == {
        "countries": {"DE": "https://brand.de"},
        "devices": {"ios": "https://apps.apple.com/x"},
        "variants": [
            {"destination": "https://a.example", "weight": 3},
            {"destination": "https://b.example", "weight": 1},
        ],
    }
    assert link["external_id"] == "crm-1"
    assert link["version"] == 1


def test_explicit_utm_fields_override_the_preset(api: TestClient, seed: Seed) -> None:
    preset = api.post(
        "/api/v1/utm-presets",
        headers=seed.alice.auth,
        json={
            "name": "email-spring",
            "source": "newsletter",
            "medium": "email",
            "campaign": "spring",
        },
    )
    assert preset.status_code == 201, preset.text

    link = _create(api, seed, utm_preset="email-spring", utm_campaign="launch")

    assert link["utm_preset"] == "email-spring"
    assert link["utm"] == {"source": "newsletter", "medium": "email", "campaign": "launch"}


def test_unknown_preset_space_or_domain_is_refused(api: TestClient, seed: Seed) -> None:
    for field, value in (("utm_preset", "nope"), ("space", "nope"), ("domain", "nope.example")):
        response = api.post(
            LINKS, json={"destination": "a.example", field: value}, headers=seed.alice.auth
        )
        assert response.status_code in (404, 422), response.text
        assert response.json()["field"] == field


def test_link_can_live_in_a_space(api: TestClient, seed: Seed) -> None:
    space = api.post("/api/v1/spaces", json={"name": "Brand A"}, headers=seed.alice.auth).json()

    by_name = _create(api, seed, space="Brand A")
    by_id = _create(api, seed, space=space["id"])

    assert by_name["space"] == by_id["space"] == "Brand A"
    assert by_name["space_id"] == space["id"]


def test_naive_expiry_is_refused(api: TestClient, seed: Seed) -> None:
    response = api.post(
        LINKS,
        json={"destination": "a.example", "expires_at": "2030-01-01T00:00:00"},
        headers=seed.alice.auth,
    )

    assert response.status_code == 422
    assert response.json()["field"] == "expires_at"


@pytest.mark.parametrize(
    "body",
    [
        {"destination": "a.example", "redirect_status": 303},
        {"destination": "a.example", "routing": {"devices": {"tv": "a.example"}}},
        {"destination": "a.example", "routing": {"countries": {"USA": "a.example"}}},
        {"destination": "a.example", "routing": {"variants": [{"destination": "javascript:x"}]}},
        {"destination": "a.example", "password": "abc"},
        {"destination": "a.example", "tags": ["x" * 65]},
        {"destination": "a.example", "expired_url": "data:text/html,hi"},
        {"destination": "a.example", "utm_source": "a\nb"},
    ],
)
def test_bad_fields_answer_422(api: TestClient, seed: Seed, body: dict) -> None:
    response = api.post(LINKS, json=body, headers=seed.alice.auth)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_external_id_is_unique_per_workspace(api: TestClient, seed: Seed) -> None:
    first = _create(api, seed, external_id="order-9")

    again = api.post(
        LINKS, json={"destination": "a.example", "external_id": "order-9"}, headers=seed.alice.auth
    )
    elsewhere = api.post(
        LINKS, json={"destination": "a.example", "external_id": "order-9"}, headers=seed.bob.auth
    )

    assert again.status_code == 409
    assert again.json()["code"] == "external_id_taken"
    assert again.json()["link_id"] == first["id"]
    assert elsewhere.status_code == 201


def test_create_writes_revision_event_and_projection_in_one_go(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _create(api, seed, slug="lifecycle", destination="https://brand.example/p?token=s3cr3t")

    events = _sql(control_settings, "SELECT type, envelope FROM events")
    assert [e[0] for e in events] == ["link.created"]
    data = events[0][1]["data"]
    assert data["short_code"] == "lifecycle"
    assert data["destination_host"] == "brand.example"
    assert data["destination_url_capped"] == "https://brand.example/p"
    assert "s3cr3t" not in str(events[0][1])
    assert {
        "id",
        "type",
        "api_version",
        "created_at",
        "organization_id",
        "workspace_id",
        "data",
    } == set(events[0][1])
    topics = sorted(r[0] for r in _sql(control_settings, "SELECT topic FROM outbox"))
    assert topics == ["event", "link.projection"]
    revisions = _sql(control_settings, "SELECT revision, action FROM link_revisions")
    assert revisions == [(1, "create")]
    _relay(control_settings)
    record = _projected(control_settings, "sho.rt", "lifecycle")
    assert record is not None
    assert record.link_id == link["id"]


# -- read and list --------------------------------------------------------------------


def test_list_pages_through_everything_once(api: TestClient, seed: Seed) -> None:
    ids = {_create(api, seed)["id"] for _ in range(7)}

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get(LINKS, params=params, headers=seed.alice.auth).json()
        seen.extend(link["id"] for link in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == ids


def test_list_filters(api: TestClient, seed: Seed) -> None:
    api.post("/api/v1/spaces", json={"name": "s1"}, headers=seed.alice.auth)
    a = _create(api, seed, slug="alpha-one", tags=["x", "y"], space="s1")
    b = _create(api, seed, slug="beta-two", tags=["x"], external_id="e-2")
    _create(api, seed, slug="gamma", destination="https://other.example/")

    def ids(**params: object) -> set[str]:
        response = api.get(LINKS, params=params, headers=seed.alice.auth)
        assert response.status_code == 200, response.text
        return {link["id"] for link in response.json()["data"]}

    assert ids(tag="x") == {a["id"], b["id"]}
    assert ids(tag=["x", "y"]) == {a["id"]}
    assert ids(tag="unknown") == set()
    assert ids(space="s1") == {a["id"]}
    assert ids(q="beta") == {b["id"]}
    assert ids(q="other.example") != set()
    assert ids(external_id="e-2") == {b["id"]}
    assert ids(created_after="2000-01-01T00:00:00Z") >= {a["id"], b["id"]}
    assert ids(created_before="2000-01-01T00:00:00Z") == set()


def test_bad_list_parameters_answer_422(api: TestClient, seed: Seed) -> None:
    for params in (
        {"limit": 0},
        {"limit": "many"},
        {"cursor": "!!"},
        {"colour": "red"},
        {"archived": "maybe"},
    ):
        response = api.get(LINKS, params=params, headers=seed.alice.auth)
        assert response.status_code in (400, 422), (params, response.text)


def test_other_workspaces_links_are_invisible(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed)

    for method, path in (
        ("GET", f"{LINKS}/{link['id']}"),
        ("PATCH", f"{LINKS}/{link['id']}"),
        ("DELETE", f"{LINKS}/{link['id']}"),
        ("GET", f"{LINKS}/{link['id']}/history"),
    ):
        kwargs = {"json": {"destination": "x.example"}} if method == "PATCH" else {}
        response = api.request(method, path, headers=seed.bob.auth, **kwargs)
        assert response.status_code == 404, (method, path)
    assert api.get(LINKS, headers=seed.bob.auth).json()["data"] == []


# -- availability ---------------------------------------------------------------------


def test_availability_answers_free_taken_reserved_invalid(api: TestClient, seed: Seed) -> None:
    _create(api, seed, slug="taken-one")

    def check(slug: str) -> dict:
        response = api.get(f"{LINKS}/availability", params={"slug": slug}, headers=seed.alice.auth)
        assert response.status_code == 200, response.text
        return response.json()

    assert check("free-one") == {"domain": "sho.rt", "slug": "free-one", "available": True}
    assert check("TAKEN-one")["reason"] == "taken"
    assert check("admin")["reason"] == "reserved"
    assert check("no spaces")["reason"] == "invalid"


# -- update, history, rollback --------------------------------------------------------


def test_patch_changes_the_link_and_records_before_and_after(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _create(api, seed, slug="patch-me", tags=["a"])

    response = api.patch(
        f"{LINKS}/{link['id']}",
        headers=seed.alice.auth,
        json={"destination": "https://new.example/", "tags": ["b"], "redirect_status": 301},
    )

    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["destination"] == "https://new.example/"
    assert changed["tags"] == ["b"]
    assert changed["version"] == 2
    assert response.headers["etag"] == '"2"'
    [(envelope,)] = _sql(
        control_settings, "SELECT envelope FROM events WHERE type = 'link.updated'"
    )
    data = envelope["data"]
    assert data["before"]["destination_host"] == "brand.example"
    assert data["after"]["destination_host"] == "new.example"
    assert set(data["changes"]) == {"destination", "redirect_status", "tags"}
    _relay(control_settings)
    record = _projected(control_settings, "sho.rt", "patch-me")
    assert record is not None
    assert (record.destination, record.status, record.version) == ("https://new.example/", 301, 2)


def test_patch_with_stale_if_match_is_refused(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed)
    api.patch(f"{LINKS}/{link['id']}", json={"destination": "b.example"}, headers=seed.alice.auth)

    response = api.patch(
        f"{LINKS}/{link['id']}",
        json={"destination": "c.example"},
        headers={**seed.alice.auth, "if-match": '"1"'},
    )

    assert response.status_code == 412
    assert response.json()["code"] == "version_mismatch"


def test_patch_that_changes_nothing_records_nothing(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _create(api, seed, destination="https://same.example/")

    response = api.patch(
        f"{LINKS}/{link['id']}", json={"destination": "same.example/"}, headers=seed.alice.auth
    )

    assert response.json()["version"] == 1
    assert _sql(control_settings, "SELECT count(*) FROM link_revisions")[0][0] == 1


def test_renaming_the_slug_moves_the_projection(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _create(api, seed, slug="old-name")
    _create(api, seed, slug="occupied")
    _relay(control_settings)

    clash = api.patch(f"{LINKS}/{link['id']}", json={"slug": "occupied"}, headers=seed.alice.auth)
    moved = api.patch(f"{LINKS}/{link['id']}", json={"slug": "new-name"}, headers=seed.alice.auth)
    _relay(control_settings)

    assert clash.status_code == 409
    assert moved.status_code == 200
    assert _projected(control_settings, "sho.rt", "old-name") is None
    assert _projected(control_settings, "sho.rt", "new-name") is not None


def test_password_can_be_set_and_cleared_and_is_never_returned(api: TestClient, seed: Seed) -> None:
    link = _create(api, seed)

    locked = api.patch(
        f"{LINKS}/{link['id']}", json={"password": "hunter22"}, headers=seed.alice.auth
    ).json()
    opened = api.patch(
        f"{LINKS}/{link['id']}", json={"password": None}, headers=seed.alice.auth
    ).json()

    assert locked["has_password"] is True
    assert opened["has_password"] is False
    assert "hunter22" not in str(locked)


def test_history_and_rollback(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _create(api, seed, slug="roll", destination="https://v1.example/")
    api.patch(f"{LINKS}/{link['id']}", json={"destination": "v2.example"}, headers=seed.alice.auth)
    api.patch(f"{LINKS}/{link['id']}", json={"destination": "v3.example"}, headers=seed.alice.auth)

    rolled = api.post(
        f"{LINKS}/{link['id']}/rollback", json={"revision": 1}, headers=seed.alice.auth
    )
    history = api.get(f"{LINKS}/{link['id']}/history", headers=seed.alice.auth).json()["data"]

    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["destination"] == "https://v1.example/"
    assert [(r["revision"], r["action"]) for r in history] == [
        (1, "create"),
        (2, "update"),
        (3, "update"),
        (4, "rollback"),
    ]
    assert history[3]["before"]["destination"] == "https://v3.example"
    assert history[3]["changes"] == ["destination"]
    _relay(control_settings)
    record = _projected(control_settings, "sho.rt", "roll")
    assert record is not None
    assert record.destination == "https://v1.example/"


def test_rollback_to_a_missing_revision_or_to_the_same_state_is_refused(
    api: TestClient, seed: Seed
) -> None:
    link = _create(api, seed)

    missing = api.post(
        f"{LINKS}/{link['id']}/rollback", json={"revision": 9}, headers=seed.alice.auth
    )
    same = api.post(f"{LINKS}/{link['id']}/rollback", json={"revision": 1}, headers=seed.alice.auth)

    assert missing.json()["code"] == "revision_not_found"
    assert same.json()["code"] == "nothing_to_roll_back"


def test_archive_hides_from_default_list_and_keeps_redirecting(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _create(api, seed, slug="old-campaign")

    archived = api.patch(f"{LINKS}/{link['id']}", json={"archived": True}, headers=seed.alice.auth)
    listed = api.get(LINKS, headers=seed.alice.auth).json()["data"]
    only = api.get(LINKS, params={"archived": "only"}, headers=seed.alice.auth).json()["data"]
    _relay(control_settings)

    assert archived.json()["archived"] is True
    assert listed == []
    assert [x["id"] for x in only] == [link["id"]]
    assert _projected(control_settings, "sho.rt", "old-campaign") is not None
    history = api.get(f"{LINKS}/{link['id']}/history", headers=seed.alice.auth).json()["data"]
    assert history[-1]["action"] == "archive"


def test_delete_frees_the_slug_and_removes_the_projection(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _create(api, seed, slug="gone")
    _relay(control_settings)

    deleted = api.delete(f"{LINKS}/{link['id']}", headers=seed.alice.auth)
    _relay(control_settings)

    assert deleted.status_code == 204
    assert api.get(f"{LINKS}/{link['id']}", headers=seed.alice.auth).status_code == 404
    assert _projected(control_settings, "sho.rt", "gone") is None
    assert _create(api, seed, slug="gone")["id"] != link["id"]


# -- bulk -----------------------------------------------------------------------------


def _campaign_matrix() -> list[dict]:
    brands = ["acme", "globex", "initech", "umbrella", "hooli"]
    channels = [
        "paid-search",
        "paid-social",
        "email",
        "display",
        "affiliate",
        "sms",
        "push",
        "organic",
        "podcast",
        "video",
    ]
    items = []
    for brand in brands:
        for channel in channels:
            for variant in range(1, 5):
                items.append(
                    {
                        "destination": f"https://{brand}.example/launch",
                        "slug": f"{brand}-{channel}-v{variant}",
                        "utm_source": channel,
                        "utm_medium": "cpc",
                        "utm_campaign": f"{brand}-q2",
                        "utm_content": f"v{variant}",
                        "tags": [brand, channel],
                    }
                )
    return items


def test_campaign_matrix_in_one_call_and_again_safely(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    items = _campaign_matrix()

    first = api.post(f"{LINKS}/bulk", json={"items": items}, headers=seed.alice.auth)
    again = api.post(f"{LINKS}/bulk", json={"items": items}, headers=seed.alice.auth)

    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["created"], body["slug_taken"], body["invalid"]) == (200, 0, 0)
    assert [r["index"] for r in body["results"]] == list(range(200))
    assert body["results"][2]["link"]["slug"] == "acme-paid-search-v3"
    assert body["results"][2]["link"]["utm"]["campaign"] == "acme-q2"
    repeat = again.json()
    assert (repeat["created"], repeat["slug_taken"]) == (0, 200)
    assert [r["link_id"] for r in repeat["results"]] == [r["link"]["id"] for r in body["results"]]
    assert _sql(control_settings, "SELECT count(*) FROM links")[0][0] == 200
    assert (
        _sql(control_settings, "SELECT count(*) FROM events WHERE type = 'link.created'")[0][0]
        == 200
    )


def test_bulk_reports_each_bad_item_and_creates_the_rest(api: TestClient, seed: Seed) -> None:
    items = [
        {"destination": "good.example", "slug": "bulk-ok"},
        {"destination": "javascript:alert(1)"},
        {"destination": 42},
        {"destination": "dup.example", "slug": "bulk-dup"},
        {"destination": "dup.example", "slug": "bulk-dup"},
        {"destination": "x.example", "unknown": 1},
        {"destination": "x.example", "slug": "api"},
    ]

    body = api.post(f"{LINKS}/bulk", json={"items": items}, headers=seed.alice.auth).json()

    statuses = [r["status"] for r in body["results"]]
    assert statuses == [
        "created",
        "invalid",
        "invalid",
        "created",
        "slug_taken",
        "invalid",
        "invalid",
    ]
    assert body["results"][1]["error"]["code"] == "invalid_destination"
    assert body["results"][2]["error"]["code"] == "validation_failed"
    assert body["results"][4]["link_id"] == body["results"][3]["link"]["id"]
    assert body["results"][6]["error"]["code"] == "slug_reserved"


def test_bulk_limits(api: TestClient, seed: Seed) -> None:
    empty = api.post(f"{LINKS}/bulk", json={"items": []}, headers=seed.alice.auth)
    huge = api.post(
        f"{LINKS}/bulk",
        json={"items": [{"destination": "a.example"}] * 1001},
        headers=seed.alice.auth,
    )

    assert empty.status_code == 422
    assert huge.status_code == 422


def test_bulk_of_generated_slugs_never_collides(api: TestClient, seed: Seed) -> None:
    body = api.post(
        f"{LINKS}/bulk",
        json={"items": [{"destination": "a.example"}] * 300},
        headers=seed.alice.auth,
    ).json()

    slugs = [r["link"]["slug"] for r in body["results"]]
    assert body["created"] == 300
    assert len(set(slugs)) == 300


# -- idempotency ----------------------------------------------------------------------


def test_idempotency_key_replays_the_first_response(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "create-1"}
    first = api.post(LINKS, json={"destination": "a.example"}, headers=headers)
    second = api.post(LINKS, json={"destination": "a.example"}, headers=headers)
    other = api.post(LINKS, json={"destination": "b.example"}, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert _sql(control_settings, "SELECT count(*) FROM links")[0][0] == 1


def test_concurrent_requests_with_one_key_create_one_link(
    control_settings: ControlSettings, seed: Seed
) -> None:
    import httpx2 as httpx

    from control.app import create_app

    async def go() -> list[int]:
        app = create_app(control_settings)
        async with app.router.lifespan_context(app) as state:

            async def call() -> int:
                transport = httpx.ASGITransport(app=_with_state(app, state))
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    r = await client.post(
                        LINKS,
                        json={"destination": "a.example"},
                        headers={**seed.alice.auth, "idempotency-key": "race"},
                    )
                    return r.status_code

            return list(await asyncio.gather(*(call() for _ in range(5))))

    assert run(go()) == [201] * 5
    assert _sql(control_settings, "SELECT count(*) FROM links")[0][0] == 1


def _with_state(app, state):  # type: ignore[no-untyped-def]
    async def asgi(scope, receive, send):  # type: ignore[no-untyped-def]
        scope["state"] = dict(state)
        await app(scope, receive, send)

    return asgi


# -- takedown -------------------------------------------------------------------------


def _moderator_key(settings: ControlSettings, seed: Seed) -> dict[str, str]:
    async def go() -> str:
        from control.db import session_factory
        from control.keys import service

        async with resources(settings) as (engine, _), session_factory(engine).begin() as s:
            _, key = await service.create(
                s,
                settings.secret_key,
                uuid.UUID(seed.alice.workspace_id),
                "mod",
                ["links:read", "moderation:write"],
            )
        return key

    return {"authorization": f"Bearer {run(go())}"}


def test_takedown_needs_its_own_scope_and_reaches_the_projection(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    link = _create(api, seed, slug="bad-link")
    path = f"{LINKS}/{link['id']}/takedown"

    refused = api.post(path, json={"reason": "phishing"}, headers=seed.alice.auth)
    down = api.post(
        path, json={"reason": "phishing"}, headers=_moderator_key(control_settings, seed)
    )
    _relay(control_settings)
    record = _projected(control_settings, "sho.rt", "bad-link")

    assert refused.status_code == 403
    assert down.status_code == 200, down.text
    assert down.json()["taken_down"] is True
    assert down.json()["takedown_reason"] == "phishing"
    assert record is not None
    assert record.taken_down is True
    types = [r[0] for r in _sql(control_settings, "SELECT type FROM events ORDER BY id")]
    assert types == ["link.created", "link.takedown_updated"]


def test_operator_cli_takes_down_and_restores(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    from click.testing import CliRunner

    from ricochet.cli import main

    link = _create(api, seed, slug="cli-down")
    env = {
        "RICOCHET_DATABASE_URL": control_settings.database_url,
        "RICOCHET_REDIS_URL": control_settings.redis_url,
        "RICOCHET_SECRET_KEY": control_settings.secret_key,
    }

    down = CliRunner().invoke(
        main, ["links", "takedown", link["id"], "--reason", "malware"], env=env
    )
    after_down = api.get(f"{LINKS}/{link['id']}", headers=seed.alice.auth).json()
    up = CliRunner().invoke(main, ["links", "restore", link["id"]], env=env)
    after_up = api.get(f"{LINKS}/{link['id']}", headers=seed.alice.auth).json()

    assert down.exit_code == 0, down.output
    assert after_down["taken_down"] is True
    assert after_down["takedown_reason"] == "malware"
    assert up.exit_code == 0, up.output
    assert after_up["taken_down"] is False
    assert (
        CliRunner().invoke(main, ["links", "takedown", "nope", "--reason", "x"], env=env).exit_code
        == 2
    )


def test_nul_characters_are_refused_not_a_server_error(api: TestClient, seed: Seed) -> None:
    in_query = api.get(LINKS, params={"q": "a\x00b"}, headers=seed.alice.auth)
    in_body = api.post(
        LINKS,
        content=b'{"destination": "x.example", "external_id": "a\\u0000"}',
        headers={**seed.alice.auth, "content-type": "application/json"},
    )

    assert in_query.status_code == 400
    assert in_body.status_code == 422
