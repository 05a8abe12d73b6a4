"""Keeping the demo's in-memory mailboxes across restarts.

pymap's dict backend lives in memory. So that the demo behaves like a real mailbox the
engine has been watching for days — the arrivals it recorded, the folders a migration
created in the new mailbox, flags it set — every mailbox of both servers is saved to
``demo-mail.sqlite`` in the demo's state directory (incrementally, by pymap's own
modification sequences) and restored on the next start with the same UIDVALIDITY and
UIDs. Only a first start (or ``--reset``) generates the history afresh.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pymap.backend.dict.mailbox import MailboxData

from .harness import Mailboxes, bulk_load

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS boxes (
    server TEXT NOT NULL, name TEXT NOT NULL, uidvalidity INTEGER NOT NULL,
    max_uid INTEGER NOT NULL, PRIMARY KEY (server, name));
CREATE TABLE IF NOT EXISTS msgs (
    server TEXT NOT NULL, name TEXT NOT NULL, uid INTEGER NOT NULL,
    internaldate TEXT NOT NULL, flags TEXT NOT NULL, raw BLOB NOT NULL,
    PRIMARY KEY (server, name, uid));
"""


@dataclass
class _Saved:
    box_id: int          # id() of the MailboxData object saved last time
    mod_seq: int         # its highest modification sequence then
    max_uid: int


@dataclass
class MailPersistence:
    """Saves and restores every mailbox of the given servers."""

    path: Path
    servers: list[Mailboxes]
    _saved: dict[tuple[str, str], _Saved] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # used from the servers' loop thread and the arrivals thread: one lock for both
        self.lock = threading.RLock()
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.db.executescript(SCHEMA)
        self.db.execute("PRAGMA journal_mode=WAL")

    # -- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.lock, self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def has_mail(self) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM boxes LIMIT 1").fetchone() is not None

    # -- restore (runs on the servers' loop) --------------------------------------------
    async def restore(self) -> int:
        """Load every saved mailbox into the servers; returns the number of messages."""
        total = 0
        with bulk_load():
            for srv in self.servers:
                total += await self._restore_server(srv)
        return total

    async def _restore_server(self, srv: Mailboxes) -> int:
        total = 0
        boxes = self.db.execute("SELECT name, uidvalidity, max_uid FROM boxes WHERE server=? "
                                "ORDER BY name", (srv.name,)).fetchall()
        for name, validity, max_uid in boxes:
            mbx = await srv.folder(name, uid_validity=validity)
            rows = self.db.execute("SELECT uid, internaldate, flags, raw FROM msgs "
                                   "WHERE server=? AND name=? ORDER BY uid", (srv.name, name)).fetchall()
            for uid, when, flags, raw in rows:
                await srv.inject(name, raw, tuple(flags.split()), datetime.fromisoformat(when), uid=uid)
                total += 1
            mbx._max_uid = max(mbx._max_uid, max_uid)
            self._saved[(srv.name, name)] = _Saved(id(mbx), mbx._mod_sequences.highest, mbx._max_uid)
        return total

    # -- save (runs on the servers' loop, so mailboxes don't change underneath) ---------
    def _boxes(self, srv: Mailboxes) -> dict[str, MailboxData]:
        mset = srv.mailbox_set()
        return {"INBOX": mset._inbox, **mset._set}

    def save(self) -> int:
        """Write what changed since the last save; returns the number of rows written."""
        written = 0
        with self.lock, self.db:
            for srv in self.servers:
                if not srv.started:
                    continue
                boxes = self._boxes(srv)
                for (server, name) in [k for k in self._saved if k[0] == srv.name]:
                    if name not in boxes:  # deleted or renamed away
                        self.db.execute("DELETE FROM boxes WHERE server=? AND name=?", (server, name))
                        self.db.execute("DELETE FROM msgs WHERE server=? AND name=?", (server, name))
                        del self._saved[(server, name)]
                for name, mbx in boxes.items():
                    written += self._save_box(srv.name, name, mbx)
        return written

    def _save_box(self, server: str, name: str, mbx: MailboxData) -> int:
        key = (server, name)
        prev = self._saved.get(key)
        highest = mbx._mod_sequences.highest
        if prev and prev.box_id == id(mbx) and prev.mod_seq == highest and prev.max_uid == mbx._max_uid:
            return 0
        self.db.execute("INSERT OR REPLACE INTO boxes VALUES (?, ?, ?, ?)",
                        (server, name, mbx.uid_validity, mbx._max_uid))
        if prev is None or prev.box_id != id(mbx):
            # new (or replaced, e.g. renamed onto) mailbox: write it whole
            self.db.execute("DELETE FROM msgs WHERE server=? AND name=?", (server, name))
            changed, gone = set(mbx._messages), set()
        else:
            changed, gone = mbx._mod_sequences.find_updated(prev.mod_seq + 1)
        n = 0
        for uid in gone:
            self.db.execute("DELETE FROM msgs WHERE server=? AND name=? AND uid=?", (server, name, uid))
            n += 1
        for uid in changed:
            msg = mbx._messages.get(uid)
            if msg is None:
                continue
            flags = " ".join(sorted(f.value.decode("ascii", "replace") for f in msg.permanent_flags))
            self.db.execute("INSERT OR REPLACE INTO msgs VALUES (?, ?, ?, ?, ?, ?)",
                            (server, name, uid, msg.internal_date.isoformat(), flags,
                             bytes(msg._content) if msg._content is not None else b""))
            n += 1
        self._saved[key] = _Saved(id(mbx), highest, mbx._max_uid)
        return n

    def close(self) -> None:
        with self.lock:
            self.db.close()
