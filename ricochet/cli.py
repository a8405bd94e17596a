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
    "--processes",
    type=click.IntRange(1),
    envvar="RICOCHET_WORKER_PROCESSES",
    default=1,
    show_default=True,
    help="Worker processes (each one event loop) [RICOCHET_WORKER_PROCESSES].",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="Dramatiq threads per process; a process keeps up to threads x "
    "RICOCHET_DELIVERY_BATCH attempts in flight.",
)
@click.option("--ready-file", type=click.Path(path_type=Path), hidden=True)
@_fail_on_settings
def worker(processes: int, threads: int, ready_file: Path | None) -> None:
    """Deliver webhooks: the Dramatiq worker for control.delivery.actors."""
    import signal
    import subprocess
    import threading
    import time

    from control.settings import load
    from ricochet.runner import configure_logging, ready_marker

    cfg = load()
    configure_logging(cfg.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if processes > 1:
        # N copies of this command, one process each; ready when all of them are.
        files = [
            None if ready_file is None else Path(f"{ready_file}.{i}") for i in range(processes)
        ]
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "ricochet", "worker", "--processes", "1"]
                + ["--threads", str(threads)]
                + ([] if f is None else ["--ready-file", str(f)])
            )
            for f in files
        ]
        marked = False
        while not stop.is_set() and all(c.poll() is None for c in children):
            if not marked and all(f is None or f.exists() for f in files):
                ready_marker(ready_file)()
                marked = True
            time.sleep(0.1)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        codes = [child.wait() for child in children]
        sys.exit(0 if stop.is_set() else max(codes) or 1)

    import asyncio

    import dramatiq
    import uvloop

    from control.delivery import actors
    from control.delivery.broker import BrokerUnavailable, broker_url, check

    # The actors' event loop (made by Dramatiq's AsyncIO middleware at process_boot) does
    # every delivery's socket work: uvloop's costs a fraction of the default loop's.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    broker = actors.configure(cfg, threads=threads)
    broker.emit_after("process_boot")
    try:
        check(broker, broker_url(cfg))  # fail now rather than in every consumer thread
    except BrokerUnavailable as exc:
        click.echo(f"ricochet worker: {exc}", err=True)
        sys.exit(1)
    runner = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=actors.POLL_MS)
    runner.start()
    ready_marker(ready_file)()
    stop.wait()
    runner.stop()
    broker.close()


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


# -- links import / export (CSV; columns in control/links/csvio.py and the README) -------

IMPORT_LISTED = 50  # invalid rows printed in the summary; --results has them all


def _workspace_uuid(raw: str) -> Any:
    import uuid

    try:
        return uuid.UUID(raw)
    except ValueError:
        raise click.BadParameter("not a workspace id", param_hint="--workspace") from None


async def _workspace_principal(session: Any, workspace_id: Any) -> Any:
    """The workspace acting as if through a key: no key is involved (nil key id), the
    actor is named where it acts."""
    import uuid

    from control.keys.service import Principal
    from control.workspaces import repository as workspaces

    ws = await workspaces.get(session, workspace_id)
    if ws is None:
        raise click.BadParameter("no such workspace", param_hint="--workspace")
    return Principal(uuid.UUID(int=0), ws.id, ws.organization_id, ("links:read", "links:write"))


def _batches(items: Any, size: int) -> Any:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _ImportProgress:
    """A bar with rate and ETA on a terminal; a line per batch anywhere else (logs, CI)."""

    def __init__(self, total: int) -> None:
        import time

        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.bar: Any = None
        if total and sys.stderr.isatty():
            self.bar = click.progressbar(
                length=total,
                label="importing",
                show_eta=True,
                show_pos=True,
                item_show_func=lambda rate: rate,
                file=sys.stderr,
            )

    def __enter__(self) -> _ImportProgress:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def rate(self) -> float:
        import time

        return self.done / max(time.monotonic() - self.started, 1e-6)

    def advance(self, rows: int, tally: dict[str, int]) -> None:
        self.done += rows
        if self.bar is not None:
            self.bar.update(rows, f"{self.rate():,.0f} rows/s")
        else:
            click.echo(
                f"{self.done}/{self.total} rows: {tally['created']} created, "
                f"{tally['already_there']} already there, {tally['invalid']} invalid "
                f"({self.rate():,.0f} rows/s)",
                err=True,
            )


def _check_file(path: Path) -> tuple[int, int]:
    """Read every row once, with the pure checks only: (rows, rows invalid already)."""
    from control.errors import ApiError
    from control.links import csvio

    rows = invalid = 0
    with path.open(encoding="utf-8-sig", newline="") as lines:
        for _, item in csvio.parse_rows(lines):
            rows += 1
            invalid += isinstance(item, ApiError)
    return rows, invalid


