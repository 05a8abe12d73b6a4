"""The single source of truth: one SQLite file (WAL), a versioned schema, aiosqlite access.

Modules keep their own SQL next to their logic (core/schema.py says who owns which
table); this module owns the connection, applying the schema's forward migrations, and
the tables every job shares: ``settings`` (get_setting / set_setting), ``runs``
(start_run / end_run) and ``meta``. Every problem with the file itself (read-only,
damaged, locked too long, full) is raised as :class:`StateFileError` (exit 2), so callers
tell it from a mail server's trouble by its type. No secret is ever written here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence

import aiosqlite

from .errors import StateFileError
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["Store", "Result", "SCHEMA_VERSION", "StateFileError", "make_private_dirs", "open_private",
           "state_problem", "while_busy"]

@dataclass(frozen=True)
class Result:
    """What a write statement did."""
    rowcount: int
    lastrowid: int


async def while_busy(write: Callable[[], Awaitable[object]], attempts: int,
                     on_busy: Callable[[StateFileError], None]) -> bool:
    """Run ``write`` until the state file takes it: a :class:`StateFileError` is waited
    out (0.2 s, doubling to 5 s) up to ``attempts`` tries; ``on_busy`` hears the first one
    (to say it once). False when every try met a busy file; other errors go up."""
    delay = 0.2
    for attempt in range(attempts):
        try:
            await write()
            return True
        except StateFileError as e:
            if attempt == 0:
                on_busy(e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    return False


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


def open_private(path: str | os.PathLike[str], mode: str = "wb") -> IO[Any]:
    """``open()`` that creates a missing file as 0600 (readable by the user only); an
    existing file keeps its permissions. ``mode`` is one of open()'s w / a / r+ modes."""
    flags = os.O_CREAT | (os.O_RDWR if "+" in mode or "r" in mode else os.O_WRONLY)
    if mode.startswith("w"):
        flags |= os.O_TRUNC
    elif mode.startswith("a"):
        flags |= os.O_APPEND
    fd = os.open(path, flags, 0o600)
    try:
        return os.fdopen(fd, mode) if "b" in mode else os.fdopen(fd, mode, encoding="utf-8")
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


#: SQLite's primary result codes that mean trouble with the file, not with a statement:
#: PERM, BUSY, LOCKED, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB
_FILE_TROUBLE = {3, 5, 6, 8, 10, 11, 13, 14, 15, 26}


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
        self._db = db
        self.path = path
        #: shielded reads whose caller was cancelled: close() lets them end first
        self._reads: set[asyncio.Future[Any]] = set()
        self._write = _TaskLock()
        self._data_version: int | None = None

    @classmethod
    async def open(cls, path: str | Path) -> "Store":
        p = Path(path)
        try:
            _private_file(p)
            db = await aiosqlite.connect(str(p), timeout=cls.BUSY_MS / 1000, isolation_level=None)
        except Exception as e:
            raise StateFileError(state_problem(p, e)) from None
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
            if isinstance(e, StateFileError):
                raise
            if isinstance(e, (sqlite3.Error, OSError)):
                raise StateFileError(state_problem(p, e)) from None
            raise
        return store

    async def _setup(self) -> None:
        # the busy timeout first: another process may be creating the schema right now
        await self._db.execute(f"PRAGMA busy_timeout={self.BUSY_MS}")
        await self._wal()
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA foreign_keys=ON")
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
                        await self._db.execute(statement)
                    await self._db.execute(f"PRAGMA user_version={v + 1}")
                await self._db.execute("COMMIT")
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
        else:
            # a read-only file (or folder) opens fine, BEGIN IMMEDIATE too, and fails at the
            # first real write, deep in some job: write once now (rolled back), while one
            # sentence can still say so
            await self._begin()
            try:
                await self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('opened', '')")
            finally:
                await self._db.execute("ROLLBACK")
        self._data_version = (await self._one("PRAGMA data_version"))[0]

    async def _wal(self) -> None:
        """WAL mode, set once per file. Setting it needs a lock SQLite does not wait for
        (no busy handler): asked while another process writes, "PRAGMA journal_mode=WAL"
        fails at once with "database is locked" even on a file already in WAL mode. So
        the mode is read first and set only when needed, and a busy answer waits and
        asks again."""
        for attempt in range(100):
            try:
                mode = await self._pragma("PRAGMA journal_mode")
                if mode is not None and str(mode[0]).lower() != "wal":
                    mode = await self._pragma("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as e:
                if attempt == 99 or not ("locked" in str(e).lower() or "busy" in str(e).lower()):
                    raise
                await asyncio.sleep(0.05)
        if mode is not None and str(mode[0]).lower() != "wal":
            raise StateFileError(f"The state file {self.path} cannot use SQLite's WAL mode "
                                 f"(journal mode {mode[0]}); put it on a local disk.")

    def _newer(self, version: int) -> StateFileError:
        return StateFileError(
            f"The state file {self.path} was written by a newer switchover "
            f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade switchover.")

    async def _pragma(self, sql: str) -> Any:
        """A statement whose raw sqlite3 error the caller looks at (busy: ask again)."""
        async with self._db.execute(sql) as cur:
            return await cur.fetchone()

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self._write.hold():
            with self._file_errors():
                async with self._db.execute(sql, params) as cur:
                    return await cur.fetchone()

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE, waiting out a writer of another process beyond the busy
        timeout's single wait (a long migration transaction, a checkpoint)."""
        for attempt in range(6):
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                busy = "locked" in str(e).lower() or "busy" in str(e).lower()
                if not busy or attempt == 5:
                    raise StateFileError(state_problem(self.path, e)) from None
                await asyncio.sleep(0.2 * (attempt + 1))

    async def close(self) -> None:
        if self._reads:   # a read still running for a cancelled caller ends before the close
            await asyncio.gather(*self._reads, return_exceptions=True)
        await self._db.close()

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- statements ----------------------------------------------------------------------
    async def run(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """One write statement (its own transaction unless inside ``transaction()``)."""
        async with self._write.hold():
            with self._file_errors():
                async with self._db.execute(sql, params) as cur:
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
        read = asyncio.ensure_future(self._read_locked(sql, params, one))
        self._reads.add(read)
        read.add_done_callback(self._read_done)
        return await asyncio.shield(read)

    def _read_done(self, read: "asyncio.Future[Any]") -> None:
        self._reads.discard(read)
        if not read.cancelled():
            read.exception()   # retrieved: a caller that was cancelled no longer asks

    async def _read_locked(self, sql: str, params: Sequence[Any], one: bool) -> Any:
        async with self._write.hold():
            return await self._read_now(sql, params, one)

    async def _read_now(self, sql: str, params: Sequence[Any], one: bool) -> Any:
        with self._file_errors():
            async with self._db.execute(sql, params) as cur:
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
                yield self._db
                return
            await self._begin()
            with self._file_errors():
                try:
                    yield self._db
                except BaseException:
                    try:
                        await self._db.execute("ROLLBACK")
                    except Exception:
                        pass
                    raise
                else:
                    await self._db.execute("COMMIT")

    @contextmanager
    def _file_errors(self) -> Iterator[None]:
        """SQLite's complaints about the file (read-only, locked past every wait, full,
        damaged, gone) as StateFileError; a broken constraint or a bad statement stays
        what it is (a bug to see, not a file to blame)."""
        try:
            yield
        except sqlite3.Error as e:
            if (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF not in _FILE_TROUBLE:
                raise
            raise StateFileError(state_problem(self.path, e)) from e

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
