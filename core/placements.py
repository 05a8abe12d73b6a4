"""The one identity table that decides who places a message in the new mailbox.

Every APPEND into the new mailbox — a migration batch, a forward, an import — is
recorded in ``placements`` *before* its bytes leave (state ``sending``) and settled
after (``placed`` with the UID, or the row dropped when the server refused). Two things
follow (issue 9):

* **No two writers place one message.** ``begin`` runs in one ``BEGIN IMMEDIATE``
  transaction, so the migration and a forward (another process, even) cannot both decide
  to append the same identity into the same folder: the forward finds the migration's
  row and stands down; a migration batch finds a forward's row and counts that message
  as already there (``matched`` records which copy the forward stood in for).
* **A dead process's appends are known.** Rows left ``sending`` by a process that died
  (kill -9, power loss) or by a connection that broke mid-APPEND are *unsettled*: their
  bytes may still reach the server after the next run has looked. The next run defers
  those identities and checks the destination again before it copies them (see
  core/migrate/settler.py).

This module owns the table: every SQL statement on ``placements`` is here.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .store import Store

HOST = socket.gethostname()


@dataclass(frozen=True)
class Placement:
    id: int
    folder: str
    identity: str
    owner: str
    ref: str | None
    pid: int
    state: str
    started: float
    uid: int | None

    @property
    def mine(self) -> bool:
        return self.pid == os.getpid()


def _placement(r: Any) -> Placement:
    return Placement(r["id"], r["folder"], r["identity"], r["owner"], r["ref"], r["pid"],
                     r["state"], r["started"], r["uid"])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class Placements:
    """``placements``: record-before-append, settle-after, for every writer of the new
    mailbox."""

    def __init__(self, store: Store) -> None:
        self.store = store

    #: ``begin`` result for an item another writer is sending right now
    BUSY = 0

    async def begin(self, folder: str, owner: str, items: Sequence[tuple[str, str | None]], *,
                    yield_to: Iterable[str] = ("forward",)) -> list[int | None]:
        """Record that ``owner`` is about to append each (identity, ref) of ``items`` into
        ``folder``, in bulk (one executemany: a 10,000-message copy records 10,000 rows).
        Per item: the new 'sending' row's id; None when a *placed* copy of another writer
        in ``yield_to`` already holds that identity there (it stands in for this copy: the
        caller counts the message as already there); ``BUSY`` (0) when such a writer is
        *sending* it right now (its APPEND may still be refused): neither taken nor
        yielded to, the caller asks again shortly."""
        others = tuple(o for o in yield_to if o != owner)
        now, pid = time.time(), os.getpid()
        out: list[int | None] = []
        async with self.store.transaction() as db:
            placed: dict[str, list[int]] = {}
            sending: set[str] = set()
            if others:
                idents = sorted({i for i, _ in items})
                omarks = ",".join("?" * len(others))
                for k in range(0, len(idents), 500):
                    part = idents[k:k + 500]
                    async with db.execute(
                            f"SELECT id, identity, state FROM placements WHERE folder=? AND identity IN "
                            f"({','.join('?' * len(part))}) AND owner IN ({omarks}) AND matched IS NULL "
                            f"ORDER BY id", (folder, *part, *others)) as cur:
                        for row in await cur.fetchall():
                            if row[2] == "placed":
                                placed.setdefault(row[1], []).append(row[0])
                            else:
                                sending.add(row[1])
            stood_in: list[tuple[str, int]] = []
            rows: list[tuple[Any, ...]] = []
            for identity, ref in items:
                if placed.get(identity):
                    stood_in.append((f"{owner}:{ref}", placed[identity].pop(0)))
                    out.append(None)
                elif identity in sending:
                    out.append(self.BUSY)
                else:
                    rows.append((folder, identity, owner, ref, pid, HOST, now))
                    out.append(-1)
            if stood_in:
                await db.executemany("UPDATE placements SET matched=? WHERE id=?", stood_in)
            ids: list[int] = []
            if rows:
                async with db.execute("SELECT COALESCE(MAX(id), 0) FROM placements") as cur:
                    top = await cur.fetchone()
                first = top[0] if top is not None else 0
                await db.executemany(
                    "INSERT INTO placements(folder, identity, owner, ref, pid, host, state, started) "
                    "VALUES(?, ?, ?, ?, ?, ?, 'sending', ?)", rows)
                # the write lock is held: the new rows are those above the old maximum, in order
                async with db.execute("SELECT id FROM placements WHERE id > ? ORDER BY id",
                                      (first,)) as cur:
                    ids = [row[0] for row in await cur.fetchall()]
                if len(ids) != len(rows):
                    raise RuntimeError("placements: rows appeared under the write lock")
        it = iter(ids)
        return [next(it) if x == -1 else x for x in out]

    async def uids_claimed(self, folder: str, uidvalidity: int, uids: Sequence[int]) -> set[int]:
        """Which of ``uids`` in ``folder`` a settled placement (any writer) accounts for."""
        out: set[int] = set()
        for k in range(0, len(uids), 500):
            part = list(uids[k:k + 500])
            rows = await self.store.fetchall(
                f"SELECT uid FROM placements WHERE folder=? AND uidvalidity=? AND state='placed' "
                f"AND uid IN ({','.join('?' * len(part))})", (folder, uidvalidity, *part))
            out.update(row[0] for row in rows)
        return out

    async def begin_one(self, folder: str, owner: str, identity: str,
                        ref: str | None) -> tuple[int | None, Placement | None]:
        """Record one append unless any live placement of ``identity`` in ``folder``
        exists (by anyone): (new id, None), or (None, the placement that holds it)."""
        async with self.store.transaction() as db:
            async with db.execute(
                    "SELECT * FROM placements WHERE folder=? AND identity=? ORDER BY "
                    "state='placed' DESC, id DESC LIMIT 1", (folder, identity)) as cur:
                row = await cur.fetchone()
            if row is not None:
                return None, _placement(row)
            async with db.execute(
                    "INSERT INTO placements(folder, identity, owner, ref, pid, host, state, started) "
                    "VALUES(?, ?, ?, ?, ?, ?, 'sending', ?)",
                    (folder, identity, owner, ref, os.getpid(), HOST, time.time())) as cur:
                return int(cur.lastrowid or 0), None

    async def placed(self, rows: Iterable[tuple[int, int | None, int | None]]) -> None:
        """Settle (id, uidvalidity, uid) rows: the server took the message."""
        now = time.time()
        await self.store.executemany(
            "UPDATE placements SET state='placed', settled=?, uidvalidity=?, uid=? WHERE id=?",
            [(now, uv, uid, pid) for pid, uv, uid in rows])

    async def drop(self, ids: Iterable[int]) -> None:
        """The server refused (or the append was never sent): nothing was placed."""
        await self.store.executemany("DELETE FROM placements WHERE id=?", [(i,) for i in ids])

    async def release_matches(self, owner_refs: Iterable[str]) -> None:
        """Undo ``matched`` marks made by these owner refs (their run planned again)."""
        await self.store.executemany("UPDATE placements SET matched=NULL WHERE matched=?",
                                     [(r,) for r in owner_refs])

    async def unsettled(self, owner: str | None = None, *, include_live: bool = False) -> list[Placement]:
        """Rows still ``sending``: by a dead process (or, with ``include_live``, any)."""
        sql = "SELECT * FROM placements WHERE state='sending'"
        params: list[Any] = []
        if owner is not None:
            sql += " AND owner=?"
            params.append(owner)
        rows = [_placement(r) for r in await self.store.fetchall(sql + " ORDER BY id", params)]
        if include_live:
            return rows
        return [p for p in rows if not (p.pid != os.getpid() and pid_alive(p.pid))]

    async def placed_by(self, owner: str, folder: str, uidvalidity: int, identity: str) -> list[int]:
        """UIDs of the copies of ``identity`` that ``owner`` placed in ``folder``, newest first."""
        rows = await self.store.fetchall(
            "SELECT uid FROM placements WHERE folder=? AND uidvalidity=? AND identity=? "
            "AND owner=? AND state='placed' AND uid IS NOT NULL ORDER BY uid DESC",
            (folder, uidvalidity, identity, owner))
        return [int(row[0]) for row in rows]

    async def forget_uids(self, folder: str, uidvalidity: int, uids: Sequence[int]) -> None:
        """These copies are gone from ``folder`` (their writer removed them)."""
        for k in range(0, len(uids), 500):
            part = list(uids[k:k + 500])
            await self.store.run(
                f"DELETE FROM placements WHERE folder=? AND uidvalidity=? AND "
                f"uid IN ({','.join('?' * len(part))})", (folder, uidvalidity, *part))

    async def live_for(self, folder: str, identity: str) -> list[Placement]:
        rows = await self.store.fetchall(
            "SELECT * FROM placements WHERE folder=? AND identity=? ORDER BY id", (folder, identity))
        return [_placement(r) for r in rows]

    async def count_placed(self, folder: str, identities: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for k in range(0, len(identities), 500):
            part = list(identities[k:k + 500])
            marks = ",".join("?" * len(part))
            for row in await self.store.fetchall(
                    f"SELECT identity, COUNT(*) FROM placements WHERE folder=? AND state='placed' "
                    f"AND identity IN ({marks}) GROUP BY identity", (folder, *part)):
                out[row[0]] = row[1]
        return out
