"""Operator commands against the real database."""

from __future__ import annotations

import json

from click.testing import CliRunner
from starlette.testclient import TestClient

from control.settings import ControlSettings
from ricochet.cli import main


def _env(settings: ControlSettings) -> dict[str, str]:
    return {
        "RICOCHET_DATABASE_URL": settings.database_url,
        "RICOCHET_REDIS_URL": settings.redis_url,
        "RICOCHET_SECRET_KEY": settings.secret_key,
        "RICOCHET_DEFAULT_DOMAIN": settings.default_domain,
    }


def test_workspace_and_key_created_by_cli_can_create_links(
    control_settings: ControlSettings, api: TestClient, seed: object
) -> None:
    runner = CliRunner()
    env = _env(control_settings)

    ws = runner.invoke(main, ["workspace", "create", "acme", "--json"], env=env)
    assert ws.exit_code == 0, ws.output
    workspace_id = json.loads(ws.output)["workspace_id"]
    key = runner.invoke(
        main,
        ["api-key", "create", "--workspace", workspace_id, "--scope", "links:write", "--json"],
        env=env,
    )
    assert key.exit_code == 0, key.output
    created = json.loads(key.output)

    response = api.post(
        "/api/v1/links",
        json={"destination": "acme.example"},
        headers={"authorization": f"Bearer {created['key']}"},
    )

    assert response.status_code == 201
    assert response.json()["workspace_id"] == workspace_id
    assert created["scopes"] == ["links:write"]


def test_api_key_for_unknown_workspace_or_scope_is_refused(
    control_settings: ControlSettings,
) -> None:
    runner = CliRunner()
    env = _env(control_settings)

    missing = runner.invoke(
        main, ["api-key", "create", "--workspace", "00000000-0000-0000-0000-000000000000"], env=env
    )
    malformed = runner.invoke(main, ["api-key", "create", "--workspace", "nope"], env=env)

    assert missing.exit_code == 2
    assert "no such workspace" in missing.output
    assert malformed.exit_code == 2


def test_unknown_scope_is_refused_with_a_usage_error(control_settings: ControlSettings) -> None:
    runner = CliRunner()
    env = _env(control_settings)
    ws = json.loads(runner.invoke(main, ["workspace", "create", "x", "--json"], env=env).output)

    result = runner.invoke(
        main,
        ["api-key", "create", "--workspace", ws["workspace_id"], "--scope", "links:delete"],
        env=env,
    )

    assert result.exit_code == 2
    assert "Unknown scopes: links:delete" in result.output


def test_migrate_is_idempotent(control_settings: ControlSettings) -> None:
    result = CliRunner().invoke(main, ["migrate"], env=_env(control_settings))

    assert result.exit_code == 0, result.output


def test_models_and_migrations_agree(control_settings: ControlSettings) -> None:
    from alembic import command

    from control.migrate import alembic_config

    # Raises when autogenerate would produce a new migration.
    command.check(alembic_config(control_settings.libpq_url))