@links.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--workspace", "workspace_id", required=True, help="Workspace id.")
@click.option(
    "--batch",
    type=click.IntRange(1, 1000),
    default=500,
    show_default=True,
    help="Rows per transaction.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a CSV line per row: row, status, short_url, link_id, error_code, error_detail.",
)
@click.option("--dry-run", is_flag=True, help="Run every check, database ones too, then roll back.")
@_fail_on_settings
def links_import(
    file: Path, workspace_id: str, batch: int, results: Path | None, dry_run: bool
) -> None:
    """Create links from FILE, a CSV with a header row naming its columns.

    Columns: destination (required), slug, domain, tags (separated by | or ;), space,
    utm_source, utm_medium, utm_campaign, utm_term, utm_content, utm_preset, expires_at
    (RFC 3339 with a zone, or YYYY-MM-DD: through that day, UTC), expired_url,
    external_id, redirect_status, track_conversions, forward_query (true/false, 1/0,
    yes/no). An export's id, short_url, clicks, created_at and archived are ignored.

    Every row is read and checked first; then rows are created in batches, one
    transaction each, where what needs the database (space, domain, taken slugs) is
    checked. Bad rows never stop good ones. A row whose slug the workspace already has
    (or, without a slug, whose external_id it has) is "already there": importing a file
    again creates nothing new. Row numbers are spreadsheet rows (the header is row 1).

    Exit status: 0 every row created or already there; 1 some rows invalid; 2 usage
    errors (workspace, unreadable file, unknown columns), nothing written; 3 stopped by
    an error (batches before it stay created).
    """
    import contextlib
    import csv
    import time

    from sqlalchemy.exc import SQLAlchemyError

    from control.db import create_engine, session_factory
    from control.links import csvio, io_api

    ws_id = _workspace_uuid(workspace_id)
    started = time.monotonic()
    try:
        total, unparsable = _check_file(file)
    except csvio.HeaderError as exc:
        raise click.UsageError(f"{file}: {exc.detail}") from None
    except (OSError, UnicodeError) as exc:
        raise click.UsageError(f"cannot read {file}: {exc}") from None
    click.echo(f"{file}: {total} rows read, {unparsable} invalid before database checks", err=True)
    cfg = _control_settings()
    tally = {"created": 0, "already_there": 0, "invalid": 0}
    listed: list[str] = []

    async def go() -> None:
        engine = create_engine(cfg.sqlalchemy_url, 1)
        sessions = session_factory(engine)
        try:
            async with sessions.begin() as session:
                principal = await _workspace_principal(session, ws_id)
            with contextlib.ExitStack() as stack:
                writer = None
                if results is not None:
                    try:
                        out = stack.enter_context(results.open("w", encoding="utf-8", newline=""))
                    except OSError as exc:
                        raise click.UsageError(f"cannot write {results}: {exc}") from None
                    writer = csv.writer(out)
                    writer.writerow(csvio.RESULT_HEADER)
                progress = stack.enter_context(_ImportProgress(total))
                lines = stack.enter_context(file.open(encoding="utf-8-sig", newline=""))
                for chunk in _batches(csvio.parse_rows(lines), batch):
                    done = await io_api.import_batch(
                        sessions, cfg, principal, chunk, "cli-import", dry_run=dry_run
                    )
                    for row in done:
                        tally[row.status] += 1
                        if row.status == "invalid" and len(listed) < IMPORT_LISTED:
                            listed.append(csvio.describe(row))
                    if writer is not None:
                        writer.writerows(csvio.result_row(row) for row in done)
                    progress.advance(len(chunk), tally)
        finally:
            await engine.dispose()

    try:
        asyncio.run(go())
    except (SQLAlchemyError, OSError) as exc:
        done = sum(tally.values())
        click.echo(
            f"ricochet: import stopped after {done} rows ({tally['created']} created): {exc}",
            err=True,
        )
        sys.exit(3)
    elapsed = time.monotonic() - started
    created = "would create" if dry_run else "created"
    click.echo(
        f"{created} {tally['created']}, already there {tally['already_there']}, "
        f"invalid {tally['invalid']}: {total} rows in {elapsed:.1f} s "
        f"({total / max(elapsed, 1e-6):,.0f} rows/s)"
        + (" (dry run: nothing written)" if dry_run else "")
    )
    if tally["invalid"]:
        click.echo("invalid rows:")
        for line in listed:
            click.echo(f"  {line}")
        more = tally["invalid"] - len(listed)
        if more:
            where = f"all in {results}" if results else "--results FILE lists them all"
            click.echo(f"  … and {more} more ({where})")
    sys.exit(1 if tally["invalid"] else 0)


