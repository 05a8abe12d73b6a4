"""The backup directory on disk: where each file goes, names that are legal on Linux,
macOS and Windows, and the durable writes that make ``kill -9`` safe.

Layout of a backup directory ``ROOT``::

    ROOT/index.sqlite                       what is there (core/backup/index.py)
    ROOT/.lock                              held by the one run writing here
    ROOT/mbox/<folder>/<sub>.mbox            one mboxrd file per folder
    ROOT/eml/<folder>/<sub>/<uidvalidity>-<uid>[-subject].eml   one file per message

Durable writes: an mbox is appended and fsynced, checking that it still ends where the
index says; an eml is written to ``.tmp-<name>``, fsynced and renamed, then its folder
is fsynced. Every folder and file is private to the user (0700 / 0600).
"""

from __future__ import annotations

import email.header
import hashlib
import os
import re
from pathlib import Path
from typing import IO, Any, Iterable

from ..errors import SwitchoverError
from ..mail.identity import header_block, parse_header_block
from ..store import make_private_dirs, open_private

FORMATS = ("mbox", "eml")

_ILLEGAL = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
             *(f"LPT{i}" for i in range(1, 10))}
_EML_NAME = re.compile(r"^(\d+)-(\d+)(?:-.*)?\.eml$")


class DiskError(SwitchoverError):
    """Writing the backup failed locally (disk full, permissions): the run stops."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_component(name: str) -> str:
    """A folder name part usable as a file name on Linux, macOS and Windows (UTF-8 kept)."""
    s = _ILLEGAL.sub("_", name).rstrip(" .")
    if not s or s in (".", ".."):
        s = "_" + s
    if s.split(".")[0].upper() in _RESERVED:
        s = "_" + s
    return s[:120]


def folder_parts(name: str, delimiter: str | None) -> list[str]:
    parts = name.split(delimiter) if delimiter else [name]
    return [safe_component(p) for p in parts if p != ""] or ["_"]


def subject_slug(raw: bytes, limit: int = 40) -> str:
    value = parse_header_block(header_block(raw)).get(b"SUBJECT", b"")
    if not value:
        return ""
    try:
        text = str(email.header.make_header(email.header.decode_header(value.decode("utf-8", "replace"))))
    except Exception:
        text = value.decode("utf-8", "replace")
    slug = re.sub(r"[^\w]+", "_", text).strip("_")
    return slug[:limit].strip("_")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class BackupDir:
    """One backup directory: paths and the writes into it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def create(self) -> None:
        try:
            make_private_dirs(self.root)
        except OSError as e:
            raise SwitchoverError(f"Cannot create the backup directory {self.root} ({e.strerror}).") from None

    def lock(self) -> IO[Any]:
        """An exclusive lock on ROOT/.lock for the run (two writers would interleave the
        mbox); closing the returned file releases it."""
        f = open_private(self.root / ".lock", "a+b")
        try:
            import fcntl
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:                    # Windows: no advisory locks, go on
            pass
        except OSError:
            f.close()
            raise SwitchoverError(f"Another switchover backup is writing to {self.root} right now.") from None
        return f

    def mbox_path(self, rel: str) -> Path:
        return self.root / "mbox" / (rel + ".mbox")

    def eml_dir(self, rel: str) -> Path:
        return self.root / "eml" / rel

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # -- writes -------------------------------------------------------------------------
    def append_mbox(self, path: Path, expected_end: int, entries: list[bytes]) -> None:
        """Append ``entries`` at ``expected_end`` (where the index says the file ends)
        and fsync."""
        try:
            make_private_dirs(path.parent)
            with open_private(path, "ab") as f:
                if f.tell() != expected_end:
                    raise DiskError(f"{path} changed while the backup was writing it.")
                for e in entries:
                    f.write(e)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise DiskError(f"Writing {path} failed ({e.strerror}).") from None

    def write_eml(self, eml_dir: Path, uidvalidity: int, uid: int, raw: bytes) -> str:
        """Write one message file (tmp + fsync + rename); its path relative to ROOT. The
        caller fsyncs ``eml_dir`` once per batch."""
        slug = subject_slug(raw)
        fname = f"{uidvalidity}-{uid}" + (f"-{slug}" if slug else "") + ".eml"
        target = eml_dir / fname
        tmp = eml_dir / f".tmp-{fname}"
        try:
            make_private_dirs(eml_dir)
            with open_private(tmp, "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as e:
            raise DiskError(f"Writing {target} failed ({e.strerror}).") from None
        return self.rel(target)

    # -- repairs after a killed run -----------------------------------------------------
    @staticmethod
    def mbox_size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    @staticmethod
    def truncate(path: Path, end: int) -> None:
        """Cut a half-written tail (the index does not know it)."""
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())

    def remove_strays(self, eml_dir: Path, known: Iterable[str]) -> None:
        """Drop tmp files and eml files of a killed run that the index does not know."""
        if not eml_dir.is_dir():
            return
        indexed = set(known)
        for p in eml_dir.iterdir():
            if not p.is_file():
                continue
            if p.name.startswith(".tmp-") or (_EML_NAME.match(p.name) and self.rel(p) not in indexed):
                try:
                    p.unlink()
                except OSError:
                    pass

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()
