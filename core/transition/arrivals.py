"""The ``arrivals`` table and its record: every message the watch saw arrive (old side:
the feed; new side: who writes to the new address). The only SQL on ``arrivals``.

An arrival is recorded once: its (side, folder, UIDVALIDITY, UID) is unique, and a
second copy of one Message-ID on a side (a filter's copy in another watched folder) is
not recorded again. Its header block is kept (latin-1 text of the raw bytes) so the
rules and the reminders can read any header later without a server.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Sequence

from ..errors import SwitchoverError
from ..mail.dates import parse_date, utc_iso
from ..mail.headers import parse_headers
from ..store import Store
from .classify import HUMAN_BADGES
from .ledger import ActionLedger


@dataclass
class Arrival:
    id: int
    side: str
    folder: str
    uid: int
    message_id: str | None
    sender: str
    sender_name: str
    recipients: list[str]
    subject: str
    date: dt.datetime | None
    seen_at: float
    badge: str
    state: str                      # new | handled
    language: str
    preview: str
    actions: dict[str, str] = field(default_factory=dict)   # latest state per action kind
    size: int = 0
    uidvalidity: int = 0
    #: the header block as received (latin-1 text of the raw bytes)
    headers: str = ""
    #: the migration's identity of the message (core/mail/identity.py), once known
    identity: str | None = None

    def parsed_headers(self) -> Message:
        return parse_headers(self.headers)


@dataclass(frozen=True)
class NewArrival:
    """What the watch learned of one message, to be recorded."""
    side: str
    folder: str
    uidvalidity: int
    uid: int
    message_id: str | None
    sender: str
    sender_name: str
    recipients: list[str]
    subject: str
    date: dt.datetime | None
    size: int
    language: str
    badge: str
    preview: str
    headers: bytes
    identity: str | None


class Arrivals:
    """``engine.arrivals``: recording and reading arrivals. Each record carries the
    latest state of its actions, read from their owner (core/transition/ledger.py)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._actions = ActionLedger(store)

    # -- recording ----------------------------------------------------------------------
    async def has_message_id(self, side: str, message_id: str) -> bool:
        return await self.store.fetchone("SELECT 1 FROM arrivals WHERE side=? AND message_id=?",
                                         (side, message_id)) is not None

    async def add(self, a: NewArrival) -> int | None:
        """Record an arrival; its id, or None when its UID is already recorded. Call it
        inside the caller's transaction together with :meth:`has_message_id`."""
        cur = await self.store.run(
            "INSERT INTO arrivals(side, folder, uidvalidity, uid, message_id, sender, sender_name, "
            "recipients, subject, date, seen_at, size, language, badge, state, preview, headers, "
            "identity) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,'new',?,?,?) "
            "ON CONFLICT(side, folder, uidvalidity, uid) DO NOTHING",
            (a.side, a.folder, a.uidvalidity, a.uid, a.message_id, a.sender, a.sender_name,
             ", ".join(a.recipients), a.subject, utc_iso(a.date), time.time(), a.size,
             a.language, a.badge, a.preview, a.headers.decode("latin-1"), a.identity))
        return cur.lastrowid if cur.rowcount == 1 else None

    async def set_identity(self, arrival_id: int, identity: str) -> None:
        await self.store.run("UPDATE arrivals SET identity=? WHERE id=? AND identity IS NOT ?",
                             (identity, arrival_id, identity))

    async def mark_handled(self, arrival_id: int, handled: bool = True) -> None:
        await self.store.run("UPDATE arrivals SET state=? WHERE id=?",
                             ("handled" if handled else "new", arrival_id))

    # -- reading ------------------------------------------------------------------------
    async def page(self, *, side: str = "old", offset: int = 0, limit: int = 50,
                   state: str | None = None) -> list[Arrival]:
        """A page of arrivals of one side, newest first."""
        sql = "SELECT * FROM arrivals WHERE side=?"
        params: list[Any] = [side]
        if state:
            sql += " AND state=?"
            params.append(state)
        sql += " ORDER BY seen_at DESC, id DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        return await self._records(await self.store.fetchall(sql, params))

    async def get(self, arrival_id: int) -> Arrival | None:
        found = await self._records(await self.store.fetchall("SELECT * FROM arrivals WHERE id=?",
                                                              (arrival_id,)))
        return found[0] if found else None

    async def require(self, arrival_id: int) -> Arrival:
        """The arrival, or one sentence saying there is none."""
        found = await self.get(arrival_id)
        if found is None:
            raise SwitchoverError(f"There is no arrival {arrival_id}; see the feed or 'switchover arrivals'.")
        return found

    async def headers(self, arrival_id: int) -> Message | None:
        """The stored header block of an arrival, parsed."""
        row = await self.store.fetchone("SELECT headers FROM arrivals WHERE id=?", (arrival_id,))
        return parse_headers(row["headers"] or "") if row else None

    async def counts(self) -> dict[str, int]:
        """Old-side arrivals: unhandled (state new, not spam or automated; bounces count,
        a failed notice matters), today (since local midnight), total."""
        midnight = dt.datetime.combine(dt.date.today(), dt.time()).timestamp()
        row = await self.store.fetchone(
            "SELECT COUNT(*) AS total, "
            "SUM(CASE WHEN state='new' AND badge NOT IN ('spam','automated') THEN 1 ELSE 0 END) AS unhandled, "
            "SUM(CASE WHEN seen_at >= ? THEN 1 ELSE 0 END) AS today FROM arrivals WHERE side='old'",
            (midnight,))
        if row is None:
            return {"unhandled": 0, "today": 0, "total": 0}
        return {"unhandled": int(row["unhandled"] or 0), "today": int(row["today"] or 0),
                "total": int(row["total"] or 0)}

    async def tally(self, side: str = "old") -> tuple[int, int]:
        """(arrivals seen on ``side``, how many of them still want a person's look) —
        "unhandled" as the feed counts it: spam and automated mail never wait."""
        row = await self.store.fetchone(
            "SELECT COUNT(*) AS total, "
            "SUM(CASE WHEN state='new' AND badge NOT IN ('spam','automated') THEN 1 ELSE 0 END) "
            "AS unhandled FROM arrivals WHERE side=?", (side,))
        if row is None:
            return 0, 0
        return int(row["total"] or 0), int(row["unhandled"] or 0)

    async def last_from_a_person(self) -> float | None:
        """When a person (not a robot, not spam) last wrote to the old address."""
        marks = ",".join("?" * len(HUMAN_BADGES))
        last = await self.store.scalar(
            f"SELECT MAX(seen_at) FROM arrivals WHERE side='old' AND badge IN ({marks})", HUMAN_BADGES)
        return float(last) if last else None

    async def old_ids_after(self, after_id: int, limit: int = 500) -> list[int]:
        """Ids of old-side arrivals above ``after_id``, ascending."""
        rows = await self.store.fetchall(
            "SELECT id FROM arrivals WHERE side='old' AND id>? ORDER BY id LIMIT ?", (after_id, limit))
        return [int(r["id"]) for r in rows]

    async def last_old_id(self) -> int:
        return int(await self.store.scalar("SELECT MAX(id) FROM arrivals WHERE side='old'", default=0))

    async def _records(self, rows: Sequence[Any]) -> list[Arrival]:
        if not rows:
            return []
        states = await self._actions.latest_states([int(r["id"]) for r in rows])
        return [_arrival(r, states.get(int(r["id"]), {})) for r in rows]


def _arrival(r: Any, actions: dict[str, str]) -> Arrival:
    recips = [a.strip() for a in (r["recipients"] or "").split(",") if a.strip()]
    return Arrival(id=r["id"], side=r["side"], folder=r["folder"], uid=r["uid"], message_id=r["message_id"],
                   sender=r["sender"] or "", sender_name=r["sender_name"] or "", recipients=recips,
                   subject=r["subject"] or "", date=parse_date(r["date"]), seen_at=r["seen_at"],
                   badge=r["badge"] or "", state=r["state"], language=r["language"] or "",
                   preview=r["preview"] or "", actions=actions, size=r["size"] or 0,
                   uidvalidity=r["uidvalidity"], headers=r["headers"] or "", identity=r["identity"])
