from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from control.db import create_engine, session_factory
from control.settings import ControlSettings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Tenant:
    workspace_id: str
    api_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"}


@dataclass(frozen=True)
class Seed:
    alice: Tenant
    bob: Tenant


@contextlib.asynccontextmanager
async def resources(settings: ControlSettings) -> AsyncIterator[tuple[AsyncEngine, Redis]]:
    engine = create_engine(settings.sqlalchemy_url, 2)
    redis = Redis.from_url(settings.redis_url)
    try:
        yield engine, redis
    finally:
        await redis.aclose()
        await engine.dispose()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _make_tenant(settings: ControlSettings, name: str) -> Tenant:
    from control.domains import service as domains
    from control.keys import service as keys
    from control.workspaces import service as workspaces

    async with resources(settings) as (engine, _), session_factory(engine).begin() as session:
        await domains.ensure_default(session, settings.default_domain)
        ws = await workspaces.create(session, name)
        _, key = await keys.create(session, settings.secret_key, ws.id, "test")
    return Tenant(str(ws.id), key)


@pytest.fixture
def seed(control_settings: ControlSettings) -> Seed:
    async def go() -> Seed:
        return Seed(
            await _make_tenant(control_settings, "alice"),
            await _make_tenant(control_settings, "bob"),
        )

    return run(go())


@pytest.fixture
def api(control_settings: ControlSettings) -> Iterator[TestClient]:
    from control.app import create_app

    with TestClient(create_app(control_settings)) as client:
        yield client
