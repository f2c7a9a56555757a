"""An exclusive lock on a run directory while it trains, so two trainers never write one run.

`RunLock(run_dir).acquire()` takes `fcntl.flock` on `run_dir/.lock` without waiting and writes the holder's pid,
host and start time into it (JSON). The operating system drops the lock when the holder exits, even on
`kill -9`, so a stale `.lock` file never blocks a later run: only a live holder does. Where `fcntl` is missing
(Windows) the lock is a logged no-op.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import AudiodiffError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger("audiodiff.train")
LOCK_FILE = ".lock"


class LockHeld(AudiodiffError):
    """Another live process holds the run directory's lock; `.holder` is what it wrote (pid, host, started)."""

    def __init__(self, path: Path, holder: dict):
        self.path, self.holder = Path(path), holder
        super().__init__(f"{self.path.parent}: in use by {describe_holder(holder)} (lock file {self.path})")


def describe_holder(holder: dict) -> str:
    """`pid 123 on host h since 2024-05-01 12:00:00` from a lock file's contents (or `an unknown process`)."""
    if not holder.get("pid"):
        return "another process (it has not written its pid yet)"
    text = f"pid {holder['pid']} on host {holder.get('host', '?')}"
    if holder.get("started"):
        text += f" since {holder['started']}"
    return text


class RunLock:
    """`flock` on `run_dir/.lock` for the lifetime of a training run.

    Args:
        run_dir: the run directory (created when missing).
    """

    def __init__(self, run_dir):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        """Take the lock now or raise :class:`LockHeld` naming the holder; never waits."""
        if fcntl is None:  # pragma: no cover - Windows
            log.warning("run directory locking needs fcntl (POSIX); %s is not locked", self.path.parent)
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockHeld(self.path, holder) from None
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv[:8]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the file stays, emptied: it only names a holder while one is alive)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        holder = json.loads(text) if text.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def read_holder(run_dir) -> dict:
    """What the current (or last) holder of `run_dir`'s lock wrote; `{}` when nothing is there."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return {}
    try:
        return _read(fd)
    finally:
        os.close(fd)
