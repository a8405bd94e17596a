"""The `ricochet` command: every process and operator action, as noun-verb groups."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import click

from shared.settings import SettingsError


def _fail_on_settings(fn: Any) -> Any:
    """Turn configuration errors into a clear message and exit code 2, not a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SettingsError as exc:
            click.echo(f"ricochet: {exc}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ricochet")
def main() -> None:
    """Ricochet: branded short links at scale.

    Configuration comes from RICOCHET_* environment variables (see the README); any
    variable may instead be read from a file named by its *_FILE twin.
    """


# -- processes -------------------------------------------------------------------------


def _serve(target: str, host: str, port: int, workers: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    Granian(
        target,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        factory=True,
        log_access=False,
        backlog=2048,
    ).serve()


@main.command()
@_fail_on_settings
def edge() -> None:
    """Serve the redirect edge (RICOCHET_EDGE_HOST/PORT/WORKERS)."""
    import secrets
    import shutil
    import tempfile

    from edge.settings import load

    cfg = load()
    # Workers must agree on the cookie-signing secret; without one configured, mint one
    # here, before Granian starts them, and hand it down through the environment.
    if cfg.edge_secret is None:
        os.environ["RICOCHET_EDGE_SECRET"] = secrets.token_urlsafe(48)
    # Prometheus multi-process mode: each worker writes its counters to files here, and
    # /_/metrics sums them. A fresh directory per run, so old workers' numbers never leak in.
    metrics_dir = Path(cfg.metrics_dir or tempfile.mkdtemp(prefix="ricochet-edge-metrics-"))
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    try:
        _serve("edge.app:create_app", cfg.edge_host, cfg.edge_port, cfg.edge_workers)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


@main.command()
@_fail_on_settings
def control() -> None:
    """Serve the control plane: management API (RICOCHET_CONTROL_HOST/PORT/WORKERS)."""
    from control.settings import load

    cfg = load()
    _serve("control.app:create_app", cfg.control_host, cfg.control_port, cfg.control_workers)


def _run_worker(make: Any, ready_file: Path | None) -> None:
    """Run `make(settings, engine, redis).run(stop, on_ready)` until SIGTERM or SIGINT."""
    from redis.asyncio import Redis

    from control.db import create_engine
    from control.settings import load
    from ricochet.runner import configure_logging, ready_marker, run_service

    cfg = load()
    configure_logging(cfg.log_level)

    async def run(stop: asyncio.Event) -> None:
        engine = create_engine(cfg.sqlalchemy_url, 2)
        redis = Redis.from_url(cfg.redis_url)
        try:
            await make(cfg, engine, redis).run(stop, ready_marker(ready_file))
        finally:
            await redis.aclose()
            await engine.dispose()

    run_service(run)


@main.command()
@click.option("--ready-file", type=click.Path(path_type=Path), hidden=True)
@_fail_on_settings
def relay(ready_file: Path | None) -> None:
    """Relay committed outbox rows to Redis (projection + cache invalidation)."""

    from control.relay.service import Relay

    _run_worker(lambda cfg, engine, redis: Relay(cfg, engine, redis), ready_file)


@main.command()
@click.option(
    "--consumer",
    default=None,
    help="Consumer name in the group; keep it stable across restarts [host name].",
)
@click.option("--ready-file", type=click.Path(path_type=Path), hidden=True)
@_fail_on_settings
def ingest(consumer: str | None, ready_file: Path | None) -> None:
    """Store clicks from the click streams into PostgreSQL."""

    from control.ingest.consumer import Ingest

    name = consumer or socket.gethostname()
    _run_worker(lambda cfg, engine, redis: Ingest(cfg, engine, redis, name), ready_file)


@main.command()
@click.option(
    "--database-url",
    envvar="RICOCHET_DATABASE_URL",
    required=True,
    help="PostgreSQL URL [RICOCHET_DATABASE_URL].",
)
def migrate(database_url: str) -> None:
    """Apply database migrations (safe to run concurrently and repeatedly)."""
    from control.migrate import upgrade

    upgrade(database_url)
    click.echo("migrations applied")


@main.command()
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    envvar="RICOCHET_HOME",
    default=".ricochet",
    show_default=True,
    help="Where embedded servers keep data, logs and dev.json [RICOCHET_HOME].",
)
@click.option("--edge-port", type=int, envvar="RICOCHET_EDGE_PORT", default=8400, show_default=True)
@click.option(
    "--control-port", type=int, envvar="RICOCHET_CONTROL_PORT", default=8401, show_default=True
)
def up(home: Path, edge_port: int, control_port: int) -> None:
    """Run the whole system locally, on embedded PostgreSQL and Redis unless
    RICOCHET_DATABASE_URL / RICOCHET_REDIS_URL are set. Ctrl-C stops everything."""
    from ricochet.up import Stack

    sys.exit(Stack(home.resolve(), edge_port, control_port).run())


# -- operator actions ------------------------------------------------------------------


def _control_settings() -> Any:
    from control.settings import load

    return load()


def _in_session(work: Any) -> Any:
    """Run `work(session, settings)` in one committed transaction."""
    from control.db import create_engine, session_factory

    cfg = _control_settings()

    async def go() -> Any:
        engine = create_engine(cfg.sqlalchemy_url, 1)
        try:
            async with session_factory(engine).begin() as session:
                return await work(session, cfg)
        finally:
            await engine.dispose()

    return asyncio.run(go())


@main.group()
def workspace() -> None:
    """Workspaces: the unit that owns links, keys and domains."""


