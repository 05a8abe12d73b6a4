"""The single source of truth: one SQLite file (WAL), a versioned schema, aiosqlite access.

Modules keep their own SQL next to their logic; this module owns the connection, the
schema and its forward migrations. No secret is ever written here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Sequence

import aiosqlite

from .errors import SwitchoverError

# Each entry upgrades the schema by one version; never edit a released entry, append.
MIGRATIONS: list[str] = [
    # v1
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY, job TEXT NOT NULL, started REAL NOT NULL, ended REAL,
        outcome TEXT, summary TEXT);
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY, side TEXT NOT NULL, name TEXT NOT NULL, delimiter TEXT,
        special TEXT, uidvalidity INTEGER, uidnext INTEGER, messages INTEGER, bytes INTEGER,
        mapped_to TEXT, state TEXT, updated REAL, UNIQUE (side, name));
    -- one row per source message (per folder occurrence)
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY, identity TEXT NOT NULL, message_id TEXT,
        src_folder TEXT NOT NULL, src_uidvalidity INTEGER NOT NULL, src_uid INTEGER NOT NULL,
        size INTEGER, flags TEXT, internaldate TEXT,
        dst_folder TEXT, dst_uidvalidity INTEGER, dst_uid INTEGER,
        state TEXT NOT NULL DEFAULT 'planned',   -- planned | copied | present | refused
        reason TEXT, updated REAL,
        UNIQUE (src_folder, src_uidvalidity, src_uid));
    CREATE INDEX messages_identity ON messages (identity);
    CREATE INDEX messages_dst ON messages (dst_folder, state);
    -- what the destination holds (learned by header fetch), to skip what is already there
    CREATE TABLE dest_messages (
        folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
        identity TEXT NOT NULL, PRIMARY KEY (folder, uidvalidity, uid));
    CREATE INDEX dest_identity ON dest_messages (folder, identity);
    CREATE TABLE backups (
        id INTEGER PRIMARY KEY, root TEXT NOT NULL, folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL, identity TEXT NOT NULL,
        path TEXT, mbox_offset INTEGER, size INTEGER, sha256 TEXT, done REAL,
        UNIQUE (root, folder, uidvalidity, uid));
    CREATE TABLE arrivals (
        id INTEGER PRIMARY KEY, side TEXT NOT NULL, folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL, message_id TEXT,
        sender TEXT, sender_name TEXT, recipients TEXT, subject TEXT, date TEXT,
        seen_at REAL NOT NULL, size INTEGER, language TEXT, badge TEXT,
        state TEXT NOT NULL DEFAULT 'new',        -- new | handled
        preview TEXT, headers TEXT,
        UNIQUE (side, folder, uidvalidity, uid));
    CREATE INDEX arrivals_seen ON arrivals (side, seen_at);
    -- written before anything is sent or appended; a face shows its state in the feed
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY, arrival_id INTEGER REFERENCES arrivals(id), kind TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',    -- pending | running | done | failed | cancelled
        requested REAL NOT NULL, not_before REAL NOT NULL, started REAL, done REAL,
        recipient TEXT, sent_message_id TEXT, outcome TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        auto INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX actions_arrival ON actions (arrival_id);
    CREATE TABLE correspondents (
        address TEXT PRIMARY KEY, name TEXT, first_seen TEXT, last_seen TEXT,
        messages_from INTEGER NOT NULL DEFAULT 0, messages_to INTEGER NOT NULL DEFAULT 0,
        language TEXT, automated INTEGER NOT NULL DEFAULT 0, customer INTEGER NOT NULL DEFAULT 0,
        notified REAL, switched REAL, last_reminded REAL, last_old_arrival REAL);
    CREATE TABLE notices (
        id INTEGER PRIMARY KEY, address TEXT NOT NULL, state TEXT NOT NULL,
        requested REAL, sent REAL, message_id TEXT, outcome TEXT);
    CREATE TABLE checklist (
        item TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'open',  -- open | done | skipped
        by TEXT, evidence TEXT, note TEXT, due TEXT, updated REAL);
    CREATE TABLE autoreply (
        id INTEGER PRIMARY KEY, installed REAL, removed REAL, script_name TEXT,
        previous_active TEXT, detail TEXT);
    """,
    # v2 (core/importer.py): each upload of `switchover import`, recorded before and after
    """
    CREATE TABLE imports (
        id INTEGER PRIMARY KEY, run_id INTEGER, source TEXT NOT NULL, source_ref TEXT NOT NULL,
        identity TEXT NOT NULL, to_folder TEXT NOT NULL,
        state TEXT NOT NULL,                      -- pending | uploaded | refused
        dst_uidvalidity INTEGER, dst_uid INTEGER, reason TEXT, updated REAL);
    CREATE INDEX imports_folder ON imports (to_folder, identity);
    """,
    # v3: every APPEND into the new mailbox is recorded here before it is sent (migration
    # batches, forwards, imports): one identity table decides who places a message, and
    # the appends a dead process left unsettled are known to the next run
    # (core/placements.py owns it). Arrivals keep the identity of their message.
    """
    CREATE TABLE placements (
        id INTEGER PRIMARY KEY, folder TEXT NOT NULL, identity TEXT NOT NULL,
        owner TEXT NOT NULL,                      -- migrate | forward | import
        ref TEXT,                                 -- the owner's key (messages / actions / imports id)
        pid INTEGER NOT NULL, host TEXT,
        state TEXT NOT NULL,                      -- sending | placed
        started REAL NOT NULL, settled REAL, uidvalidity INTEGER, uid INTEGER,
        matched TEXT);                            -- a migration copy this forward stood in for
    CREATE INDEX placements_key ON placements (folder, identity);
    CREATE INDEX placements_state ON placements (state, owner);
    ALTER TABLE arrivals ADD COLUMN identity TEXT;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class Result:
    """What a write statement did."""
    rowcount: int
    lastrowid: int


def make_private_dirs(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p`` where every folder this creates is 0700 (``Path.mkdir(parents=True)``
    gives the parents the umask's 0755): state, backups and reports hold whole mailboxes.
    Folders that exist already are left as they are."""
    p = Path(path)
    missing: list[Path] = []
    for d in (p, *p.parents):
        if d.exists():
            break
        missing.append(d)
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass
    return p


