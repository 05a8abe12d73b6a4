"""The single source of truth: one SQLite file (WAL), a versioned schema, aiosqlite access.

Modules keep their own SQL next to their logic; this module owns the connection, the
schema and its forward migrations. No secret is ever written here.
"""

from __future__ import annotations

import json
import time
from contextlib import asynccontextmanager
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
]

SCHEMA_VERSION = len(MIGRATIONS)


class Store:
    """An open state file. Use :func:`open_store` (or ``async with Store.open(path)``)."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    async def open(cls, path: str | Path) -> "Store":
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(str(p), timeout=30)
        except Exception as e:
            raise SwitchoverError(f"Cannot open the state file {p}: {e}.", exit_code=2) from None
        db.row_factory = aiosqlite.Row
        store = cls(db, p)
        try:
            await store._setup()
        except aiosqlite.DatabaseError as e:
            await db.close()
            raise SwitchoverError(f"The state file {p} is not a usable SQLite database ({e}).",
                                  exit_code=2) from None
        return store

    async def _setup(self) -> None:
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=NORMAL")
        await self.db.execute("PRAGMA foreign_keys=ON")
        await self.db.execute("PRAGMA busy_timeout=30000")
        version = (await (await self.db.execute("PRAGMA user_version")).fetchone())[0]
        if version > SCHEMA_VERSION:
            raise SwitchoverError(
                f"The state file {self.path} was written by a newer switchover "
                f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade switchover.",
                exit_code=2)
        for v in range(version, SCHEMA_VERSION):
            await self.db.executescript("BEGIN;" + MIGRATIONS[v] + f"; PRAGMA user_version={v + 1}; COMMIT;")
        await self.db.commit()

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- small helpers -----------------------------------------------------------------
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement and commit; returns lastrowid."""
        cur = await self.db.execute(sql, params)
        await self.db.commit()
        return cur.lastrowid or 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.db.executemany(sql, rows)
        await self.db.commit()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        cur = await self.db.execute(sql, params)
        return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        cur = await self.db.execute(sql, params)
        return await cur.fetchone()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Several statements, one commit (or none, on error)."""
        try:
            yield self.db
        except BaseException:
            await self.db.rollback()
            raise
        else:
            await self.db.commit()

    async def get_setting(self, key: str, default: Any = None) -> Any:
        row = await self.fetchone("SELECT value FROM settings WHERE key=?", (key,))
        return json.loads(row[0]) if row else default

    async def set_setting(self, key: str, value: Any) -> None:
        await self.execute("INSERT INTO settings(key, value) VALUES(?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                           (key, json.dumps(value)))

    async def start_run(self, job: str) -> int:
        return await self.execute("INSERT INTO runs(job, started) VALUES(?, ?)", (job, time.time()))

    async def end_run(self, run_id: int, outcome: str, summary: dict | None = None) -> None:
        await self.execute("UPDATE runs SET ended=?, outcome=?, summary=? WHERE id=?",
                           (time.time(), outcome, json.dumps(summary or {}), run_id))