@workspace.command("create")
@click.argument("name")
@click.option("--organization", help="Organization name [same as the workspace].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_fail_on_settings
def workspace_create(name: str, organization: str | None, as_json: bool) -> None:
    """Create a workspace NAME in a new organization."""
    from control.workspaces import service

    async def work(session: Any, cfg: Any) -> dict[str, str]:
        ws = await service.create(session, name, organization)
        return {
            "workspace_id": str(ws.id),
            "organization_id": str(ws.organization_id),
            "name": ws.name,
        }

    out = _in_session(work)
    click.echo(json.dumps(out) if as_json else f"workspace {out['workspace_id']} ({name})")


@main.group("api-key")
def api_key() -> None:
    """Workspace API keys (shown once, stored as HMAC hashes)."""


@api_key.command("create")
@click.option("--workspace", "workspace_id", required=True, help="Workspace id.")
@click.option("--name", default="cli", show_default=True, help="A label to tell keys apart.")
@click.option(
    "--scope", "scopes", multiple=True, help="Scope such as links:write (repeatable) [all scopes]."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_fail_on_settings
def api_key_create(workspace_id: str, name: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Create an API key; the key is printed once and cannot be shown again."""
    import uuid

    from control.errors import ApiError
    from control.keys import service
    from control.workspaces import repository as workspaces

    try:
        ws_id = uuid.UUID(workspace_id)
    except ValueError:
        raise click.BadParameter("not a workspace id", param_hint="--workspace") from None

    async def work(session: Any, cfg: Any) -> dict[str, Any]:
        if await workspaces.get(session, ws_id) is None:
            raise click.BadParameter("no such workspace", param_hint="--workspace")
        row, key = await service.create(session, cfg.secret_key, ws_id, name, list(scopes) or None)
        return {"id": str(row.id), "key": key, "prefix": row.prefix, "scopes": row.scopes}

    try:
        out = _in_session(work)
    except ApiError as exc:
        raise click.UsageError(exc.detail) from None
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(out["key"])
        click.echo(f"(key id {out['id']}; store it now, it is not shown again)", err=True)




@main.group()
def links() -> None:
    """Operator actions on links of any workspace."""


def _set_takedown(link_id: str, reason: str | None) -> dict[str, Any]:
    import uuid

    from control.links import repository, service
    from control.workspaces import repository as workspaces

    try:
        wanted = uuid.UUID(link_id)
    except ValueError:
        raise click.BadParameter("not a link id", param_hint="LINK_ID") from None

    async def work(session: Any, cfg: Any) -> dict[str, Any]:
        link = await repository.get_any_live(session, wanted, lock=True)
        if link is None:
            raise click.BadParameter("no such link", param_hint="LINK_ID")
        workspace = await workspaces.get(session, link.workspace_id)
        assert workspace is not None
        out = await service.set_takedown(
            session, cfg, link, workspace.organization_id, "operator", reason
        )
        return {
            "id": out.id,
            "short_url": out.short_url,
            "taken_down": out.taken_down,
            "reason": out.takedown_reason,
        }

    result: dict[str, Any] = _in_session(work)
    return result


@links.command("takedown")
@click.argument("link_id")
@click.option("--reason", required=True, help="Shown to visitors and sent in the event.")
@_fail_on_settings
def links_takedown(link_id: str, reason: str) -> None:
    """Take LINK_ID down: it answers 410 and `link.takedown_updated` is emitted."""
    if not reason.strip():
        raise click.BadParameter("give a reason", param_hint="--reason")
    out = _set_takedown(link_id, reason.strip())
    click.echo(f"taken down: {out['short_url']} ({out['reason']})")


@links.command("restore")
@click.argument("link_id")
@_fail_on_settings
def links_restore(link_id: str) -> None:
    """Lift the takedown of LINK_ID."""
    out = _set_takedown(link_id, None)
    click.echo(f"restored: {out['short_url']}")


@main.group()
def cache() -> None:
    """The Redis projection of links that the edge reads."""


@cache.command("rebuild")
@_fail_on_settings
def cache_rebuild() -> None:
    """Re-project every live link into Redis, e.g. after Redis lost its data.

    Pages through the links of all workspaces in id order, 1,000 at a time, and writes each
    with the relay's version guard: a newer value already in Redis is never rolled back.
    Safe while everything serves, and to run again. It only writes live links: keys of
    deleted links still in Redis are left for the relay to remove.
    """
    import time

    from redis.asyncio import Redis
    from redis.exceptions import RedisError
    from sqlalchemy.exc import SQLAlchemyError

    from control.db import create_engine
    from control.internal.service import rebuild

    cfg = _control_settings()
    started = time.monotonic()
    done = 0

    def progress(count: int) -> None:
        nonlocal done
        done = count
        click.echo(f"rebuilt {count} links…", err=True)

    async def go() -> int:
        engine = create_engine(cfg.sqlalchemy_url, 1)
        redis = Redis.from_url(cfg.redis_url)
        try:
            return await rebuild(engine, redis, progress)
        finally:
            await redis.aclose()
            await engine.dispose()

    try:
        total = asyncio.run(go())
    except (RedisError, SQLAlchemyError, OSError) as exc:  # say how far it got, no traceback
        click.echo(f"ricochet: cache rebuild failed after {done} links: {exc}", err=True)
        sys.exit(1)
    click.echo(f"rebuilt {total} links in {time.monotonic() - started:.1f}s", err=True)