def open_private(path: str | os.PathLike[str], mode: str = "wb") -> Any:
    """``open()`` that creates a missing file as 0600 (readable by the user only); an
    existing file keeps its permissions. ``mode`` is one of open()'s w / a / r+ modes."""
    flags = os.O_CREAT | (os.O_RDWR if "+" in mode or "r" in mode else os.O_WRONLY)
    if mode.startswith("w"):
        flags |= os.O_TRUNC
    elif mode.startswith("a"):
        flags |= os.O_APPEND
    fd = os.open(path, flags, 0o600)
    try:
        return os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
    except BaseException:
        os.close(fd)
        raise


def _private_file(p: Path) -> None:
    """Create the state file (and a missing parent folder) readable by the user only:
    it holds the whole mailbox's map of senders and subjects. SQLite gives its -wal and
    -shm files the permissions of the database file."""
    make_private_dirs(p.parent)
    if not p.exists():
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def state_problem(p: Path, e: BaseException) -> str:
    """One sentence for an SQLite or file error on the state file ``p``."""
    return _sentence(p, e)


def _sentence(p: Path, e: BaseException) -> str:
    text = str(e)
    low = text.lower()
    if "readonly" in low or "read-only" in low or isinstance(e, PermissionError):
        return (f"The state file {p} cannot be written ({text}); check its permissions "
                f"and those of its folder.")
    if "not a database" in low or "malformed" in low or "disk image" in low:
        return (f"The state file {p} is damaged ({text}); restore a copy or move it away "
                f"(a new one re-identifies what is already copied).")
    if "locked" in low or "busy" in low:
        return (f"The state file {p} stayed locked by another process for too long ({text}).")
    return f"The state file {p} is not usable ({text})."


