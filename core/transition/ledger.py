"""The ``actions`` table: the record written before anything is sent or appended, and
every change of an action's state. The only SQL on ``actions``.

States: ``pending`` (due at ``not_before``) → ``running`` (claimed by one process; its
``outcome`` notes the pid and the phase: ``sending: `` right before SMTP data leaves,
``delivered: `` once a server took the mail) → ``done`` | ``failed`` | ``doubt`` (sent,
never confirmed) | ``cancelled``. Every transition is one conditional UPDATE (``WHERE
state=...``), so two processes never both move one row; a "live" row (pending, running,
done, doubt) for an arrival and kind blocks a second one.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

from ..errors import SwitchoverError
from ..mail.compose import new_message_id
from ..store import Store

KINDS = ("forward", "remind", "handled")
#: states that stand for "this was (or is being) done": a second request returns the row
LIVE = ("pending", "running", "done", "doubt")
_LIVE_SQL = "('pending', 'running', 'done', 'doubt')"
#: states an action ends in
FINAL = ("done", "failed", "cancelled", "doubt")
#: written into ``outcome`` while running, once a server has taken the mail
DELIVERED = "delivered: "
#: written into ``outcome`` right before SMTP message data leaves (the in-doubt window)
SENDING = "sending: "


@dataclass(frozen=True)
class ActionRow:
    id: int
    arrival_id: int | None
    kind: str
    state: str          # pending | running | done | doubt | failed | cancelled
    requested: float
    not_before: float
    done: float | None
    recipient: str | None
    outcome: str | None
    attempts: int
    auto: bool
    sent_message_id: str | None = None
    started: float | None = None
    #: True when a request found this action already recorded (a second press, or
    #: something done before): nothing new was asked for
    earlier: bool = False

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def pid(self) -> int | None:
        """The process that claimed it (noted in ``outcome`` while running)."""
        m = re.match(r"pid (\d+)", self.outcome or "")
        return int(m.group(1)) if m else None


def _row(r: Any) -> ActionRow:
    return ActionRow(id=r["id"], arrival_id=r["arrival_id"], kind=r["kind"], state=r["state"],
                     requested=r["requested"], not_before=r["not_before"], done=r["done"],
                     recipient=r["recipient"], outcome=r["outcome"], attempts=r["attempts"],
                     auto=bool(r["auto"]), sent_message_id=r["sent_message_id"], started=r["started"])


class ActionLedger:
    """Reads and writes of ``actions``; stateless (any number may share one store)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reading ------------------------------------------------------------------------
    async def find(self, action_id: int) -> ActionRow | None:
        r = await self.store.fetchone("SELECT * FROM actions WHERE id=?", (action_id,))
        return _row(r) if r is not None else None

    async def get(self, action_id: int) -> ActionRow:
        row = await self.find(action_id)
        if row is None:
            raise SwitchoverError(f"There is no action {action_id}.")
        return row

    async def for_arrival(self, arrival_id: int) -> list[ActionRow]:
        rows = await self.store.fetchall("SELECT * FROM actions WHERE arrival_id=? ORDER BY id", (arrival_id,))
        return [_row(r) for r in rows]

    async def live(self, arrival_id: int, kind: str) -> ActionRow | None:
        r = await self.store.fetchone(
            f"SELECT * FROM actions WHERE arrival_id=? AND kind=? AND state IN {_LIVE_SQL} "
            f"ORDER BY id DESC LIMIT 1", (arrival_id, kind))
        return _row(r) if r is not None else None

    async def latest_states(self, arrival_ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """The latest state of each kind of action, per arrival (the feed shows them)."""
        out: dict[int, dict[str, str]] = {i: {} for i in arrival_ids}
        if not arrival_ids:
            return out
        marks = ",".join("?" * len(arrival_ids))
        for a in await self.store.fetchall(
                f"SELECT arrival_id, kind, state FROM actions WHERE arrival_id IN ({marks}) ORDER BY id",
                list(arrival_ids)):
            out[a["arrival_id"]][a["kind"]] = a["state"]
        return out

    async def done_kinds(self, arrival_id: int) -> set[str]:
        rows = await self.store.fetchall("SELECT kind FROM actions WHERE arrival_id=? AND state='done'",
                                         (arrival_id,))
        return {r["kind"] for r in rows}

    async def reminded_since(self, recipient: str, since: float) -> bool:
        """A reminder to ``recipient`` recorded (live) since ``since``."""
        return await self.store.fetchone(
            f"SELECT 1 FROM actions WHERE kind='remind' AND recipient=? AND state IN {_LIVE_SQL} "
            f"AND requested>?", (recipient, since)) is not None

    async def running(self) -> list[ActionRow]:
        return [_row(r) for r in await self.store.fetchall("SELECT * FROM actions WHERE state='running'")]

    async def doubts_since(self, since: float) -> list[ActionRow]:
        rows = await self.store.fetchall("SELECT * FROM actions WHERE state='doubt' AND requested>?", (since,))
        return [_row(r) for r in rows]

    # -- requesting -----------------------------------------------------------------------
    async def insert_live(self, arrival_id: int, kind: str, not_before: float, recipient: str | None,
                          message_id: str | None, auto: bool) -> ActionRow:
        """Insert a pending action unless one for this arrival and kind is already live
        (pending, running, done or in doubt); returns the live row (``earlier`` when it
        was there before). One statement: SQLite serializes writers, so two presses (or
        two processes) cannot both insert a live row."""
        cur = await self.store.run(
            "INSERT INTO actions (arrival_id, kind, state, requested, not_before, recipient, "
            "sent_message_id, auto) SELECT ?, ?, 'pending', ?, ?, ?, ?, ? WHERE NOT EXISTS "
            f"(SELECT 1 FROM actions WHERE arrival_id=? AND kind=? AND state IN {_LIVE_SQL})",
            (arrival_id, kind, time.time(), not_before, recipient, message_id, int(auto), arrival_id, kind))
        if cur.rowcount == 1:
            return await self.get(cur.lastrowid)
        row = await self.live(arrival_id, kind)
        if row is None:      # settled between the two statements: try once more
            return await self.insert_live(arrival_id, kind, not_before, recipient, message_id, auto)
        return replace(row, earlier=True)

    async def reserved_message_id(self, arrival_id: int, kind: str, address: str) -> str:
        """The Message-ID the next manual send of this kind for this arrival carries, so
        a preview shows the very message that goes. It stays reserved: a new request after
        an undo or a failure sends under the same Message-ID (as a retry does), so a copy
        that did arrive reads as one message."""
        key = f"actions.message_id.{kind}.{arrival_id}"
        async with self.store.transaction():
            mid = await self.store.get_setting(key)
            if not mid:
                mid = new_message_id(address)
                await self.store.set_setting(key, mid)
        return str(mid)

    async def cancel(self, action_id: int) -> bool:
        cur = await self.store.run("UPDATE actions SET state='cancelled', done=? WHERE id=? AND state='pending'",
                                   (time.time(), action_id))
        return cur.rowcount == 1

    # -- carrying out ---------------------------------------------------------------------
    async def due(self, limit: int) -> list[ActionRow]:
        rows = await self.store.fetchall(
            "SELECT * FROM actions WHERE state='pending' AND not_before<=? ORDER BY not_before, id LIMIT ?",
            (time.time(), max(0, limit)))
        return [_row(r) for r in rows]

    async def claim(self, action_id: int) -> ActionRow | None:
        """pending and due → running for this process; None when another took it (or it is
        not due)."""
        now = time.time()
        cur = await self.store.run(
            "UPDATE actions SET state='running', started=?, attempts=attempts+1, outcome=? "
            "WHERE id=? AND state='pending' AND not_before<=?", (now, f"pid {os.getpid()}", action_id, now))
        return await self.get(action_id) if cur.rowcount == 1 else None

    async def note(self, action_id: int, text: str) -> bool:
        """Note a phase in a running row's outcome; False when it is no longer running."""
        cur = await self.store.run("UPDATE actions SET outcome=? WHERE id=? AND state='running'",
                                   (f"pid {os.getpid()}; {text}", action_id))
        return cur.rowcount == 1

    async def finish(self, action_id: int, state: str, outcome: str, *,
                     from_states: Sequence[str] = ("running",)) -> bool:
        """→ done | failed | doubt from one of ``from_states``; False when it was elsewhere."""
        marks = ",".join("?" * len(from_states))
        cur = await self.store.run(
            f"UPDATE actions SET state=?, done=?, outcome=? WHERE id=? AND state IN ({marks})",
            (state, time.time(), outcome, action_id, *from_states))
        return cur.rowcount == 1

    async def again(self, action_id: int, not_before: float, outcome: str, *, counts: bool = True) -> bool:
        """running → pending, due at ``not_before``; an attempt that only waited (another
        writer busy) does not count (``counts`` False)."""
        attempts = "attempts" if counts else "MAX(0, attempts-1)"
        cur = await self.store.run(
            f"UPDATE actions SET state='pending', not_before=?, attempts={attempts}, outcome=? "
            f"WHERE id=? AND state='running'", (not_before, outcome, action_id))
        return cur.rowcount == 1
