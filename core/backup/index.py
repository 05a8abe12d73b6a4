"""The backup index: what a backup directory holds, in its own SQLite file
(``ROOT/index.sqlite``) next to the mail, so the directory is self-contained. This module
is the only code that touches that file; it also owns the state file's ``backups``
table, the engine's copy of it for the faces (:class:`StateMirror`).

The index is the truth for resume and verify: a message counts as backed up once its
row is committed, and a row is committed only after its files are on disk (see
core/backup/writer.py). Rollback journal + synchronous=FULL: one self-contained file that
survives kill -9 and power loss at any commit boundary.

Tables: ``meta`` (format, side, account, scope), ``folders`` (name → relative path,
UIDVALIDITY, where its mbox ends), ``messages`` (one row per message: identity, flags,
INTERNALDATE, size, SHA-256, its eml path and mbox offset / length).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from ..errors import SwitchoverError
from ..store import Store
from .layout import BackupDir, folder_parts, sha256

INDEX_NAME = "index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS folders (
    name TEXT PRIMARY KEY, delimiter TEXT, relpath TEXT NOT NULL UNIQUE,
    uidvalidity INTEGER, mbox_end INTEGER NOT NULL DEFAULT 0, messages INTEGER, updated REAL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL, identity TEXT NOT NULL, flags TEXT, internaldate TEXT,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, eml TEXT, mbox_offset INTEGER,
    mbox_length INTEGER, done REAL, UNIQUE (folder, uidvalidity, uid));
CREATE INDEX IF NOT EXISTS messages_sha ON messages (sha256);
"""

_ROW = "SELECT id, uidvalidity, uid, identity, eml, mbox_offset FROM messages"


class IndexRow(NamedTuple):
    """What the writer needs to know of one indexed message."""
    id: int
    uidvalidity: int
    uid: int
    identity: str
    eml: str | None
    mbox_offset: int | None


class IndexedMessage(NamedTuple):
    """What the check needs to know of one indexed message."""
    uidvalidity: int
    uid: int
    size: int
    sha256: str
    eml: str | None
    mbox_offset: int | None
    mbox_length: int | None


class IndexFolder(NamedTuple):
    name: str
    relpath: str
    uidvalidity: int | None
    mbox_end: int


class Record(NamedTuple):
    """One message a batch wrote (files first, then this row)."""
    folder: str
    uidvalidity: int
    uid: int
    identity: str
    flags: str
    internaldate: str | None
    size: int
    sha256: str
    eml: str | None
    mbox_offset: int | None
    mbox_length: int | None
    done: float


#: (uidvalidity, uid, flags, internaldate, row id): a row found again under a new UID
Rebind = tuple[int, int, str, "str | None", int]


