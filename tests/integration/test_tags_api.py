"""The tags API against real PostgreSQL: CRUD, paging, isolation, scopes and bad input."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.testclient import TestClient

from control.settings import ControlSettings
from tests.integration.conftest import Seed, Tenant, resources, run


def _problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def _create(api: TestClient, tenant: Tenant, name: str, **extra: Any) -> dict:
    response = api.post("/api/v1/tags", json={"name": name, **extra}, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _in_db(settings: ControlSettings, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    from control.db import session_factory

    async def go() -> Any:
        async with resources(settings) as (engine, _), session_factory(engine).begin() as session:
            return await work(session)

    return run(go())


def _read_only_key(settings: ControlSettings, tenant: Tenant) -> dict[str, str]:
    from control.keys import service

    async def create(session: AsyncSession) -> str:
        _, key = await service.create(
            session, settings.secret_key, uuid.UUID(tenant.workspace_id), "ro", ["links:read"]
        )
        return key

    return {"authorization": f"Bearer {_in_db(settings, create)}"}


def _tagged_link(
    settings: ControlSettings, tenant: Tenant, tag_ids: list[str], deleted: bool = False
) -> uuid.UUID:
    """A link row straight in SQL: the links API is not what is under test here."""

    async def insert(session: AsyncSession) -> uuid.UUID:
        link_id = uuid.uuid4()
        await session.execute(
            text(
                "INSERT INTO links (id, workspace_id, domain_id, slug, destination,"
                " redirect_status, version, deleted_at)"
                " SELECT :id, :ws, id, :slug, 'https://a.example/', 302, 1,"
                " CASE WHEN :deleted THEN now() END FROM domains WHERE is_default"
            ),
            {
                "id": link_id,
                "ws": uuid.UUID(tenant.workspace_id),
                "slug": link_id.hex[:12],
                "deleted": deleted,
            },
        )
        for tag_id in tag_ids:
            await session.execute(
                text("INSERT INTO link_tags (link_id, tag_id) VALUES (:link, :tag)"),
                {"link": link_id, "tag": uuid.UUID(tag_id)},
            )
        return link_id

    result: uuid.UUID = _in_db(settings, insert)
    return result


# -- create and read --------------------------------------------------------------------


def test_create_tag_answers_201_with_the_tag(api: TestClient, seed: Seed) -> None:
    # Given a name with padding and an upper-case colour
    body = {"name": "  Launch Q2 ", "color": "#FFAA00"}

    # When the tag is created
    response = api.post("/api/v1/tags", json=body, headers=seed.alice.auth)

    # Then it is stored trimmed, the colour lower-cased, with no links yet
    assert response.status_code == 201, response.text
    tag = response.json()
    assert (tag["name"], tag["color"], tag["link_count"]) == ("Launch Q2", "#ffaa00", 0)
    assert set(tag) == {"id", "name", "color", "link_count", "created_at"}
    assert response.headers["location"] == f"/api/v1/tags/{tag['id']}"


def test_tag_without_colour_has_null_colour(api: TestClient, seed: Seed) -> None:
    assert _create(api, seed.alice, "plain")["color"] is None


def test_created_tag_can_be_read_back(api: TestClient, seed: Seed) -> None:
    created = _create(api, seed.alice, "news", color="#000000")

    response = api.get(f"/api/v1/tags/{created['id']}", headers=seed.alice.auth)

    assert response.status_code == 200
    assert response.json() == created


def test_existing_name_answers_409_name_taken(api: TestClient, seed: Seed) -> None:
    # Given a tag
    _create(api, seed.alice, "promo")

    # When another is created with the same name (after trimming)
    response = api.post("/api/v1/tags", json={"name": " promo "}, headers=seed.alice.auth)

    # Then it conflicts
    _problem(response, 409, "name_taken")


def test_the_same_name_is_free_in_another_workspace(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "promo")

    assert _create(api, seed.bob, "promo")["name"] == "promo"


# -- list ---------------------------------------------------------------------------------


def test_list_shows_tags_oldest_first(api: TestClient, seed: Seed) -> None:
    first = _create(api, seed.alice, "b-first")
    second = _create(api, seed.alice, "a-second")

    response = api.get("/api/v1/tags", headers=seed.alice.auth)

    assert response.status_code == 200
    assert response.json() == {"data": [first, second], "next_cursor": None}


def test_list_pages_through_every_tag_once(api: TestClient, seed: Seed) -> None:
    # Given more tags than one page holds
    created = {_create(api, seed.alice, f"tag-{i}")["id"] for i in range(7)}

    # When the pages are followed until next_cursor is null
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/tags", params=params, headers=seed.alice.auth).json()
        pages += 1
        seen.extend(t["id"] for t in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    # Then every tag is seen exactly once, in three pages
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created
    assert pages == 3


def test_a_full_last_page_has_no_next_cursor(api: TestClient, seed: Seed) -> None:
    for i in range(2):
        _create(api, seed.alice, f"t{i}")

    page = api.get("/api/v1/tags", params={"limit": "2"}, headers=seed.alice.auth).json()

    assert len(page["data"]) == 2
    assert page["next_cursor"] is None


def test_list_filters_by_name_substring_ignoring_case(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "Summer Sale")
    _create(api, seed.alice, "winter")
    _create(api, seed.alice, "100% off")

    def names(q: str) -> list[str]:
        response = api.get("/api/v1/tags", params={"q": q}, headers=seed.alice.auth)
        return [t["name"] for t in response.json()["data"]]

    assert names("SALE") == ["Summer Sale"]
    assert names("%") == ["100% off"]  # a LIKE wildcard is matched literally
    assert names("_") == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "invalid_query"),
        ({"limit": "201"}, "invalid_query"),
        ({"limit": "many"}, "invalid_query"),
        ({"sort": "name"}, "invalid_query"),
        ({"cursor": "not-a-cursor!"}, "invalid_cursor"),
        ({"q": "a\x00b"}, "invalid_query"),
    ],
)
def test_bad_list_parameters_answer_400(
    api: TestClient, seed: Seed, params: dict[str, str], code: str
) -> None:
    _problem(api.get("/api/v1/tags", params=params, headers=seed.alice.auth), 400, code)


# -- update and delete --------------------------------------------------------------------


def test_patch_renames_and_recolours(api: TestClient, seed: Seed) -> None:
    tag = _create(api, seed.alice, "old", color="#111111")

    response = api.patch(
        f"/api/v1/tags/{tag['id']}",
        json={"name": "new", "color": "#222222"},
        headers=seed.alice.auth,
    )

    assert response.status_code == 200, response.text
    assert response.json() == {**tag, "name": "new", "color": "#222222"}
    assert api.get(f"/api/v1/tags/{tag['id']}", headers=seed.alice.auth).json()["name"] == "new"


def test_patch_with_null_colour_removes_it_and_keeps_the_name(api: TestClient, seed: Seed) -> None:
    tag = _create(api, seed.alice, "keep", color="#111111")

    response = api.patch(f"/api/v1/tags/{tag['id']}", json={"color": None}, headers=seed.alice.auth)

    assert response.json() == {**tag, "color": None}


def test_empty_patch_changes_nothing(api: TestClient, seed: Seed) -> None:
    tag = _create(api, seed.alice, "same", color="#111111")

    response = api.patch(f"/api/v1/tags/{tag['id']}", json={}, headers=seed.alice.auth)

    assert response.json() == tag


def test_rename_to_a_taken_name_answers_409_name_taken(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "taken")
    tag = _create(api, seed.alice, "mine")

    response = api.patch(
        f"/api/v1/tags/{tag['id']}", json={"name": "taken"}, headers=seed.alice.auth
    )

    _problem(response, 409, "name_taken")
    assert api.get(f"/api/v1/tags/{tag['id']}", headers=seed.alice.auth).json()["name"] == "mine"


def test_rename_to_its_own_name_is_fine(api: TestClient, seed: Seed) -> None:
    tag = _create(api, seed.alice, "mine")

    response = api.patch(
        f"/api/v1/tags/{tag['id']}", json={"name": "mine"}, headers=seed.alice.auth
    )

    assert response.status_code == 200


def test_delete_answers_204_and_the_tag_is_gone(api: TestClient, seed: Seed) -> None:
    tag = _create(api, seed.alice, "bye")

    response = api.delete(f"/api/v1/tags/{tag['id']}", headers=seed.alice.auth)

    assert response.status_code == 204
    assert response.content == b""
    _problem(api.get(f"/api/v1/tags/{tag['id']}", headers=seed.alice.auth), 404, "tag_not_found")
    _problem(api.delete(f"/api/v1/tags/{tag['id']}", headers=seed.alice.auth), 404, "tag_not_found")


def test_a_deleted_tags_name_can_be_used_again(api: TestClient, seed: Seed) -> None:
    tag = _create(api, seed.alice, "again")
    api.delete(f"/api/v1/tags/{tag['id']}", headers=seed.alice.auth)

    assert _create(api, seed.alice, "again")["id"] != tag["id"]


# -- link counts --------------------------------------------------------------------------


def test_link_count_counts_live_links_only(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    # Given a tag on two live links and one deleted link
    tag = _create(api, seed.alice, "counted")
    for deleted in (False, False, True):
        _tagged_link(control_settings, seed.alice, [tag["id"]], deleted)

    # When read alone and in the list / Then both count the live links
    assert api.get(f"/api/v1/tags/{tag['id']}", headers=seed.alice.auth).json()["link_count"] == 2
    listed = api.get("/api/v1/tags", headers=seed.alice.auth).json()["data"]
    assert [t["link_count"] for t in listed] == [2]


def test_deleting_a_tag_detaches_it_from_its_links(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    tag = _create(api, seed.alice, "detach")
    _tagged_link(control_settings, seed.alice, [tag["id"]])

    api.delete(f"/api/v1/tags/{tag['id']}", headers=seed.alice.auth)

    async def count(session: AsyncSession) -> int:
        return (await session.execute(text("SELECT count(*) FROM link_tags"))).scalar_one()

    assert _in_db(control_settings, count) == 0


# -- isolation, ids and scopes ------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_another_workspaces_tag_answers_404(api: TestClient, seed: Seed, method: str) -> None:
    tag = _create(api, seed.alice, "private")

    response = api.request(
        method, f"/api/v1/tags/{tag['id']}", json={"name": "stolen"}, headers=seed.bob.auth
    )

    _problem(response, 404, "tag_not_found")
    assert api.get(f"/api/v1/tags/{tag['id']}", headers=seed.alice.auth).json() == tag


def test_another_workspaces_tags_are_not_listed(api: TestClient, seed: Seed) -> None:
    _create(api, seed.alice, "private")

    response = api.get("/api/v1/tags", headers=seed.bob.auth)

    assert response.json() == {"data": [], "next_cursor": None}


@pytest.mark.parametrize("tag_id", ["nope", "00000000-0000-0000-0000-000000000000", "1' OR 1=1"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_or_malformed_tag_id_answers_404(
    api: TestClient, seed: Seed, tag_id: str, method: str
) -> None:
    response = api.request(method, f"/api/v1/tags/{tag_id}", json={}, headers=seed.alice.auth)

    _problem(response, 404, "tag_not_found")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/tags", {"name": "x"}),
        ("PATCH", "/api/v1/tags/{id}", {"name": "x"}),
        ("DELETE", "/api/v1/tags/{id}", None),
    ],
)
def test_key_without_write_scope_answers_403(
    api: TestClient,
    seed: Seed,
    control_settings: ControlSettings,
    method: str,
    path: str,
    body: dict | None,
) -> None:
    # Given a tag and a key that may only read
    tag = _create(api, seed.alice, "guarded")
    read_only = _read_only_key(control_settings, seed.alice)

    # When it writes
    response = api.request(method, path.format(id=tag["id"]), json=body, headers=read_only)

    # Then it is refused, and reading still works
    assert _problem(response, 403, "insufficient_scope")["scope"] == "links:write"
    assert api.get(f"/api/v1/tags/{tag['id']}", headers=read_only).json() == tag
    assert api.get("/api/v1/tags", headers=read_only).json()["data"] == [tag]


def test_missing_key_answers_401(api: TestClient, seed: Seed) -> None:
    _problem(api.get("/api/v1/tags"), 401, "unauthorized")


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": 5}, "name"),
        ({"name": None}, "name"),
        ({"name": "x", "surprise": True}, "surprise"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "a" * 65}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "a\u202eb"}, "name"),  # a bidi override makes look-alike names
        ({"name": "x", "color": "red"}, "color"),
        ({"name": "x", "color": "#abc"}, "color"),
        ({"name": "x", "color": "#aabbcc\n"}, "color"),
        ({"name": "x", "color": 123}, "color"),
    ],
)
def test_bad_create_body_answers_422_validation_failed(
    api: TestClient, seed: Seed, body: dict, field: str
) -> None:
    response = api.post("/api/v1/tags", json=body, headers=seed.alice.auth)

    assert _problem(response, 422, "validation_failed")["field"] == field


def test_a_name_of_64_characters_is_accepted(api: TestClient, seed: Seed) -> None:
    assert _create(api, seed.alice, "é" * 64)["name"] == "é" * 64


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"color": "blue"}, "color"),
        ({"id": "x"}, "id"),
    ],
)
def test_bad_patch_body_answers_422_validation_failed(
    api: TestClient, seed: Seed, body: dict, field: str
) -> None:
    tag = _create(api, seed.alice, "target")

    response = api.patch(f"/api/v1/tags/{tag['id']}", json=body, headers=seed.alice.auth)

    assert _problem(response, 422, "validation_failed")["field"] == field


def test_malformed_json_answers_400(api: TestClient, seed: Seed) -> None:
    response = api.post(
        "/api/v1/tags",
        content=b'{"name": ',
        headers={**seed.alice.auth, "content-type": "application/json"},
    )

    _problem(response, 400, "malformed_json")


# -- idempotency --------------------------------------------------------------------------


def test_a_repeated_idempotency_key_replays_the_first_answer(api: TestClient, seed: Seed) -> None:
    # Given a tag created with an Idempotency-Key
    headers = {**seed.alice.auth, "idempotency-key": "tag-1"}
    first = api.post("/api/v1/tags", json={"name": "once"}, headers=headers)

    # When the same request is sent again
    again = api.post("/api/v1/tags", json={"name": "once"}, headers=headers)

    # Then the first answer is replayed, not a conflict, and only one tag exists
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert len(api.get("/api/v1/tags", headers=seed.alice.auth).json()["data"]) == 1


def test_an_idempotency_key_reused_with_another_body_answers_422(
    api: TestClient, seed: Seed
) -> None:
    headers = {**seed.alice.auth, "idempotency-key": "tag-2"}
    api.post("/api/v1/tags", json={"name": "one"}, headers=headers)

    response = api.post("/api/v1/tags", json={"name": "two"}, headers=headers)

    _problem(response, 422, "idempotency_key_reused")
    assert len(api.get("/api/v1/tags", headers=seed.alice.auth).json()["data"]) == 1


# -- helpers for the links service --------------------------------------------------------


def test_ensure_by_names_creates_the_missing_and_reuses_the_existing(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    from control.tags import service

    existing = _create(api, seed.alice, "old")
    workspace = uuid.UUID(seed.alice.workspace_id)

    async def ensure(session: AsyncSession) -> dict[str, uuid.UUID]:
        return await service.ensure_by_names(session, workspace, ["old", "new"])

    ids = _in_db(control_settings, ensure)

    assert set(ids) == {"old", "new"}
    assert str(ids["old"]) == existing["id"]
    listed = api.get("/api/v1/tags", headers=seed.alice.auth).json()["data"]
    assert {t["name"]: t["id"] for t in listed} == {k: str(v) for k, v in ids.items()}


def test_concurrent_ensure_by_names_agree_on_one_tag(
    seed: Seed, control_settings: ControlSettings
) -> None:
    from control.db import session_factory
    from control.tags import service

    workspace = uuid.UUID(seed.alice.workspace_id)

    async def go() -> tuple[dict[str, uuid.UUID], dict[str, uuid.UUID]]:
        async with resources(control_settings) as (engine, _):
            sessions = session_factory(engine)

            async def second(names: list[str]) -> dict[str, uuid.UUID]:
                async with sessions.begin() as session:
                    return await service.ensure_by_names(session, workspace, names)

            # Given one transaction that created "shared" and has not committed yet
            async with sessions.begin() as session:
                first = await service.ensure_by_names(session, workspace, ["a", "shared"])
                # When another creates the same name meanwhile
                racing = asyncio.create_task(second(["b", "shared"]))
                await asyncio.sleep(0.3)
                # Then it waits on the unique index rather than failing or duplicating
                assert not racing.done()
            return first, await racing

    first, other = run(go())

    assert first["shared"] == other["shared"]
    assert len({first["a"], other["b"], first["shared"]}) == 3


def test_ensure_by_names_of_nothing_is_nothing(
    seed: Seed, control_settings: ControlSettings
) -> None:
    from control.tags import service

    async def ensure(session: AsyncSession) -> dict[str, uuid.UUID]:
        return await service.ensure_by_names(session, uuid.UUID(seed.alice.workspace_id), [])

    assert _in_db(control_settings, ensure) == {}


def test_names_for_links_are_sorted_and_cover_every_link(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    from control.tags import service

    zeta = _create(api, seed.alice, "zeta")
    alpha = _create(api, seed.alice, "alpha")
    for tag in (zeta, alpha):
        _tagged_link(control_settings, seed.alice, [tag["id"]])

    async def names(session: AsyncSession) -> tuple[dict[uuid.UUID, list[str]], uuid.UUID]:
        link_ids = list((await session.execute(text("SELECT id FROM links"))).scalars())
        untagged = uuid.uuid4()
        return await service.names_for_links(session, [*link_ids, untagged]), untagged

    result, untagged = _in_db(control_settings, names)

    assert sorted(v for k, v in result.items() if k != untagged) == [["alpha"], ["zeta"]]
    assert result[untagged] == []


@pytest.mark.parametrize("raw", ["", "  ", "x" * 65, "a\nb"])
def test_normalise_name_refuses_bad_names_as_invalid_tag(raw: str) -> None:
    from control.errors import ApiError
    from control.tags.service import normalise_name

    with pytest.raises(ApiError) as caught:
        normalise_name(raw)

    assert (caught.value.code, caught.value.status, caught.value.extra["field"]) == (
        "invalid_tag",
        422,
        "tags",
    )


def test_normalise_name_trims() -> None:
    from control.tags.service import normalise_name

    assert normalise_name("  Launch ") == "Launch"
