"""An append-only file of click batches written while Redis is unreachable.

Each frame is a 4-byte big-endian length and one encoded batch (the bytes that would have
gone into a stream entry). Any worker may replay any spool file, including one left by a
worker that crashed: it claims the file by renaming it, sends every frame, then deletes
it. A crash mid-replay re-sends frames already sent; ingest is idempotent on click ids.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

_LEN = struct.Struct(">I")


class Spool:
    def __init__(self, directory: str | Path, name: str) -> None:
        self.dir = Path(directory)
        self.name = name
        self._fd: int | None = None
        self.frames = 0  # written by this process since start

    @property
    def path(self) -> Path:
        return self.dir / f"{self.name}.spool"

    def append(self, payload: bytes) -> None:
        """Write one frame; raises OSError when the disk refuses (the caller keeps the data)."""
        if self._fd is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # One write per frame: O_APPEND keeps frames whole even if another writer appears.
        os.write(self._fd, _LEN.pack(len(payload)) + payload)
        self.frames += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def has_files(self) -> bool:
        return self.dir.is_dir() and any(self.dir.glob("*.spool"))

    async def replay(self, send: Callable[[bytes], Awaitable[None]]) -> int:
        """Send every spooled frame (ours and orphans'); returns how many were sent."""
        self.close()  # our own file is replayed like any other; a new one starts after
        sent = 0
        if not self.dir.is_dir():
            return 0
        for path in sorted(self.dir.glob("*.spool")):
            claimed = path.with_suffix(f".replaying-{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another worker claimed it first
            try:
                for frame in read_frames(claimed):
                    await send(frame)
                    sent += 1
            except BaseException:
                # Put it back for the next attempt (frames already sent will be deduplicated).
                with contextlib.suppress(OSError):
                    claimed.rename(path.with_name(f"{path.stem}-retry-{os.getpid()}.spool"))
                raise
            claimed.unlink()
        return sent

    def orphans_of_dead(self) -> None:
        """Files a crashed replayer left behind become spool files again."""
        if not self.dir.is_dir():
            return
        for path in self.dir.glob("*.replaying-*"):
            pid = (
                int(path.suffix.rsplit("-", 1)[1]) if path.suffix.rsplit("-", 1)[1].isdigit() else 0
            )
            if pid and _alive(pid):
                continue
            with contextlib.suppress(OSError):
                path.rename(path.with_name(f"{path.stem}-orphan-{pid}.spool"))


def read_frames(path: Path) -> list[bytes]:
    data = path.read_bytes()
    frames, offset = [], 0
    while offset + _LEN.size <= len(data):
        (size,) = _LEN.unpack_from(data, offset)
        start = offset + _LEN.size
        if start + size > len(data):
            break  # a torn last frame (crash mid-write): its batch never fully left memory
        frames.append(data[start : start + size])
        offset = start + size
    return frames


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
