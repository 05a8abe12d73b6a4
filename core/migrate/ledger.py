"""The migration's ledger: every SQL statement on ``messages`` (one row per source
message: planned, copied, present, refused), ``folders`` of the old side (the plan, the
per-folder state and the snapshot that lets a rerun skip a complete folder),
``dest_messages`` (what the new mailbox holds, by identity, learned by header fetch) and
the migration's reads of ``runs``. Nothing else in core/migrate writes SQL; the
placements a batch settles go through core/placements.py in the same transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..placements import Placements
from ..store import Store
from .folders import FolderMapping
from .transfer import SrcMsg

_UPSERT_FOLDER = (
    "INSERT INTO folders(side, name, special, messages, bytes, mapped_to, state, updated) "
    "VALUES('old', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(side, name) DO UPDATE SET ")
_COPIED = ("UPDATE messages SET state='copied', reason=NULL, dst_folder=?, dst_uidvalidity=?, "
           "dst_uid=?, updated=? WHERE src_folder=? AND src_uidvalidity=? AND src_uid=?")
_REFUSED = ("UPDATE messages SET state='refused', reason=?, updated=? "
            "WHERE src_folder=? AND src_uidvalidity=? AND src_uid=?")
_DEST = "INSERT OR REPLACE INTO dest_messages(folder, uidvalidity, uid, identity) VALUES(?, ?, ?, ?)"


@dataclass(frozen=True)
class FolderRecord:
    """What the ledger remembers of a source folder."""
    name: str
    uidvalidity: int | None
    uidnext: int | None
    messages: int
    bytes: int
    mapped_to: str
    state: str


@dataclass(frozen=True)
class Copied:
    """A source message the server took (``uid`` None without APPENDUID)."""
    uidvalidity: int          # of the source folder
    msg: SrcMsg
    dst_uidvalidity: int | None
    dst_uid: int | None


def _marks(n: int) -> str:
    return ",".join("?" * n)


class Ledger:
    """SQL of the migration's tables; see the module docstring."""

    def __init__(self, store: Store, placements: Placements) -> None:
        self.store = store
        self.placements = placements

    # -- folders ---------------------------------------------------------------------------
    async def record_plan(self, planned: Sequence[tuple[FolderMapping, int, int]],
                          mappings: Sequence[FolderMapping]) -> None:
        """The dry run's counts (mapping, messages, bytes) and the folders it leaves out.
        A folder whose destination changed is 'planned' again."""
        now = time.time()
        async with self.store.transaction() as db:
            await db.executemany(
                _UPSERT_FOLDER + "special=excluded.special, messages=excluded.messages, "
                "bytes=excluded.bytes, mapped_to=excluded.mapped_to, updated=excluded.updated, "
                "state=CASE WHEN state='skipped' THEN 'planned' "
                "WHEN mapped_to IS excluded.mapped_to THEN state ELSE 'planned' END",
                [(m.source, m.special, n, b, m.destination, "planned", now) for m, n, b in planned])
            await self.record_skipped(mappings)

    async def record_skipped(self, mappings: Iterable[FolderMapping]) -> None:
        """Folders the plan leaves out (not selectable, excluded, virtual) are 'skipped'
        with their reason: never 'planned' forever."""
        now = time.time()
        await self.store.executemany(
            "INSERT INTO folders(side, name, special, messages, bytes, mapped_to, state, updated) "
            "VALUES('old', ?, ?, 0, 0, '', 'skipped', ?) ON CONFLICT(side, name) DO UPDATE SET "
            "special=excluded.special, mapped_to='', state='skipped', updated=excluded.updated",
            [(m.source, m.special, now) for m in mappings if m.role == "skip"])

    async def folders(self) -> dict[str, FolderRecord]:
        """Every source folder the ledger knows, by name."""
        rows = await self.store.fetchall(
            "SELECT name, uidvalidity, uidnext, messages, bytes, mapped_to, state FROM folders "
            "WHERE side='old' ORDER BY id")
        return {r["name"]: FolderRecord(r["name"], r["uidvalidity"], r["uidnext"], r["messages"] or 0,
                                        r["bytes"] or 0, r["mapped_to"] or "", r["state"] or "")
                for r in rows}

    async def snapshot(self, folder: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, UIDNEXT) of an old folder when the migration last read it (the
        watch starts there), or None."""
        row = await self.store.fetchone(
            "SELECT uidvalidity, uidnext FROM folders WHERE side='old' AND name=?", (folder,))
        if row is None or not row["uidnext"]:
            return None
        return int(row["uidvalidity"] or 0), int(row["uidnext"])

    async def begin_folder(self, source: str, special: str | None, destination: str,
                           uidvalidity: int, uidnext: int, count: int) -> None:
        """A source folder is read afresh: its snapshot, state 'copying'. A new UIDVALIDITY
        makes the old message rows meaningless (identities decide, not UIDs)."""
        async with self.store.transaction() as db:
            await db.execute("DELETE FROM messages WHERE src_folder=? AND src_uidvalidity!=?",
                             (source, uidvalidity))
            await db.execute(
                "INSERT INTO folders(side, name, special, uidvalidity, uidnext, messages, mapped_to, "
                "state, updated) VALUES('old', ?, ?, ?, ?, ?, ?, 'copying', ?) "
                "ON CONFLICT(side, name) DO UPDATE SET special=excluded.special, "
                "uidvalidity=excluded.uidvalidity, uidnext=excluded.uidnext, "
                "messages=excluded.messages, mapped_to=excluded.mapped_to, state='copying', "
                "updated=excluded.updated",
                (source, special, uidvalidity, uidnext, count, destination, time.time()))

    async def end_folders(self, ends: Sequence[tuple[str, str | None, int, int, str, str]]) -> None:
        """The state each folder of a run ended in: (source, special, messages, bytes,
        destination, state)."""
        now = time.time()
        await self.store.executemany(
            _UPSERT_FOLDER + "state=excluded.state, bytes=excluded.bytes, updated=excluded.updated",
            [(*end, now) for end in ends])

    async def folder_counts(self) -> dict[str, dict[str, tuple[int, int]]]:
        """{source folder: {message state: (messages, bytes)}}."""
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for row in await self.store.fetchall(
                "SELECT src_folder, state, COUNT(*), COALESCE(SUM(size), 0) FROM messages "
                "GROUP BY src_folder, state"):
            out.setdefault(row[0], {})[row[1]] = (row[2], row[3])
        return out

    # -- source messages -------------------------------------------------------------------
    async def record_read(self, source: str, destination: str, uidvalidity: int, msgs: list[SrcMsg],
                          present: list[tuple[SrcMsg, str | None]],
                          too_big: list[tuple[SrcMsg, str]]) -> None:
        """A chunk of source messages as read (planned), what of it is already there
        (with why, None: the destination holds it) and what is refused unsent."""
        now = time.time()
        async with self.store.transaction() as db:
            await db.executemany(
                "INSERT INTO messages(identity, message_id, src_folder, src_uidvalidity, src_uid, "
                "size, flags, internaldate, dst_folder, state, updated) "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?) "
                "ON CONFLICT(src_folder, src_uidvalidity, src_uid) DO UPDATE SET "
                "identity=excluded.identity, size=excluded.size, flags=excluded.flags, "
                "internaldate=excluded.internaldate, dst_folder=excluded.dst_folder, "
                # a copied row keeps the time of its copy: the daily caps count by it
                "updated=CASE WHEN messages.state='copied' THEN messages.updated "
                "ELSE excluded.updated END",
                [(m.identity, m.message_id, source, uidvalidity, m.uid, m.size,
                  m.flags.decode("utf-8", "replace"), (m.date or b"").decode("ascii", "replace"),
                  destination, now) for m in msgs])
            await db.executemany(
                "UPDATE messages SET state=CASE WHEN state='copied' THEN 'copied' ELSE 'present' END, "
                "reason=? WHERE src_folder=? AND src_uidvalidity=? AND src_uid=?",
                [(why, source, uidvalidity, m.uid) for m, why in present])
            if too_big:
                await db.executemany(_REFUSED, [(why, now, source, uidvalidity, m.uid)
                                                for m, why in too_big])

    async def held_elsewhere(self, identities: list[str], others: list[str]) -> set[str]:
        """Which of ``identities`` a source folder of ``others`` holds."""
        found: set[str] = set()
        for i in range(0, len(identities), 500):
            part = identities[i:i + 500]
            rows = await self.store.fetchall(
                f"SELECT DISTINCT identity FROM messages WHERE identity IN ({_marks(len(part))}) "
                f"AND src_folder IN ({_marks(len(others))})", (*part, *others))
            found.update(row[0] for row in rows)
        return found

    async def record_batch(self, source: str, destination: str, copied: list[Copied],
                           refused: list[tuple[SrcMsg, int, str]],
                           placed: list[tuple[int, int | None, int | None]], dropped: list[int]) -> None:
        """What an APPEND did, in one transaction with its placements: copies (and the
        destination UIDs they got), refusals (source uidvalidity, server's words), and the
        placements settled or dropped."""
        now = time.time()
        async with self.store.transaction() as db:
            if copied:
                await db.executemany(_COPIED, [(destination, c.dst_uidvalidity, c.dst_uid, now, source,
                                                c.uidvalidity, c.msg.uid) for c in copied])
                await db.executemany(_DEST, [(destination, c.dst_uidvalidity, c.dst_uid, c.msg.identity)
                                             for c in copied if c.dst_uid is not None])
            if refused:
                await db.executemany(_REFUSED, [(why, now, source, uv, m.uid) for m, uv, why in refused])
            if placed:
                await self.placements.placed(placed)
            if dropped:
                await self.placements.drop(dropped)

    async def record_landed(self, source: str, destination: str, landed: list[tuple[Copied, int]]) -> None:
        """Copies of this run that landed although their APPEND broke (with placement ids)."""
        now = time.time()
        async with self.store.transaction() as db:
            await db.executemany(_COPIED, [(destination, c.dst_uidvalidity, c.dst_uid, now, source,
                                            c.uidvalidity, c.msg.uid) for c, _ in landed])
            await self.placements.placed([(pid, c.dst_uidvalidity, c.dst_uid) for c, pid in landed])

    async def record_yielded(self, source: str, uidvalidity: int, msgs: list[SrcMsg]) -> None:
        """A forward already placed these: already there, not copied again."""
        await self.store.executemany(
            "UPDATE messages SET state='present', reason='placed by a forward' "
            "WHERE src_folder=? AND src_uidvalidity=? AND src_uid=? AND state!='copied'",
            [(source, uidvalidity, m.uid) for m in msgs])

    async def settle_dead(self, folder: str, uidvalidity: int,
                          settled: list[tuple[int, tuple[int, int, str] | None, int]]) -> None:
        """A dead run's appends found landed: (placement id, its source key (uidvalidity,
        uid, folder) or None, destination UID) — placed, and the source copied."""
        async with self.store.transaction() as db:
            await self.placements.placed([(pid, uidvalidity, uid) for pid, _, uid in settled])
            for _, key, uid in settled:
                if key is not None:
                    await db.execute(
                        "UPDATE messages SET state='copied', reason=NULL, dst_folder=?, "
                        "dst_uidvalidity=?, dst_uid=? WHERE src_folder=? AND src_uidvalidity=? "
                        "AND src_uid=? AND state!='copied'", (folder, uidvalidity, uid, key[2], key[0], key[1]))

    # -- the destination --------------------------------------------------------------------
    async def dest_known(self, names: list[str]) -> dict[str, list[tuple[int, int, str]]]:
        """{folder: [(uidvalidity, uid, identity)]} learned before."""
        out: dict[str, list[tuple[int, int, str]]] = {}
        if names:
            for row in await self.store.fetchall(
                    f"SELECT folder, uidvalidity, uid, identity FROM dest_messages "
                    f"WHERE folder IN ({_marks(len(names))})", names):
                out.setdefault(row[0], []).append((row[1], row[2], row[3]))
        return out

    async def dest_forget(self, folder: str, uidvalidity: int, uids: list[int] | None = None) -> None:
        """Forget what ``folder`` held under another UIDVALIDITY (``uids`` None), or these
        UIDs, gone from it."""
        if uids is None:
            await self.store.run("DELETE FROM dest_messages WHERE folder=? AND uidvalidity!=?",
                                 (folder, uidvalidity))
        elif uids:
            await self.store.executemany(
                "DELETE FROM dest_messages WHERE folder=? AND uidvalidity=? AND uid=?",
                [(folder, uidvalidity, u) for u in uids])

    async def dest_learned(self, folder: str, uidvalidity: int, pairs: list[tuple[int, str]]) -> None:
        """(uid, identity) read from the destination (committed per read: a retry after
        a drop goes on from there)."""
        await self.store.executemany(_DEST, [(folder, uidvalidity, u, i) for u, i in pairs])

    async def extra_removed(self, folder: str, uidvalidity: int, uids: list[int]) -> None:
        """Our own extra copies were expunged: forget them everywhere."""
        async with self.store.transaction() as db:
            await self.placements.forget_uids(folder, uidvalidity, uids)
            for k in range(0, len(uids), 500):
                part = uids[k:k + 500]
                marks = _marks(len(part))
                await db.execute(f"DELETE FROM dest_messages WHERE folder=? AND uidvalidity=? AND "
                                 f"uid IN ({marks})", (folder, uidvalidity, *part))
                await db.execute(f"UPDATE messages SET dst_uid=NULL WHERE dst_folder=? AND "
                                 f"dst_uidvalidity=? AND dst_uid IN ({marks})", (folder, uidvalidity, *part))

    # -- runs and the daily caps -------------------------------------------------------------
    async def last_run(self) -> tuple[str, float, float | None, str | None, dict[str, Any]] | None:
        """(job, started, ended, outcome, summary) of the last migration run, or None."""
        row = await self.store.fetchone(
            "SELECT job, started, ended, outcome, summary FROM runs WHERE job='migrate' "
            "ORDER BY id DESC LIMIT 1")
        if row is None:
            return None
        try:
            summary = json.loads(row["summary"]) if row["summary"] else {}
        except ValueError:
            summary = {}
        return row["job"], row["started"], row["ended"], row["outcome"], summary

    async def copied_since(self, since: float, bucket: float) -> list[tuple[float, int]]:
        """Bytes copied since ``since``, in buckets of ``bucket`` seconds stamped with
        their newest copy (oldest first): what the daily caps start from."""
        rows = await self.store.fetchall(
            "SELECT MAX(updated), COALESCE(SUM(size), 0) FROM messages WHERE state='copied' "
            "AND updated >= ? GROUP BY CAST(updated / ? AS INTEGER) ORDER BY 1", (since, bucket))
        return [(float(r[0]), int(r[1] or 0)) for r in rows]