class _TaskLock:
    """An asyncio lock the holding task may take again (a write inside a transaction
    of the same task joins it instead of waiting for itself)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    def held(self) -> bool:
        return self._owner is not None and self._owner is asyncio.current_task()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[bool]:
        """Yields True when this entry is the outermost one."""
        if self.held():
            self._depth += 1
            try:
                yield False
            finally:
                self._depth -= 1
            return
        async with self._lock:
            self._owner = asyncio.current_task()
            self._depth = 1
            try:
                yield True
            finally:
                self._owner = None
                self._depth = 0


class Store:
    """An open state file. Use ``await Store.open(path)``.

    Transactions (issue 9, two processes on one file): the connection runs in autocommit
    mode; every write is one statement or a ``transaction()`` that starts with
    ``BEGIN IMMEDIATE``, so it takes SQLite's write lock up front and waits for another
    process's writer (busy timeout) instead of failing on a stale read snapshot. Reads
    close their cursor at once, so no snapshot outlives the statement. Within this
    process an asyncio lock keeps one coroutine's statements out of another's
    transaction, reads included: a read cursor still open while another task's write ran
    on the same connection made that write upgrade a stale snapshot, which SQLite refuses
    at once with "database is locked" (no busy wait applies).
    """

    BUSY_MS = 30000

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        self._write = _TaskLock()
        self._data_version: int | None = None

    @classmethod
    async def open(cls, path: str | Path) -> "Store":
        p = Path(path)
        try:
            _private_file(p)
            db = await aiosqlite.connect(str(p), timeout=cls.BUSY_MS / 1000, isolation_level=None)
        except Exception as e:
            raise SwitchoverError(_sentence(p, e), exit_code=2) from None
        db.row_factory = aiosqlite.Row
        store = cls(db, p)
        try:
            await store._setup()
        except BaseException as e:
            # the connection's thread must end, or the process never exits
            try:
                await db.close()
            except Exception:
                pass
            if isinstance(e, SwitchoverError):
                raise
            if isinstance(e, (sqlite3.Error, OSError)):
                raise SwitchoverError(_sentence(p, e), exit_code=2) from None
            raise
        return store

    async def _setup(self) -> None:
        # the busy timeout first: another process may be creating the schema right now
        await self.db.execute(f"PRAGMA busy_timeout={self.BUSY_MS}")
        await self._wal()
        await self.db.execute("PRAGMA synchronous=NORMAL")
        await self.db.execute("PRAGMA foreign_keys=ON")
        version = (await self._one("PRAGMA user_version"))[0]
        if version > SCHEMA_VERSION:
            raise self._newer(version)
        if version < SCHEMA_VERSION:
            # One process upgrades; a second one waits for the write lock, then finds the
            # work done (two at once used to fail with "table ... already exists").
            await self._begin()
            try:
                version = (await self._one("PRAGMA user_version"))[0]
                if version > SCHEMA_VERSION:
                    raise self._newer(version)
                for v in range(version, SCHEMA_VERSION):
                    for statement in _statements(MIGRATIONS[v]):
                        await self.db.execute(statement)
                    await self.db.execute(f"PRAGMA user_version={v + 1}")
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
        else:
            # a read-only file (or folder) opens fine, BEGIN IMMEDIATE too, and fails at the
            # first real write, deep in some job: write once now (rolled back), while one
            # sentence can still say so
            await self._begin()
            try:
                await self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('opened', '')")
            finally:
                await self.db.execute("ROLLBACK")
        self._data_version = (await self._one("PRAGMA data_version"))[0]

    async def _wal(self) -> None:
        """WAL mode, set once per file. Setting it needs a lock SQLite does not wait for
        (no busy handler): asked while another process writes, "PRAGMA journal_mode=WAL"
        fails at once with "database is locked" even on a file already in WAL mode. So
        the mode is read first and set only when needed, and a busy answer waits and
        asks again."""
        for attempt in range(100):
            try:
                mode = await self._one("PRAGMA journal_mode")
                if mode is not None and str(mode[0]).lower() != "wal":
                    mode = await self._one("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as e:
                if attempt == 99 or not ("locked" in str(e).lower() or "busy" in str(e).lower()):
                    raise
                await asyncio.sleep(0.05)
        if mode is not None and str(mode[0]).lower() != "wal":
            raise SwitchoverError(f"The state file {self.path} cannot use SQLite's WAL mode "
                                  f"(journal mode {mode[0]}); put it on a local disk.", exit_code=2)

    def _newer(self, version: int) -> SwitchoverError:
        return SwitchoverError(
            f"The state file {self.path} was written by a newer switchover "
            f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade switchover.",
            exit_code=2)

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self._write.hold():
            async with self.db.execute(sql, params) as cur:
                return await cur.fetchone()

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE, waiting out a writer of another process beyond the busy
        timeout's single wait (a long migration transaction, a checkpoint)."""
        for attempt in range(6):
            try:
                await self.db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e).lower() and "busy" not in str(e).lower():
                    raise
                if attempt == 5:
                    raise SwitchoverError(_sentence(self.path, e), exit_code=2) from None
                await asyncio.sleep(0.2 * (attempt + 1))

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- statements ----------------------------------------------------------------------
    async def run(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """One write statement (its own transaction unless inside ``transaction()``)."""
        async with self._write.hold():
            async with self.db.execute(sql, params) as cur:
                return Result(cur.rowcount, cur.lastrowid or 0)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns lastrowid."""
        return (await self.run(sql, params)).lastrowid

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as db:
            await db.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        return await self._read(sql, params, one=False)   # type: ignore[no-any-return]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        """The first row; the cursor is closed at once (an open one would pin a read
        snapshot and make the next write of this connection fail)."""
        return await self._read(sql, params, one=True)   # type: ignore[no-any-return]

    async def _read(self, sql: str, params: Sequence[Any], *, one: bool) -> Any:
        """Reads take the connection's lock too (a cursor open while another task writes
        made that write fail at once). A read whose caller is cancelled still runs to its
        end in a shielded task, so no cursor is left open; inside this task's own
        transaction it runs directly (a second task would wait for the lock it holds)."""
        if self._write.held():
            return await self._read_now(sql, params, one)
        return await asyncio.shield(self._read_locked(sql, params, one))

    async def _read_locked(self, sql: str, params: Sequence[Any], one: bool) -> Any:
        async with self._write.hold():
            return await self._read_now(sql, params, one)

    async def _read_now(self, sql: str, params: Sequence[Any], one: bool) -> Any:
        async with self.db.execute(sql, params) as cur:
            return await cur.fetchone() if one else list(await cur.fetchall())

    async def scalar(self, sql: str, params: Sequence[Any] = (), default: Any = None) -> Any:
        row = await self.fetchone(sql, params)
        return row[0] if row is not None and row[0] is not None else default

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Several statements, one commit (or none, on error). Nested use joins the
        outer transaction."""
        async with self._write.hold() as outer:
            if not outer:
                yield self.db
                return
            await self._begin()
            try:
                yield self.db
            except BaseException:
                try:
                    await self.db.execute("ROLLBACK")
                except Exception:
                    pass
                raise
            else:
                await self.db.execute("COMMIT")

    async def changed_elsewhere(self) -> bool:
        """True when another process committed to the state file since the last call
        (SQLite's ``data_version``); faces poll this to stay live beside a headless watch."""
        v = (await self._one("PRAGMA data_version"))[0]
        changed = self._data_version is not None and v != self._data_version
        self._data_version = v
        return changed

    # -- settings and runs -----------------------------------------------------------------
    async def get_setting(self, key: str, default: Any = None) -> Any:
        row = await self.fetchone("SELECT value FROM settings WHERE key=?", (key,))
        return json.loads(row[0]) if row else default

    async def set_setting(self, key: str, value: Any) -> None:
        await self.execute("INSERT INTO settings(key, value) VALUES(?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                           (key, json.dumps(value)))

    async def start_run(self, job: str) -> int:
        return await self.execute("INSERT INTO runs(job, started) VALUES(?, ?)", (job, time.time()))

    async def end_run(self, run_id: int, outcome: str, summary: dict[str, Any] | None = None) -> None:
        await self.execute("UPDATE runs SET ended=?, outcome=?, summary=? WHERE id=?",
                           (time.time(), outcome, json.dumps(summary or {}), run_id))


def _statements(script: str) -> list[str]:
    """Split a migration script into statements: comments dropped first (they may hold
    ';'), then split on ';' (no literal in the schema holds one)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
