"""One job of a kind per state file: a lock that dies with its process.

Two migrations of one mailbox pair at once copied everything twice (issue 9). A job
(``migrate``, ``backup``, ``import``) takes an exclusive OS file lock on
``<state file>.<kind>.lock`` for as long as it runs; the kernel drops the lock when the
process ends however it ends (kill -9 included), so a stale lock never blocks anyone.
The file also says who holds it (pid, command, start time), so the second process can
name the first in its one-sentence refusal. ``fcntl.flock`` on POSIX, ``msvcrt.locking``
on Windows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from .errors import SwitchoverError

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass

def try_lock(fd: int) -> bool:
    """Take the exclusive lock of an open file without waiting (True when taken); it
    dies with the process. Portable: the demo's folder lock uses it too."""
    return _try_lock(fd)


def unlock(fd: int) -> None:
    _unlock(fd)


#: what each kind of job is called in a sentence
VERBS = {"migrate": "migrating", "backup": "backing up", "import": "importing",
         "notify": "sending change notices", "watch": "watching"}


class JobBusy(SwitchoverError):
    """Another process holds the lock of this job kind (exit 4)."""

    exit_code = 4

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


class JobLock:
    """``with JobLock(state_path, "migrate"):`` or ``acquire()`` / ``release()``."""

    def __init__(self, state_path: str | os.PathLike[str], kind: str, command: str = "") -> None:
        self.path = Path(f"{os.fspath(state_path)}.{kind}.lock")
        self.kind = kind
        self.command = command or " ".join(Path(a).name if i == 0 else a
                                           for i, a in enumerate(sys.argv[:3]))
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock now, or None when nobody does."""
        if self._fd is not None:
            return self._info()
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return None
        try:
            if _try_lock(fd):
                _unlock(fd)
                return None
            return self._read(fd)
        finally:
            os.close(fd)

    def acquire(self) -> "JobLock":
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not _try_lock(fd):
            info = self._read(fd)
            os.close(fd)
            raise JobBusy(self._refusal(info), info)
        self._fd = fd
        data = json.dumps(self._info()).encode()
        try:
            # the holder's note lives after the first byte (the byte Windows locks)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, b" " + data)
        except OSError:
            pass
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        _unlock(fd)
        os.close(fd)

    def __enter__(self) -> "JobLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # -- who -------------------------------------------------------------------------------
    def _info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "command": self.command, "kind": self.kind,
                "since": dt.datetime.now().isoformat(timespec="seconds")}

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            raw = os.read(fd, 4096).strip()
            return json.loads(raw) if raw else {}
        except (OSError, ValueError):
            return {}

    def _refusal(self, info: dict[str, Any]) -> str:
        verb = VERBS.get(self.kind, f"running {self.kind}")
        who = f"process {info['pid']}" if info.get("pid") else "another process"
        cmd = f" ('{info['command']}')" if info.get("command") else ""
        since = ""
        if info.get("since"):
            try:
                since = f" since {dt.datetime.fromisoformat(info['since']):%Y-%m-%d %H:%M}"
            except ValueError:
                pass
        return (f"Another switchover is already {verb} with this state file: {who}{cmd}{since}; "
                f"wait for it to finish or stop it, then try again.")
