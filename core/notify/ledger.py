"""The ``notices`` table: one row per person and campaign, written (with the Message-ID
the message will carry) before anything is sent, and every change of its state. The
only SQL on ``notices``.

States: ``queued`` → ``sending`` (claimed by one process: ``claimed_by`` is its pid;
``data_at`` is set right before the message data leaves, the in-doubt window of
core/net/smtp.py) → ``sent`` | ``doubt`` (the data went out, no answer seen) | ``failed``
| ``bounced`` | ``cancelled``. Every transition is one conditional UPDATE (``WHERE
state=...``), so two processes, two tasks or two key presses never both move one row;
``UNIQUE (campaign, address)`` keeps one notice per person per campaign.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..people.audience import Recipient
from ..store import Store

STATES = ("queued", "sending", "sent", "doubt", "failed", "bounced", "cancelled")
#: states a row ends in (nothing sends it by itself any more)
FINAL = ("sent", "failed", "bounced", "cancelled")


@dataclass(frozen=True)
class NoticeRow:
    id: int
    campaign: str
    address: str
    name: str
    group: str
    language: str
    organisation: str
    state: str
    message_id: str
    attempts: int
    claimed_by: int | None
    started: float | None
    data_at: float | None
    sent: float | None
    reply: str
    sent_copy: str
    bounce: str
    requested: float | None

    @property
    def recipient(self) -> Recipient:
        """The person as the notice was queued for (a resend builds the same message)."""
        return Recipient(self.address, self.name, self.group, self.language, self.organisation)


def _row(r: Any) -> NoticeRow:
    return NoticeRow(id=r["id"], campaign=r["campaign"], address=r["address"], name=r["name"] or "",
                     group=r["grp"] or "", language=r["language"] or "en",
                     organisation=r["organisation"] or "", state=r["state"],
                     message_id=r["message_id"] or "", attempts=r["attempts"] or 0,
                     claimed_by=r["claimed_by"], started=r["started"], data_at=r["data_at"],
                     sent=r["sent"], reply=r["outcome"] or "", sent_copy=r["sent_copy"] or "",
                     bounce=r["bounce"] or "", requested=r["requested"])


#: a row 'sending' moves on only by its claimer (or a reconcile naming the dead one)
_MINE = "(state <> 'sending' OR claimed_by IS NULL OR claimed_by = ?)"


class NoticeLedger:
    """Reads and writes of ``notices``; stateless (any number may share one store)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reading ------------------------------------------------------------------------
    async def get(self, row_id: int) -> NoticeRow:
        r = await self.store.fetchone("SELECT * FROM notices WHERE id=?", (row_id,))
        assert r is not None, row_id
        return _row(r)

    async def find(self, campaign: str, address: str) -> NoticeRow | None:
        r = await self.store.fetchone("SELECT * FROM notices WHERE campaign=? AND address=?",
                                      (campaign, address.lower()))
        return _row(r) if r is not None else None

    async def for_address(self, address: str) -> list[NoticeRow]:
        rows = await self.store.fetchall("SELECT * FROM notices WHERE address=? ORDER BY id",
                                         (address.lower(),))
        return [_row(r) for r in rows]

    async def by_message_id(self, message_id: str) -> NoticeRow | None:
        r = await self.store.fetchone("SELECT * FROM notices WHERE message_id=?", (message_id,))
        return _row(r) if r is not None else None

    async def rows(self, campaign: str | None = None, states: Sequence[str] = ()) -> list[NoticeRow]:
        sql, params = "SELECT * FROM notices WHERE 1=1", []
        if campaign is not None:
            sql += " AND campaign=?"
            params.append(campaign)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            params += list(states)
        rows = await self.store.fetchall(sql + " ORDER BY campaign, rank, id", params)
        return [_row(r) for r in rows]

    async def counts(self) -> dict[str, dict[str, int]]:
        """campaign → state → how many."""
        out: dict[str, dict[str, int]] = {}
        for r in await self.store.fetchall(
                "SELECT campaign, state, COUNT(*) AS n FROM notices GROUP BY campaign, state"):
            out.setdefault(r["campaign"], {})[r["state"]] = int(r["n"])
        return out

    async def sent_since(self, since: float) -> list[float]:
        """When each notice (any campaign) that reached a server since ``since`` was
        taken: the pacing's memory across restarts."""
        rows = await self.store.fetchall(
            "SELECT COALESCE(sent, data_at) AS t FROM notices WHERE COALESCE(sent, data_at) >= ? "
            "AND state IN ('sent', 'doubt', 'bounced', 'sending') ORDER BY t", (since,))
        return [float(r["t"]) for r in rows]

    async def first_sent(self) -> float | None:
        v = await self.store.scalar("SELECT MIN(COALESCE(sent, data_at)) FROM notices")
        return float(v) if v is not None else None

    # -- requesting -----------------------------------------------------------------------
    async def enqueue(self, campaign: str, people: Iterable[Recipient],
                      message_ids: Iterable[str]) -> list[str]:
        """Queue one row per person not already in ``campaign`` (whatever its state): a
        second request leaves every existing row alone. Returns the addresses added."""
        now = time.time()
        rows = [(campaign, p.address.lower(), p.name, p.group, p.language, p.organisation, rank, mid, now, now)
                for rank, (p, mid) in enumerate(zip(people, message_ids))]
        if not rows:
            return []
        async with self.store.transaction() as db:
            async with db.execute("SELECT address FROM notices WHERE campaign=?", (campaign,)) as cur:
                known = {r[0] for r in await cur.fetchall()}
            await db.executemany(
                "INSERT OR IGNORE INTO notices (campaign, address, name, grp, language, organisation, rank, "
                "message_id, state, requested, updated) VALUES (?,?,?,?,?,?,?,?, 'queued', ?, ?)", rows)
        return [r[1] for r in rows if r[1] not in known]

    async def cancel_missing(self, campaign: str, keep: set[str]) -> list[str]:
        """Queued rows of people no longer in the audience (the user said "don't notify")
        → cancelled; returns their addresses."""
        gone = [r.address for r in await self.rows(campaign, ("queued",)) if r.address not in keep]
        for address in gone:
            await self.store.run("UPDATE notices SET state='cancelled', updated=?, outcome=? "
                                 "WHERE campaign=? AND address=? AND state='queued'",
                                 (time.time(), "no longer in the audience", campaign, address))
        return gone

    # -- carrying out ---------------------------------------------------------------------
    async def claim(self, row_id: int) -> NoticeRow | None:
        """queued → sending for this process; None when another task or process took it."""
        cur = await self.store.run(
            "UPDATE notices SET state='sending', claimed_by=?, started=?, data_at=NULL, "
            "attempts=attempts+1, updated=? WHERE id=? AND state='queued'",
            (os.getpid(), time.time(), time.time(), row_id))
        return await self.get(row_id) if cur.rowcount == 1 else None

    async def data_leaving(self, row_id: int) -> bool:
        """The message data is about to leave (from here on, the outcome may be unknown);
        False when the row is no longer this process's (then nothing must be sent)."""
        cur = await self.store.run(
            "UPDATE notices SET data_at=?, updated=? WHERE id=? AND state='sending' AND claimed_by=?",
            (time.time(), time.time(), row_id, os.getpid()))
        return cur.rowcount == 1

    async def finish(self, row_id: int, state: str, reply: str, *,
                     from_states: Sequence[str] = ("sending",), bounce: str | None = None,
                     claimer: int | None = None) -> bool:
        """→ sent | doubt | failed | bounced | cancelled; False when it was elsewhere. A
        row 'sending' moves only for its claimer: this process, or ``claimer`` (a dead
        process a reconcile settles for)."""
        marks = ",".join("?" * len(from_states))
        now = time.time()
        sent = now if state == "sent" else None
        cur = await self.store.run(
            f"UPDATE notices SET state=?, outcome=?, updated=?, sent=COALESCE(?, sent), "
            f"bounce=COALESCE(?, bounce) WHERE id=? AND state IN ({marks}) AND {_MINE}",
            (state, reply, now, sent, bounce, row_id, *from_states, claimer or os.getpid()))
        return cur.rowcount == 1

    async def requeue(self, row_id: int, reply: str, *, from_states: Sequence[str] = ("sending",),
                      counts: bool = True, claimer: int | None = None, before_data: bool = False) -> bool:
        """Back to queued (nothing left, or the person asked for a resend): the same
        Message-ID goes next time. ``before_data``: only while no data has started to
        leave (checked in the same statement: a sender may be recording it right now)."""
        marks = ",".join("?" * len(from_states))
        attempts = "attempts" if counts else "MAX(0, attempts-1)"
        unsent = " AND data_at IS NULL" if before_data else ""
        cur = await self.store.run(
            f"UPDATE notices SET state='queued', claimed_by=NULL, data_at=NULL, outcome=?, "
            f"attempts={attempts}, updated=? WHERE id=? AND state IN ({marks}) AND {_MINE}{unsent}",
            (reply, time.time(), row_id, *from_states, claimer or os.getpid()))
        return cur.rowcount == 1

    async def set_copy(self, row_id: int, text: str) -> None:
        await self.store.run("UPDATE notices SET sent_copy=?, updated=? WHERE id=?", (text, time.time(), row_id))

    async def sending(self) -> list[NoticeRow]:
        return await self.rows(None, ("sending",))