class BackupIndex:
    """One open index. Used from one worker thread at a time (the job's)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    def open(cls, root: Path, create: bool = True) -> "BackupIndex":
        path = root / INDEX_NAME
        if not create and not path.exists():
            raise SwitchoverError(f"{root} has no backup index ({INDEX_NAME}); is it a switchover backup?")
        try:
            if create and not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))    # private, like the mail
            db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise SwitchoverError(f"The backup index {path} is not usable ({e}).") from None
        return cls(db, path)

    @classmethod
    def near(cls, start: Path, levels: int = 4) -> "BackupIndex | None":
        """A switchover backup's index at ``start`` or up to ``levels`` folders above,
        opened read-only (an import of files from inside a backup), or None."""
        here = start if start.is_dir() else start.parent
        for d in [here, *list(here.parents)[:levels]]:
            p = d / INDEX_NAME
            if p.is_file():
                try:
                    db = sqlite3.connect(f"file:{p}?mode=ro", uri=True, check_same_thread=False)
                    db.execute("SELECT sha256, flags, internaldate FROM messages LIMIT 1")
                    return cls(db, p)
                except sqlite3.Error:
                    continue
        return None

    def close(self) -> None:
        self._db.close()

    # -- meta ---------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return {k: v for k, v in self._db.execute("SELECT key, value FROM meta").fetchall()}

    def write_meta(self, values: dict[str, str], keep: Sequence[str] = ()) -> None:
        """Set ``values``; keys in ``keep`` only when not set yet."""
        with self._db:
            for k, v in values.items():
                verb = "INSERT OR IGNORE" if k in keep else "INSERT OR REPLACE"
                self._db.execute(f"{verb} INTO meta VALUES (?, ?)", (k, v))

    # -- folders ------------------------------------------------------------------------
    def relpath(self, name: str, delim: str | None) -> str:
        """The folder's path under mbox/ and eml/, chosen once: two names that sanitize
        alike get ``~2``, ``~3``..."""
        row = self._db.execute("SELECT relpath FROM folders WHERE name=?", (name,)).fetchone()
        if row:
            return str(row[0])
        base = "/".join(folder_parts(name, delim))
        rel, n = base, 1
        taken = {r[0].casefold() for r in self._db.execute("SELECT relpath FROM folders")}
        while rel.casefold() in taken:
            n += 1
            rel = f"{base}~{n}"
        with self._db:
            self._db.execute("INSERT INTO folders(name, delimiter, relpath, mbox_end, updated) "
                             "VALUES (?, ?, ?, 0, ?)", (name, delim, rel, time.time()))
        return rel

    def mbox_end(self, name: str) -> int:
        row = self._db.execute("SELECT mbox_end FROM folders WHERE name=?", (name,)).fetchone()
        return int(row[0] or 0) if row else 0

    def forget_mbox_after(self, name: str, size: int) -> int:
        """The mbox was cut or deleted below the recorded end: forget the entries it no
        longer holds (they are fetched again); the new end."""
        with self._db:
            self._db.execute("UPDATE messages SET mbox_offset=NULL, mbox_length=NULL "
                             "WHERE folder=? AND mbox_offset + mbox_length > ?", (name, size))
            row = self._db.execute("SELECT max(mbox_offset + mbox_length) FROM messages WHERE folder=?",
                                   (name,)).fetchone()
            end = int(row[0] or 0)
            self._db.execute("UPDATE folders SET mbox_end=? WHERE name=?", (end, name))
        return end

    def reconcile(self, files: BackupDir, name: str, rel: str) -> int:
        """Make a folder's files and its rows agree again after a killed run: cut a
        half-written mbox tail, drop eml files no row knows, forget what the files no
        longer hold (it is fetched again). Returns where the folder's mbox ends."""
        path = files.mbox_path(rel)
        end = self.mbox_end(name)
        size = files.mbox_size(path)
        if size > end:
            files.truncate(path, end)
        elif size < end:             # someone cut or deleted the file
            end = self.forget_mbox_after(name, size)
            if size > end:
                files.truncate(path, end)
        known = self.emls(name)
        files.remove_strays(files.eml_dir(rel), known)
        lost = [i for relp, i in known.items() if not files.exists(relp)]
        if lost:
            self.forget_emls(lost)
        return end

    def folders(self) -> list[IndexFolder]:
        return [IndexFolder(*r) for r in self._db.execute(
            "SELECT name, relpath, uidvalidity, mbox_end FROM folders ORDER BY name")]

    # -- messages -----------------------------------------------------------------------
    def emls(self, name: str) -> dict[str, int]:
        """{eml path: row id} of the folder."""
        return {r[0]: r[1] for r in self._db.execute(
            "SELECT eml, id FROM messages WHERE folder=? AND eml IS NOT NULL", (name,))}

    def forget_emls(self, ids: Sequence[int]) -> None:
        with self._db:
            self._db.executemany("UPDATE messages SET eml=NULL WHERE id=?", [(i,) for i in ids])

    def rows(self, name: str) -> dict[tuple[int, int], IndexRow]:
        return {(r[1], r[2]): IndexRow(*r) for r in self._db.execute(_ROW + " WHERE folder=?", (name,))}

    def row(self, row_id: int) -> IndexRow:
        return IndexRow(*self._db.execute(_ROW + " WHERE id=?", (row_id,)).fetchone())

    def refresh(self, name: str, uidvalidity: int, current: dict[int, tuple[int, str, str | None]],
                rows: dict[tuple[int, int], IndexRow]) -> None:
        """Flags / keywords change over time: keep the index current for what is already
        there; note the folder's UIDVALIDITY and size."""
        with self._db:
            self._db.executemany(
                "UPDATE messages SET flags=?, internaldate=coalesce(?, internaldate) "
                "WHERE folder=? AND uidvalidity=? AND uid=? AND flags IS NOT ?",
                [(m[1], m[2], name, uidvalidity, uid, m[1]) for uid, m in current.items()
                 if (uidvalidity, uid) in rows])
            self._db.execute("UPDATE folders SET uidvalidity=?, messages=?, updated=? WHERE name=?",
                             (uidvalidity, len(current), time.time(), name))

    def rebind(self, binds: list[Rebind]) -> list[tuple[int, int]]:
        """Rows found again under a new UIDVALIDITY / UID; their old (uidvalidity, uid)."""
        old = [self._db.execute("SELECT uidvalidity, uid FROM messages WHERE id=?", (b[4],)).fetchone()
               for b in binds]
        with self._db:
            self._db.executemany("UPDATE messages SET uidvalidity=?, uid=?, flags=?, "
                                 "internaldate=coalesce(?, internaldate) WHERE id=?", binds)
        return [(int(o[0]), int(o[1])) for o in old]

    def commit_batch(self, name: str, records: list[Record], mbox_end: int) -> None:
        """One commit per batch, after its files are on disk: the rows and the new end of
        the folder's mbox."""
        with self._db:
            self._db.executemany(
                "INSERT INTO messages (folder, uidvalidity, uid, identity, flags, internaldate, size, "
                "sha256, eml, mbox_offset, mbox_length, done) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (folder, uidvalidity, uid) DO UPDATE SET eml=coalesce(excluded.eml, eml), "
                "mbox_offset=coalesce(excluded.mbox_offset, mbox_offset), "
                "mbox_length=coalesce(excluded.mbox_length, mbox_length), flags=excluded.flags, "
                "internaldate=excluded.internaldate, done=excluded.done", records)
            self._db.execute("UPDATE folders SET mbox_end=?, updated=? WHERE name=?", (mbox_end, time.time(), name))

    def messages(self, name: str) -> list[IndexedMessage]:
        return [IndexedMessage(*r) for r in self._db.execute(
            "SELECT uidvalidity, uid, size, sha256, eml, mbox_offset, mbox_length FROM messages "
            "WHERE folder=? ORDER BY mbox_offset, uid", (name,))]

    def known(self, raw: bytes) -> tuple[list[str], dt.datetime | None] | None:
        """Flags and INTERNALDATE of a message this backup holds (by SHA-256), or None."""
        row = self._db.execute("SELECT flags, internaldate FROM messages WHERE sha256=? LIMIT 1",
                               (sha256(raw),)).fetchone()
        if row is None:
            return None
        try:
            flags = [f for f in json.loads(row[0] or "[]") if f != "\\Recent"]
        except ValueError:
            flags = []
        when = dt.datetime.fromisoformat(row[1]) if row[1] else None
        return flags, when


class StateMirror:
    """The state file's ``backups`` table: what each backup root holds, mirrored from its
    index after every batch, for the faces (the index stays the truth)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, root: Path, records: list[Record], mbox_rel: str) -> None:
        rows: list[tuple[Any, ...]] = [
            (str(root), r.folder, r.uidvalidity, r.uid, r.identity,
             r.eml or (mbox_rel if r.mbox_offset is not None else None), r.mbox_offset, r.size, r.sha256, r.done)
            for r in records]
        await self.store.executemany(
            "INSERT INTO backups (root, folder, uidvalidity, uid, identity, path, mbox_offset, size, "
            "sha256, done) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (root, folder, uidvalidity, uid) "
            "DO UPDATE SET path=coalesce(excluded.path, path), "
            "mbox_offset=coalesce(excluded.mbox_offset, mbox_offset), done=excluded.done", rows)

    async def rebind(self, root: Path, folder: str, binds: list[Rebind], old: list[tuple[int, int]]) -> None:
        await self.store.executemany(
            "UPDATE backups SET uidvalidity=?, uid=? WHERE root=? AND folder=? AND uidvalidity=? AND uid=?",
            [(b[0], b[1], str(root), folder, o[0], o[1]) for b, o in zip(binds, old)])
