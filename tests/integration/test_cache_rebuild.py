"""`ricochet cache rebuild`: the whole Redis projection back from PostgreSQL."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import redis
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from control.internal.service import rebuild
from control.relay.service import Relay
from control.settings import ControlSettings
from ricochet.cli import main
from shared.keys import LINK_PREFIX, link_key
from shared.records import LinkRecord, decode_link, encode_link
from tests.integration.conftest import Seed, resources, run


def _env(settings: ControlSettings) -> dict[str, str]:
    return {
        "RICOCHET_DATABASE_URL": settings.database_url,
        "RICOCHET_REDIS_URL": settings.redis_url,
        "RICOCHET_SECRET_KEY": settings.secret_key,
    }


def _rebuild(settings: ControlSettings) -> Result:
    result = CliRunner().invoke(main, ["cache", "rebuild"], env=_env(settings))
    assert result.exit_code == 0, result.output
    return result


def _bulk(api: TestClient, seed: Seed, count: int, prefix: str) -> list[dict[str, Any]]:
    items = [
        {"destination": f"{prefix}.example/{n}", "slug": f"{prefix}-{n}"} for n in range(count)
    ]
    response = api.post("/api/v1/links/bulk", json={"items": items}, headers=seed.alice.auth)
    assert response.status_code == 200, response.text
    assert response.json()["created"] == count
    return [r["link"] for r in response.json()["results"]]


def _relay(settings: ControlSettings) -> None:
    async def go() -> None:
        async with resources(settings) as (engine, client):
            await Relay(settings, engine, client).drain()

    run(go())


def _projection(settings: ControlSettings) -> dict[str, tuple[int, LinkRecord]]:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        out = {}
        for key in client.scan_iter(match=f"{LINK_PREFIX}*"):
            values: Any = client.hmget(key, ["v", "r"])
            version, raw = values
            out[key.decode()] = (int(version), decode_link(raw))
        return out
    finally:
        client.close()


def _flush(settings: ControlSettings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    client.close()


def test_rebuild_restores_every_live_link_after_redis_lost_everything(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    relayed = _bulk(api, seed, 3, "r")
    _relay(control_settings)
    pending = _bulk(api, seed, 2, "p")  # never relayed
    moved = relayed[0]
    patched = api.patch(
        f"/api/v1/links/{moved['id']}", json={"destination": "new.example"}, headers=seed.alice.auth
    )
    assert patched.json()["version"] == 2
    gone = pending[1]
    assert api.delete(f"/api/v1/links/{gone['id']}", headers=seed.alice.auth).status_code == 204
    bob = api.post(
        "/api/v1/links", json={"destination": "b.example", "slug": "bob"}, headers=seed.bob.auth
    ).json()
    _flush(control_settings)

    result = _rebuild(control_settings)

    projection = _projection(control_settings)
    live = [link for link in [*relayed, *pending, bob] if link["id"] != gone["id"]]
    assert set(projection) == {link_key("sho.rt", link["slug"]) for link in live}
    for link in live:
        version, record = projection[link_key("sho.rt", link["slug"])]
        assert record.link_id == link["id"]
        assert version == record.version == (2 if link["id"] == moved["id"] else 1)
    assert projection[link_key("sho.rt", moved["slug"])][1].destination == "https://new.example"
    assert "rebuilt 5 links…" in result.stderr
    assert "rebuilt 5 links in " in result.stderr
    assert result.stdout == ""


def test_rebuild_is_idempotent(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    _bulk(api, seed, 3, "i")
    _flush(control_settings)

    _rebuild(control_settings)
    first = _projection(control_settings)
    again = _rebuild(control_settings)

    assert _projection(control_settings) == first
    assert len(first) == 3
    assert "rebuilt 3 links in " in again.stderr


def test_rebuild_keeps_a_newer_version_already_in_redis(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    [link] = _bulk(api, seed, 1, "n")
    key = link_key("sho.rt", link["slug"])
    newer = LinkRecord(link["id"], seed.alice.workspace_id, "d", 7, "https://newer.example/")
    client = redis.Redis.from_url(control_settings.redis_url)
    client.flushdb()
    client.hset(key, mapping={"v": 7, "r": encode_link(newer)})
    client.close()

    _rebuild(control_settings)

    assert _projection(control_settings)[key] == (7, newer)


def test_rebuild_leaves_keys_of_deleted_links_to_the_relay(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    [link] = _bulk(api, seed, 1, "d")
    _relay(control_settings)
    api.delete(f"/api/v1/links/{link['id']}", headers=seed.alice.auth)

    _rebuild(control_settings)
    assert link_key("sho.rt", link["slug"]) in _projection(control_settings)  # stale, not ours

    _relay(control_settings)
    assert _projection(control_settings) == {}


def test_rebuild_pages_in_id_order_with_constant_page_size(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    _bulk(api, seed, 5, "k")
    seen: list[int] = []

    async def go() -> int:
        async with resources(control_settings) as (engine, client):
            await client.flushdb()
            return await rebuild(engine, client, seen.append, page_size=2)

    assert run(go()) == 5
    assert seen == [2, 4, 5]
    assert len(_projection(control_settings)) == 5


def test_rebuild_waits_for_a_delete_in_progress_and_skips_the_link(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    first, racy, last = _bulk(api, seed, 3, "w")

    with psycopg.connect(control_settings.libpq_url) as writer, ThreadPoolExecutor(1) as pool:
        writer.execute("SELECT 1 FROM links WHERE id = %s FOR UPDATE", (racy["id"],))
        pending = pool.submit(
            CliRunner().invoke, main, ["cache", "rebuild"], env=_env(control_settings)
        )
        time.sleep(0.5)
        assert not pending.done()
        writer.execute(
            "UPDATE links SET deleted_at = now(), version = 2 WHERE id = %s", (racy["id"],)
        )
        writer.commit()
        result = pending.result(timeout=10)

    assert result.exit_code == 0, result.output
    assert set(_projection(control_settings)) == {
        link_key("sho.rt", first["slug"]),
        link_key("sho.rt", last["slug"]),
    }
    assert "rebuilt 2 links in " in result.stderr


def test_rebuild_of_an_empty_database_says_so(control_settings: ControlSettings) -> None:
    result = _rebuild(control_settings)

    assert "rebuilt 0 links in " in result.stderr


def test_rebuild_with_redis_down_fails_cleanly(
    api: TestClient, seed: Seed, control_settings: ControlSettings
) -> None:
    _bulk(api, seed, 1, "x")
    env = {**_env(control_settings), "RICOCHET_REDIS_URL": "redis://127.0.0.1:1/0"}

    result = CliRunner().invoke(main, ["cache", "rebuild"], env=env)

    assert result.exit_code == 1
    assert "cache rebuild failed after 0 links" in result.stderr
