"""Child-process helpers shared by the embedded servers and the `up` supervisor."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` asking Linux to signal the child when its parent dies.

    This is what keeps `kill -9` of `ricochet up` (or of a test run) from leaving servers
    behind: the kernel, not our cleanup code, delivers the signal.
    """

    def _set() -> None:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return _set


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            # Own session: a terminal's Ctrl-C reaches only the supervisor, which then stops
            # children in order (edge before Redis, so the click buffer drains).
            start_new_session=True,
            **as_user(user),
            preexec_fn=die_with_parent(death_signal),
        )


def as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments to run as `user` with only that user's primary group.

    Keeping root's groups would make root-group directory modes apply to the child.
    """
    if user is None:
        return {}
    import pwd

    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves bind: a port whose old connections linger in TIME_WAIT is
        # free for a new listener, and a restart must get its old port back.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """`preferred` when it is free, else any free port the kernel hands out."""
    if preferred and port_is_free(preferred, host):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def wait_port(port: int, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll until something accepts on 127.0.0.1:`port`; False if `proc` exits or time runs out."""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Signal, wait, and only then kill: graceful first so buffers drain."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)


def live_process(pid: int, must_contain: str) -> psutil.Process | None:
    """The process `pid` if it is alive and its command line mentions `must_contain`.

    Guards against pid reuse: a stale pid file may name an unrelated process now.
    """
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if must_contain in " ".join(proc.cmdline()):
            return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return None


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