class _LazyOutput:
    """Opened at the first write, so a refused export leaves no empty file behind."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.stream: Any = None

    def write(self, data: bytes) -> None:
        if self.path is None:
            click.echo(data, nl=False)  # bytes go to the binary stdout as they are
            return
        if self.stream is None:
            self.stream = self.path.open("wb")
        self.stream.write(data)
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


@links.command("export")
@click.option("--workspace", "workspace_id", required=True, help="Workspace id.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default="csv",
    show_default=True,
    help="csv: the import's columns and more; jsonl: one API link object per line.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File [stdout]."
)
@click.option(
    "--tag", "tags", multiple=True, help="Only links with this tag (repeat: all of them)."
)
@click.option("--space", help="Only links in this space (id or name).")
@click.option("--domain", help="Only links on this domain.")
@click.option("--q", help="Only links whose slug, destination or external_id contains this.")
@click.option(
    "--archived",
    type=click.Choice(["exclude", "include", "only"]),
    default="exclude",
    show_default=True,
)
@_fail_on_settings
def links_export(
    workspace_id: str,
    fmt: str,
    output: Path | None,
    tags: tuple[str, ...],
    space: str | None,
    domain: str | None,
    q: str | None,
    archived: str,
) -> None:
    """Write the links of a workspace, newest first, as CSV or JSON Lines.

    Streams page by page (200 links, each page its own short transaction): constant
    memory whatever the size. The CSV has id, short_url, slug, domain, destination, tags
    (separated by |), space, utm_*, external_id, clicks, created_at, archived, expires_at,
    and imports again as it is.
    """
    import msgspec

    from control.db import create_engine, session_factory
    from control.errors import ApiError
    from control.links import io_api
    from control.links.schemas import LinkQuery

    ws_id = _workspace_uuid(workspace_id)
    filters = {"tag": list(tags), "space": space, "domain": domain, "q": q, "archived": archived}
    try:
        query = msgspec.convert(filters, LinkQuery)
    except msgspec.ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    cfg = _control_settings()
    out = _LazyOutput(output)
    count = 0

    async def go() -> None:
        nonlocal count
        engine = create_engine(cfg.sqlalchemy_url, 1)
        sessions = session_factory(engine)
        try:
            async with sessions.begin() as session:
                principal = await _workspace_principal(session, ws_id)
            header = True
            async for page in io_api.export_pages(sessions, cfg, principal, query):
                out.write(io_api.encode_page(page, fmt, header=header))
                header = False
                count += len(page)
        finally:
            await engine.dispose()

    try:
        asyncio.run(go())
    except ApiError as exc:  # e.g. an unknown domain
        raise click.UsageError(f"{exc.code}: {exc.detail}") from None
    finally:
        out.close()
    click.echo(f"exported {count} links", err=True)


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


@main.group("clicks")
def clicks_group() -> None:
    """Stored clicks: the daily partitions of the clicks table."""


@clicks_group.command("maintain")
@click.option(
    "--days-ahead",
    type=click.IntRange(0, 366),
    default=7,
    show_default=True,
    help="Make sure partitions exist from yesterday through this many days ahead (UTC).",
)
@click.option(
    "--retention-days",
    type=click.IntRange(min=0),
    default=None,
    help="Drop partitions whose clicks are all older than this; 0 keeps all "
    "[RICOCHET_CLICK_RETENTION_DAYS, 400].",
)
@_fail_on_settings
def clicks_maintain(days_ahead: int, retention_days: int | None) -> None:
    """Create daily click partitions ahead and drop those past the retention.

    The relay's leader does this every hour (and ingest makes any partition it finds
    missing), so this is for a first setup, a changed retention, or a check. Safe to run
    any time, also while traffic flows: a drop that cannot get its lock within a few
    seconds fails, and is simply done at the next run. Hourly and per-link totals are kept.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from control.clicks import partitions
    from control.db import create_engine

    cfg = _control_settings()
    retention = cfg.click_retention_days if retention_days is None else retention_days

    async def go() -> tuple[list[str], list[str]]:
        engine = create_engine(cfg.sqlalchemy_url, 1)
        try:
            return await partitions.maintain(engine, retention, days_ahead)
        finally:
            await engine.dispose()

    try:
        created, dropped = asyncio.run(go())
    except (SQLAlchemyError, OSError) as exc:
        click.echo(f"ricochet: click partition maintenance failed: {exc}", err=True)
        sys.exit(1)
    for name in created:
        click.echo(f"created {name}")
    for name in dropped:
        click.echo(f"dropped {name}")
    kept = f"older than {retention} days" if retention else "none: retention is off"
    click.echo(f"{len(created)} partitions created, {len(dropped)} dropped ({kept})")


# -- benchmarks (ricochet/bench_cli.py; the bench code itself is imported only when run) --

from ricochet.bench_cli import bench as _bench  # noqa: E402

main.add_command(_bench)
