from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@dataclass
class Up:
    """A real `ricochet up` process on embedded servers in its own home."""

    home: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> dict[str, str]:
        return self.start_with({}, timeout)

    def start_with(self, settings: dict[str, str], timeout: float = 90) -> dict[str, str]:
        """Start with these RICOCHET_* variables (and no others from this environment)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RICOCHET_")}
        env.update(settings)
        (self.home / "dev.json").unlink(missing_ok=True)
        with (self.home.parent / f"{self.home.name}-up.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ricochet",
                    "up",
                    "--home",
                    str(self.home),
                    "--edge-port",
                    "0",
                    "--control-port",
                    "0",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, like a shell job
            )
        deadline = time.monotonic() + timeout
        dev_json = self.home / "dev.json"
        while not dev_json.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"ricochet up exited: {self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no dev.json after {timeout}s: {self.log_text()}")
            time.sleep(0.1)
        return json.loads(dev_json.read_text())  # type: ignore[no-any-return]

    def log_text(self) -> str:
        return (self.home.parent / f"{self.home.name}-up.log").read_text(errors="replace")[-3000:]

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        """SIGINT goes to the whole process group, as a terminal's Ctrl-C does."""
        assert self.proc is not None
        if sig == signal.SIGINT:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def spawn_edge(
    redis_url: str, spool_dir: Path, settings: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    """A real `ricochet edge` with two Granian workers on a free port, listening, with only
    these RICOCHET_* settings (none of this environment's)."""
    from ricochet import procs

    port = procs.free_port(None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RICOCHET_")}
    env.update(
        {
            "RICOCHET_REDIS_URL": redis_url,
            "RICOCHET_EDGE_PORT": str(port),
            "RICOCHET_EDGE_WORKERS": "2",
            "RICOCHET_SPOOL_DIR": str(spool_dir),
            **settings,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ricochet", "edge"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if not procs.wait_port(port, time.monotonic() + 30, proc):
        proc.kill()
        proc.wait(10)
        raise AssertionError("the edge never listened")
    return proc, port


def wait_gone(processes: list[psutil.Process], timeout: float = 30) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    runner = Up(tmp_path / "home")
    yield runner
    # Printed output is shown only when the test fails: the logs a reader needs then.
    print(runner.log_text())
    for log in sorted((runner.home / "logs").glob("*.log")):
        print(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}")
    if runner.proc is not None and runner.proc.poll() is None:
        runner.proc.kill()
        runner.proc.wait(10)
