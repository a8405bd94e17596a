"""`ricochet up`: the whole system on one machine, for development and demos.

Starts embedded PostgreSQL and Redis unless URLs are given, migrates, makes sure a dev
workspace, API key and default domain exist, runs every process, writes `dev.json` when all
are ready, and on Ctrl-C or SIGTERM stops everything it started (children also die with it
if it is killed outright, through the kernel's parent-death signal).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ricochet import procs
from ricochet.embedded import EmbeddedPostgres, EmbeddedRedis

DEV_WORKSPACE = "dev"
READY_TIMEOUT = 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    ready: str  # an http URL to poll, or a file path to wait for
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class Stack:
    home: Path
    edge_port: int
    control_port: int
    children: list[Child] = field(default_factory=list)
    pg: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    _stop: bool = False

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        try:
            env = self._prepare()
            self._start_children(env)
            if not self._stop:
                self._write_dev_json(env)
                return self._watch()
            return 0
        except click.ClickException:
            raise
        except Exception as exc:
            click.echo(f"ricochet up: {exc}", err=True)
            return 1
        finally:
            self._shutdown()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop = True

    # -- servers and data ---------------------------------------------------------------

    def _secret(self, name: str) -> str:
        """RICOCHET_<NAME> if set, else one generated once and kept (0600) in RICOCHET_HOME."""
        if value := os.environ.get(f"RICOCHET_{name.upper()}"):
            return value
        path = self.home / name
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    def _prepare(self) -> dict[str, str]:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "run").mkdir(exist_ok=True)
        for stale in (self.home / "run").glob("*.ready"):
            stale.unlink()
        database_url = os.environ.get("RICOCHET_DATABASE_URL")
        redis_url = os.environ.get("RICOCHET_REDIS_URL")
        if not database_url:
            click.echo("starting embedded PostgreSQL ...", err=True)
            self.pg = EmbeddedPostgres(self.home)
            database_url = self.pg.start()
        if not redis_url:
            click.echo("starting embedded Redis ...", err=True)
            self.redis = EmbeddedRedis(self.home)
            redis_url = self.redis.start()
        self.edge_port = procs.free_port(self.edge_port)
        self.control_port = procs.free_port(self.control_port)
        while self.control_port == self.edge_port:
            self.control_port = procs.free_port(None)
        env = {
            **os.environ,
            "RICOCHET_DATABASE_URL": database_url,
            "RICOCHET_REDIS_URL": redis_url,
            "RICOCHET_SECRET_KEY": self._secret("secret_key"),
            "RICOCHET_EDGE_PORT": str(self.edge_port),
            "RICOCHET_CONTROL_PORT": str(self.control_port),
            "RICOCHET_SHORT_URL_SCHEME": os.environ.get("RICOCHET_SHORT_URL_SCHEME", "http"),
            "RICOCHET_SHORT_URL_PORT": os.environ.get(
                "RICOCHET_SHORT_URL_PORT", str(self.edge_port)
            ),
            # The README's thin path calls the edge as 127.0.0.1: other names of the dev
            # default domain (localhost), so they get its links; any other Host gets 404.
            "RICOCHET_DEFAULT_DOMAIN_ALIASES": os.environ.get(
                "RICOCHET_DEFAULT_DOMAIN_ALIASES", "127.0.0.1,localhost,[::1]"
            ),
            # The edge fills Redis misses from the control plane with this shared token.
            "RICOCHET_CONTROL_URL": f"http://127.0.0.1:{self.control_port}",
            "RICOCHET_INTERNAL_TOKEN": self._secret("internal_token"),
            "RICOCHET_EDGE_SECRET": self._secret("edge_secret"),
            "RICOCHET_SPOOL_DIR": os.environ.get("RICOCHET_SPOOL_DIR", str(self.home / "spool")),
            # One delivery worker's event loop is bound to one core (bench webhooks: 170/s
            # with one process, 290/s with two on 2 cores): a process per core, up to 2.
            "RICOCHET_WORKER_PROCESSES": os.environ.get(
                "RICOCHET_WORKER_PROCESSES", str(min(2, os.cpu_count() or 1))
            ),
        }
        click.echo("migrating ...", err=True)
        from control.migrate import upgrade

        upgrade(database_url)
        env["RICOCHET_API_KEY"], env["RICOCHET_WORKSPACE_ID"] = self._ensure_dev_data(env)
        return env

    def _ensure_dev_data(self, env: dict[str, str]) -> tuple[str, str]:
        """Dev workspace, default domain and an API key kept (0600) in RICOCHET_HOME."""
        from control.db import create_engine, session_factory
        from control.domains import service as domains
        from control.keys import service as keys
        from control.settings import ControlSettings
        from control.workspaces import repository as workspaces
        from control.workspaces import service as workspace_service
        from shared.settings import load_settings

        cfg = load_settings(ControlSettings, env)
        key_file = self.home / "dev-api-key"

        async def go() -> tuple[str, str]:
            engine = create_engine(cfg.sqlalchemy_url, 1)
            try:
                async with session_factory(engine).begin() as session:
                    await domains.ensure_default(session, cfg.default_domain)
                    ws = await workspaces.find_by_name(session, DEV_WORKSPACE)
                    if ws is None:
                        ws = await workspace_service.create(session, DEV_WORKSPACE)
                    saved = key_file.read_text().split() if key_file.exists() else []
                    if (
                        len(saved) == 2
                        and saved[1] == str(ws.id)
                        and await keys.key_is_active(session, cfg.secret_key, saved[0])
                    ):
                        return saved[0], str(ws.id)
                    _, plaintext = await keys.create(session, cfg.secret_key, ws.id, "dev")
                key_file.write_text(f"{plaintext} {ws.id}\n")
                key_file.chmod(0o600)
                return plaintext, str(ws.id)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    # -- processes ------------------------------------------------------------------------

    def _start_children(self, env: dict[str, str]) -> None:
        run = self.home / "run"
        me = [sys.executable, "-m", "ricochet"]
        self.children = [
            Child("control", [*me, "control"], f"http://127.0.0.1:{self.control_port}/_/livez"),
            Child("edge", [*me, "edge"], f"http://127.0.0.1:{self.edge_port}/_/readyz"),
            Child(
                "relay",
                [*me, "relay", "--ready-file", str(run / "relay.ready")],
                str(run / "relay.ready"),
            ),
            Child(
                "ingest",
                [*me, "ingest", "--consumer", "dev", "--ready-file", str(run / "ingest.ready")],
                str(run / "ingest.ready"),
            ),
            Child(
                "worker",
                [*me, "worker", "--ready-file", str(run / "worker.ready")],
                str(run / "worker.ready"),
            ),
        ]
        logs = self.home / "logs"
        for child in self.children:
            child.proc = procs.spawn(child.argv, log=logs / f"{child.name}.log", env=env)
        deadline = time.monotonic() + READY_TIMEOUT
        for child in self.children:
            while not self._stop and not self._is_ready(child):
                assert child.proc is not None
                if child.proc.poll() is not None:
                    raise RuntimeError(
                        f"{child.name} exited during start:\n"
                        f"{procs.tail(logs / f'{child.name}.log')}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{child.name} not ready after {READY_TIMEOUT:.0f}s")
                time.sleep(0.05)

    @staticmethod
    def _is_ready(child: Child) -> bool:
        if not child.ready.startswith("http"):
            return Path(child.ready).exists()
        try:
            with urllib.request.urlopen(child.ready, timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def _write_dev_json(self, env: dict[str, str]) -> None:
        info = {
            "edge_url": f"http://127.0.0.1:{self.edge_port}",
            "control_url": f"http://127.0.0.1:{self.control_port}",
            "api_key": env["RICOCHET_API_KEY"],
            "workspace_id": env["RICOCHET_WORKSPACE_ID"],
            "database_url": env["RICOCHET_DATABASE_URL"],
            "redis_url": env["RICOCHET_REDIS_URL"],
        }
        path = self.home / "dev.json"
        path.write_text(json.dumps(info, indent=2) + "\n")
        path.chmod(0o600)
        click.echo("\nRicochet is up:")
        for name, value in info.items():
            click.echo(f"  {name:<13} {value}")
        click.echo(f"\n  written to {path}; logs in {self.home / 'logs'}. Ctrl-C stops everything.")

    def _watch(self) -> int:
        while not self._stop:
            for child in self.children:
                assert child.proc is not None
                if child.proc.poll() is not None:
                    click.echo(
                        f"ricochet up: {child.name} exited with {child.proc.returncode}; "
                        f"stopping. See {self.home / 'logs' / (child.name + '.log')}",
                        err=True,
                    )
                    return 1
            time.sleep(0.2)
        return 0

    def _shutdown(self) -> None:
        click.echo("\nstopping ...", err=True)
        # Edge first so its click buffer drains into Redis while ingest still runs.
        order = {"edge": 0, "control": 1, "relay": 2, "ingest": 3, "worker": 4}
        for child in sorted(self.children, key=lambda c: order.get(c.name, 9)):
            if child.proc is not None:
                procs.stop(child.proc, signal.SIGTERM, timeout=20)
        if self.pg is not None:
            self.pg.stop()
        if self.redis is not None:
            self.redis.stop()
        (self.home / "dev.json").unlink(missing_ok=True)
        click.echo("stopped.", err=True)
