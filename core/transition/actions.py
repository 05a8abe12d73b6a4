"""What the user (or an automatic rule) does with an arrival in the old mailbox: forward
it to the new address, remind its sender of the new address, or mark it handled.

Every action is a row in ``actions`` written *before* anything is sent or appended and
marked after, so a double key press, a retry or a crash never sends twice:

* ``request`` inserts the row (state ``pending``, ``not_before`` = now + the undo window)
  in one statement that refuses a second live row for the same arrival and kind;
* a runner claims a due row with ``UPDATE ... WHERE state='pending'`` (only one process
  wins), carries it out, and as soon as the server has taken the mail writes a
  ``delivered`` marker, then ``done`` with the server's words (or ``failed``);
* ``reconcile`` settles rows left ``running`` by a dead process.

Sending by SMTP (reminders, forwards with ``forward_method: smtp``) has one window whose
outcome cannot be known: from the end of the message data until the server's reply
(core/smtp.py). Right before the data goes out the row's outcome says ``sending``; a
timeout or a dropped connection in the window, or a process that died with that marker,
makes the action ``doubt``: never retried by itself. What can settle a doubt soundly:

* a forward by SMTP goes to the new address, whose INBOX we can read: the message's own
  Message-ID there proves delivery (``reconcile`` keeps looking);
* a reminder through Gmail / Outlook, whose SMTP files every accepted message in Sent:
  its Message-ID in Sent proves the server took it;
* anything else (a reminder through any other provider) cannot be told from outside:
  a copy we append to Sent ourselves — before or after sending — only shows what we
  meant to send, never what the server took, so it proves nothing and is not used as
  proof. The person decides with :meth:`Actions.resolve_doubt` (delivered: done; not
  delivered: a new attempt with the same Message-ID, so a copy that did arrive reads as
  one message at the recipient).

Forwards by IMAP append into the new INBOX, which the migration writes too: each
forward is recorded in ``placements`` (core/placements.py) before its APPEND, so the
migration and a forward never both place one message; an APPEND cut off mid-way is
settled by looking at the server.

Arrival state: a ``handled`` action marks the arrival handled; so does a forward or a
reminder the person asked for (``transition.handled_on_action``, default on); automatic
ones mark it only as the pair forward + remind (the person has not looked at it yet).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.policy
import email.utils
import functools
import hashlib
import json
import os
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import imapclient
from imapclient.imapclient import _literal
from imapclient.datetime_util import datetime_to_INTERNALDATE

from ..net import imap as imapmod
from ..net import smtp as smtpmod
from .classify import (addresses, header_text, is_automated, is_bounce, message_text,
                       own_addresses_of, parse_headers, parse_message, rfc3834_allows_reply)
from ..errors import SwitchoverError
from ..events import ActionChanged, LogLine
from ..mail.identity import identity_of
from ..placements import pid_alive
from ..mail.templates import reminder, sender_language

if TYPE_CHECKING:
    from ..engine import Engine
    from ..placements import Placement

KINDS = ("forward", "remind", "handled")
#: states that stand for "this was (or is being) done": a second request returns the row
LIVE = ("pending", "running", "done", "doubt")
_LIVE_SQL = "('pending', 'running', 'done', 'doubt')"
#: written into ``outcome`` while running, once a server has taken the mail
DELIVERED = "delivered: "
#: written into ``outcome`` right before SMTP message data leaves (the in-doubt window)
SENDING = "sending: "
#: actions one process carries out at once
SLOTS = 4
#: temporary failures (network, 4xx, throttling) are retried by themselves this often
AUTO_ATTEMPTS = 3
#: an APPEND cut off by a dead process is over on the server well within this
SETTLE_SECONDS = 10.0
#: another live process is placing the same message: look again after this
BUSY_RETRY_SECONDS = 5.0
#: how often a doubt that can be checked is looked up again, and for how long
DOUBT_RECHECK_SECONDS = 300.0
DOUBT_RECHECK_DAYS = 14
#: providers whose SMTP files a copy in Sent by itself
_SAVES_SENT = {"gmail", "outlook"}
_SENT_NAMES = ("Sent", "Sent Messages", "Sent Items", "Sent Mail", "已发送", "已发送邮件",
               "INBOX.Sent", "INBOX/Sent", "[Gmail]/Sent Mail", "Отправленные", "Enviados")


class NeedsConfirmation(SwitchoverError):
    """A manual reminder would go to a list or a robot; ``warning`` is the one sentence
    to show before asking the person to confirm."""

    exit_code = 1

    def __init__(self, warning: str) -> None:
        super().__init__(f"{warning} Confirm to send it anyway.")
        self.warning = warning


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


@dataclass(frozen=True)
class Preview:
    """What an action would send, before it goes."""
    kind: str
    to: str
    subject: str
    language: str
    text: str           # the body as the recipient reads it
    raw: bytes          # the MIME message (same Message-ID as the real send; Date is when it goes)


@dataclass(frozen=True)
class Original:
    raw: bytes
    internaldate: dt.datetime | None
    uid: int


class _Later(Exception):
    """Not now, and not a failure: try again in ``seconds`` (another writer is busy)."""

    def __init__(self, seconds: float, why: str) -> None:
        super().__init__(why)
        self.seconds = seconds
        self.why = why


def _row(r: Any) -> ActionRow:
    return ActionRow(id=r["id"], arrival_id=r["arrival_id"], kind=r["kind"], state=r["state"],
                     requested=r["requested"], not_before=r["not_before"], done=r["done"],
                     recipient=r["recipient"], outcome=r["outcome"], attempts=r["attempts"],
                     auto=bool(r["auto"]))


def _sentence(exc: BaseException) -> str:
    if isinstance(exc, SwitchoverError):
        return exc.message
    text = str(exc).strip() or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"


def is_database_error(exc: BaseException) -> bool:
    """Trouble with the state file (locked, busy, full), not with a mail server."""
    if isinstance(exc, sqlite3.Error):
        return True
    return isinstance(exc, SwitchoverError) and exc.message.startswith("The state file")


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1] if "@" in address else "switchover.invalid"


def new_message_id(address: str) -> str:
    return f"<{uuid.uuid4().hex}.switchover@{_domain(address)}>"


def _crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r\n|\r|\n", b"\r\n", raw)


def _pid_of(outcome: str | None) -> int | None:
    m = re.match(r"pid (\d+)", outcome or "")
    return int(m.group(1)) if m else None


class Actions:
    """The ``engine.actions`` facet."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._inflight: set[int] = set()
        self._workers: set[asyncio.Task] = set()
        self._sem = asyncio.Semaphore(SLOTS)
        self._last_reconcile = 0.0
        #: final writes that failed (state file busy): retried by the runner until they land
        self._unsettled: dict[int, Callable[[], Awaitable[None]]] = {}
        self._doubt_checked: dict[int, float] = {}
        #: how long the reply to the end of SMTP data is awaited (tests shorten it)
        self.data_timeout = smtpmod.DATA_TIMEOUT

    # -- reading ------------------------------------------------------------------------
    async def _arrival(self, arrival_id: int) -> Any:
        row = await self.engine.store.fetchone("SELECT * FROM arrivals WHERE id=?", (arrival_id,))
        if row is None:
            raise SwitchoverError(f"There is no arrival {arrival_id}; see the feed or 'switchover watch'.")
        return row

    async def _action(self, action_id: int) -> Any:
        row = await self.engine.store.fetchone("SELECT * FROM actions WHERE id=?", (action_id,))
        if row is None:
            raise SwitchoverError(f"There is no action {action_id}.")
        return row

    async def get(self, action_id: int) -> ActionRow:
        return _row(await self._action(action_id))

    async def for_arrival(self, arrival_id: int) -> list[ActionRow]:
        rows = await self.engine.store.fetchall(
            "SELECT * FROM actions WHERE arrival_id=? ORDER BY id", (arrival_id,))
        return [_row(r) for r in rows]

    async def _live(self, arrival_id: int, kind: str) -> Any | None:
        return await self.engine.store.fetchone(
            f"SELECT * FROM actions WHERE arrival_id=? AND kind=? AND state IN {_LIVE_SQL} "
            f"ORDER BY id DESC LIMIT 1", (arrival_id, kind))

    # -- requesting ---------------------------------------------------------------------
    def _reply_address(self, arrival: Any) -> tuple[str, str]:
        """(name, address) a reminder goes to: Reply-To, else the sender."""
        msg = parse_headers(arrival["headers"] or "")
        reply_to = addresses(msg, "Reply-To")
        if reply_to:
            name, addr = reply_to[0]
            return name or (arrival["sender_name"] or ""), addr
        return arrival["sender_name"] or "", (arrival["sender"] or "").lower()

    async def remind_warning(self, arrival_id: int) -> str | None:
        """One sentence when a reminder to this arrival's sender would reach a list or a
        robot (RFC 3834 signals, no-reply addresses, an empty return path, bounces);
        None for a person."""
        arrival = await self._arrival(arrival_id)
        msg = parse_headers(arrival["headers"] or "")
        _, recipient = self._reply_address(arrival)
        who = recipient or arrival["sender"] or "the sender"
        if is_bounce(msg):
            return f"Arrival #{arrival_id} is a delivery report: a reminder to {who} would go to a mail robot."
        auto, why = is_automated(msg)
        if auto:
            return (f"Arrival #{arrival_id} comes from a list or an automated sender ({why}): "
                    f"a reminder to {who} would reach a robot or everyone on the list.")
        return None

    async def request(self, arrival_id: int, kind: str, *, delay: float | None = None,
                      auto: bool = False, confirmed: bool = False) -> int:
        """Record an action (pending until now + delay) and return its id; a live one for
        the same arrival and kind is returned instead of a second. A manual reminder to a
        list or automated sender raises :class:`NeedsConfirmation` unless ``confirmed``."""
        if kind not in KINDS:
            raise SwitchoverError(f"Unknown action '{kind}' (use forward, remind or handled).")
        arrival = await self._arrival(arrival_id)
        cfg = self.engine.config
        wait = cfg.transition.undo_seconds if delay is None else max(0.0, float(delay))
        recipient, mid = None, None
        # a person may have previewed the message: it goes with the Message-ID shown
        # (an automatic rule acts before anyone could look)
        if kind == "forward":
            recipient = cfg.identity.new_address
            if cfg.transition.forward_method == "smtp":
                mid = (new_message_id(recipient) if auto
                       else await self._reserved_message_id(arrival_id, kind))
        elif kind == "remind":
            recipient = self._reply_address(arrival)[1]
            if not recipient or "@" not in recipient:
                raise SwitchoverError(f"Arrival {arrival_id} has no sender address to remind.")
            if not auto and not confirmed and await self._live(arrival_id, kind) is None:
                warning = await self.remind_warning(arrival_id)
                if warning:
                    raise NeedsConfirmation(warning)
            mid = (new_message_id(cfg.identity.old_address) if auto
                   else await self._reserved_message_id(arrival_id, kind))
        now = time.time()
        action_id, new = await self._insert_live(arrival_id, kind, now + wait, recipient, mid, int(auto))
        if new:
            if mid and not auto:
                await self.engine.store.run("DELETE FROM settings WHERE key=?",
                                            (self._mid_key(arrival_id, kind),))
            self.engine.publish(ActionChanged(action_id, arrival_id, kind, "pending",
                                              f"in {wait:.0f} s" if wait else ""))
            self._poke()
        return action_id

    @staticmethod
    def _mid_key(arrival_id: int, kind: str) -> str:
        return f"actions.message_id.{kind}.{arrival_id}"

    async def _reserved_message_id(self, arrival_id: int, kind: str) -> str:
        """The Message-ID the next send of this kind for this arrival will carry, so a
        preview shows the very message that goes."""
        key = self._mid_key(arrival_id, kind)
        mid = await self.engine.store.get_setting(key)
        if not mid:
            ident = self.engine.config.identity
            mid = new_message_id(ident.old_address if kind == "remind" else ident.new_address)
            await self.engine.store.run(
                "INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO NOTHING",
                (key, json.dumps(mid)))
            mid = await self.engine.store.get_setting(key) or mid
        return str(mid)

    async def _insert_live(self, arrival_id: int, kind: str, not_before: float,
                           recipient: str | None, mid: str | None, auto: int) -> tuple[int, bool]:
        """Insert a pending action unless one for this arrival and kind is already live
        (pending, running, done or in doubt); returns (id of the live action, whether it
        is new). One statement: SQLite serializes writers, so two presses (or two
        processes) cannot both insert a live row."""
        cur = await self.engine.store.run(
            "INSERT INTO actions (arrival_id, kind, state, requested, not_before, recipient, "
            "sent_message_id, auto) SELECT ?, ?, 'pending', ?, ?, ?, ?, ? WHERE NOT EXISTS "
            f"(SELECT 1 FROM actions WHERE arrival_id=? AND kind=? AND state IN {_LIVE_SQL})",
            (arrival_id, kind, time.time(), not_before, recipient, mid, auto, arrival_id, kind))
        if cur.rowcount == 1:
            return int(cur.lastrowid), True
        row = await self._live(arrival_id, kind)
        assert row is not None
        return int(row["id"]), False

    async def cancel(self, action_id: int) -> bool:
        """Undo: only a pending action (nothing has been sent yet)."""
        row = await self._action(action_id)
        cur = await self.engine.store.run(
            "UPDATE actions SET state='cancelled', done=? WHERE id=? AND state='pending'",
            (time.time(), action_id))
        if cur.rowcount != 1:
            return False
        self.engine.publish(ActionChanged(action_id, row["arrival_id"], row["kind"], "cancelled"))
        return True

    async def retry(self, action_id: int) -> int:
        """A failed (or cancelled) action → a new pending attempt, due now."""
        row = await self._action(action_id)
        if row["state"] not in ("failed", "cancelled"):
            raise SwitchoverError(f"Action {action_id} is {row['state']}; only a failed or "
                                  f"cancelled action can be retried.")
        # Same guard as request: no second live row; the same Message-ID, so a failure
        # that was in fact delivered reads as one message at the recipient.
        new_id, new = await self._insert_live(row["arrival_id"], row["kind"], time.time(),
                                              row["recipient"], row["sent_message_id"], row["auto"])
        if new:
            self.engine.publish(ActionChanged(new_id, row["arrival_id"], row["kind"], "pending", "retry"))
            self._poke()
        return new_id

    async def resolve_doubt(self, action_id: int, delivered: bool) -> int:
        """The person settles an action in doubt: ``delivered`` → done ("confirmed by
        you"), returns its id; otherwise a new pending attempt with the same Message-ID,
        due now, and its id."""
        row = await self._action(action_id)
        if row["state"] != "doubt":
            raise SwitchoverError(f"Action {action_id} is {row['state']}, not in doubt; "
                                  f"there is nothing to decide.")
        if delivered:
            note = "confirmed by you" + (f" ({row['outcome']})" if row["outcome"] else "")
            settled = await self._settle_done(row, note, from_states=("doubt",))
            if not settled:
                raise SwitchoverError(f"Action {action_id} was settled meanwhile; see its state.")
            return action_id
        async with self.engine.store.transaction():
            cur = await self.engine.store.run(
                "UPDATE actions SET state='failed', done=?, outcome=? WHERE id=? AND state='doubt'",
                (time.time(), "not delivered, by your decision; sent again", action_id))
            if cur.rowcount != 1:
                raise SwitchoverError(f"Action {action_id} was settled meanwhile; see its state.")
            new_id, _ = await self._insert_live(row["arrival_id"], row["kind"], time.time(),
                                                row["recipient"], row["sent_message_id"], row["auto"])
        self.engine.publish(ActionChanged(action_id, row["arrival_id"], row["kind"], "failed",
                                          "not delivered, by your decision"))
        self.engine.publish(ActionChanged(new_id, row["arrival_id"], row["kind"], "pending",
                                          "sent again, by your decision"))
        self._poke()
        return new_id

    # -- preview --------------------------------------------------------------------------
    async def preview(self, arrival_id: int, kind: str) -> Preview:
        """What a forward or a reminder of this arrival would send (nothing is sent)."""
        if kind not in ("forward", "remind"):
            raise SwitchoverError(f"There is nothing to preview for '{kind}' (forward or remind).")
        arrival = await self._arrival(arrival_id)
        live = await self._live(arrival_id, kind)
        cfg = self.engine.config
        if kind == "remind":
            name, recipient = self._reply_address(arrival)
            if not recipient or "@" not in recipient:
                raise SwitchoverError(f"Arrival {arrival_id} has no sender address to remind.")
            if live is not None:
                recipient = live["recipient"] or recipient
                mid, auto = live["sent_message_id"], bool(live["auto"])
            else:
                mid, auto = await self._reserved_message_id(arrival_id, kind), False
            text, raw = await self._reminder(arrival, recipient, mid, auto)
            return Preview("remind", recipient, text.subject, text.language, text.body, raw)
        original = await self.engine.run_blocking(self._fetch_original, arrival)
        to = cfg.identity.new_address
        if cfg.transition.forward_method == "smtp":
            mid = (live["sent_message_id"] if live is not None and live["sent_message_id"]
                   else await self._reserved_message_id(arrival_id, kind))
            raw = self._forward_message(arrival, original.raw, mid)
            subject = "Fwd: " + (arrival["subject"] or "")
        else:
            raw = original.raw
            subject = arrival["subject"] or ""
        text = message_text(parse_message(original.raw), attachments=True)
        return Preview("forward", to, subject, arrival["language"] or "", text, raw)

    # -- running ------------------------------------------------------------------------
    async def _claim_due(self, limit: int = SLOTS) -> list[Any]:
        """Claim up to ``limit`` due actions: no more than this process carries out at
        once, so a row says 'running' only while its work runs, and another process on
        the same state file takes its share."""
        now = time.time()
        rows = await self.engine.store.fetchall(
            "SELECT * FROM actions WHERE state='pending' AND not_before<=? ORDER BY not_before, id "
            "LIMIT ?", (now, max(0, limit)))
        claimed = []
        for r in rows:
            cur = await self.engine.store.run(
                "UPDATE actions SET state='running', started=?, attempts=attempts+1, outcome=? "
                "WHERE id=? AND state='pending'", (now, f"pid {os.getpid()}", r["id"]))
            if cur.rowcount == 1:
                self._inflight.add(r["id"])
                claimed.append(await self._action(r["id"]))
        return claimed

    async def run_due(self) -> int:
        """Carry out every due pending action now; returns how many ran."""
        total = 0
        while True:
            rows = await self._claim_due()
            if not rows:
                return total
            total += len(rows)
            await asyncio.gather(*(self._execute(r) for r in rows))

    async def _execute(self, row: Any) -> None:
        aid, kind, arrival_id = row["id"], row["kind"], row["arrival_id"]
        self.engine.publish(ActionChanged(aid, arrival_id, kind, "running"))
        settle: Callable[[], Awaitable[Any]]
        try:
            async with self._sem:
                outcome = await self._carry_out(row)
        except asyncio.CancelledError:
            self._inflight.discard(aid)
            raise
        except _Later as later:
            settle = functools.partial(self._later, row, later)
        except Exception as e:
            settle = functools.partial(self._failed, row, e)
        else:
            settle = functools.partial(self._done, row, outcome)
        await self._persist(aid, settle)

    async def _persist(self, aid: int, settle: Callable[[], Awaitable[Any]]) -> None:
        """Write an action's end; a busy state file is waited out, and a write that keeps
        failing is kept and retried by the runner, so no action stays 'running' after its
        work ended while this process lives."""
        delay = 0.2
        for attempt in range(6):
            try:
                await settle()
            except Exception as e:
                if not is_database_error(e):
                    self._inflight.discard(aid)
                    raise
                if attempt == 0:
                    self.engine.publish(LogLine("warning", f"Action {aid}: the state file is busy "
                                                           f"({_sentence(e)}); trying again."))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                self._unsettled.pop(aid, None)
                self._inflight.discard(aid)
                return
        self._unsettled[aid] = settle      # stays in _inflight: reconcile leaves it alone

    async def _retry_unsettled(self) -> None:
        for aid, settle in list(self._unsettled.items()):
            try:
                await settle()
            except Exception as e:
                if not is_database_error(e):
                    self._unsettled.pop(aid, None)
                    self._inflight.discard(aid)
                    self.engine.publish(LogLine("error", f"Action {aid}: {_sentence(e)}"))
                continue
            self._unsettled.pop(aid, None)
            self._inflight.discard(aid)

    async def _done(self, row: Any, outcome: str) -> None:
        await self._settle_done(row, outcome, from_states=("running",))

    async def _settle_done(self, row: Any, outcome: str, *, from_states: tuple[str, ...]) -> bool:
        """Mark done (from one of ``from_states``), note the reminder, maybe mark the
        arrival handled; one transaction. False when the row was in another state."""
        now = time.time()
        marks = ",".join("?" * len(from_states))
        async with self.engine.store.transaction():
            cur = await self.engine.store.run(
                f"UPDATE actions SET state='done', done=?, outcome=? WHERE id=? AND state IN ({marks})",
                (now, outcome, row["id"], *from_states))
            if cur.rowcount != 1:
                return False
            if row["kind"] == "remind" and row["recipient"]:
                await self.engine.store.run(
                    "INSERT INTO correspondents (address, last_reminded) VALUES (?, ?) "
                    "ON CONFLICT(address) DO UPDATE SET last_reminded=excluded.last_reminded",
                    (row["recipient"].lower(), now))
            if row["arrival_id"] is not None:
                await self._maybe_handled(row["arrival_id"], row["kind"], bool(row["auto"]))
        self._doubt_checked.pop(row["id"], None)
        self.engine.publish(ActionChanged(row["id"], row["arrival_id"], row["kind"], "done", outcome))
        return True

    async def _maybe_handled(self, arrival_id: int, kind: str, auto: bool) -> None:
        on_action = getattr(self.engine.config.transition, "handled_on_action", True)
        if kind != "handled" and not (on_action and not auto):
            done = {r["kind"] for r in await self.engine.store.fetchall(
                "SELECT kind FROM actions WHERE arrival_id=? AND state='done'", (arrival_id,))}
            if not {"forward", "remind"} <= done:
                return
        await self.engine.store.run("UPDATE arrivals SET state='handled' WHERE id=?", (arrival_id,))

    async def _later(self, row: Any, later: _Later) -> None:
        when = time.time() + later.seconds
        await self.engine.store.run(
            "UPDATE actions SET state='pending', not_before=?, attempts=MAX(0, attempts-1), outcome=? "
            "WHERE id=? AND state='running'", (when, later.why, row["id"]))
        self.engine.publish(ActionChanged(row["id"], row["arrival_id"], row["kind"], "pending", later.why))

    async def _failed(self, row: Any, exc: BaseException) -> None:
        words = _sentence(exc)
        if isinstance(exc, smtpmod.SmtpInDoubt):
            await self._to_doubt(row, words)
            return
        attempts = (await self._action(row["id"]))["attempts"]
        if smtpmod.is_temporary(exc) and attempts < AUTO_ATTEMPTS:
            wait = getattr(exc, "retry_after", None) or 30.0 * 2 ** (attempts - 1)
            await self.engine.store.run(
                "UPDATE actions SET state='pending', not_before=?, outcome=? WHERE id=? AND state='running'",
                (time.time() + wait, f"will try again in {wait:.0f} s: {words}", row["id"]))
            self.engine.publish(ActionChanged(row["id"], row["arrival_id"], row["kind"], "pending",
                                              f"will try again in {wait:.0f} s: {words}"))
            return
        await self.engine.store.run(
            "UPDATE actions SET state='failed', done=?, outcome=? WHERE id=? AND state='running'",
            (time.time(), words, row["id"]))
        self.engine.publish(ActionChanged(row["id"], row["arrival_id"], row["kind"], "failed", words))
        self.engine.publish(LogLine("error", f"{row['kind']} of arrival {row['arrival_id']} failed: {words}"))

    async def _to_doubt(self, row: Any, words: str) -> None:
        """The send's outcome is unknown: park it where nothing retries it."""
        what = "reminder to " + (row["recipient"] or "?") if row["kind"] == "remind" else "forward"
        text = (f"{words} Not sent again by itself: if it arrived, confirm it; if not, "
                f"send it again (same Message-ID).")
        cur = await self.engine.store.run(
            "UPDATE actions SET state='doubt', done=?, outcome=? WHERE id=? AND state='running'",
            (time.time(), text, row["id"]))
        if cur.rowcount != 1:
            return          # another process settled it meanwhile
        self._doubt_checked[row["id"]] = time.time()
        self.engine.publish(ActionChanged(row["id"], row["arrival_id"], row["kind"], "doubt", text))
        self.engine.publish(LogLine("warning", f"The {what} of arrival #{row['arrival_id']} is in "
                                               f"doubt: {words}"))

    async def _mark(self, action_id: int, text: str) -> None:
        """Note a phase in the running row's outcome; refuses when the row is no longer
        this process's running action (then nothing must be sent)."""
        cur = await self.engine.store.run(
            "UPDATE actions SET outcome=? WHERE id=? AND state='running'",
            (f"pid {os.getpid()}; {text}", action_id))
        if cur.rowcount != 1:
            raise SwitchoverError(f"Action {action_id} changed elsewhere; nothing was sent.")

    async def _mark_delivered(self, action_id: int, what: str) -> None:
        """After the server took the mail. A busy state file must not turn a delivered
        send into a failure: the 'sending' marker already keeps it from a blind retry, and
        the final 'done' write carries the words anyway."""
        try:
            await self._mark(action_id, f"{DELIVERED}{what}")
        except Exception as e:
            if not is_database_error(e):
                raise
            self.engine.publish(LogLine("warning", f"Action {action_id}: could not note the "
                                                   f"delivery yet ({_sentence(e)})."))

    async def _carry_out(self, row: Any) -> str:
        kind = row["kind"]
        if kind == "handled":
            return "marked handled"
        arrival = await self._arrival(row["arrival_id"])
        if kind == "forward":
            if self.engine.config.transition.forward_method == "smtp":
                return await self._forward_smtp(row, arrival)
            return await self._forward_imap(row, arrival)
        return await self._remind(row, arrival)

    async def _send(self, row: Any, side: str, mail_from: str, raw: bytes) -> None:
        """SMTP with the in-doubt marker written right before the data leaves."""
        loop = asyncio.get_running_loop()
        aid = row["id"]

        def before_data() -> None:   # in the worker thread: wait for the write to commit
            stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
            fut = asyncio.run_coroutine_threadsafe(
                self._mark(aid, f"{SENDING}the message data went out at {stamp}"), loop)
            fut.result(timeout=120)

        await self.engine.run_blocking(smtpmod.send, self.engine.account(side), mail_from,
                                       [row["recipient"]], raw, before_data=before_data,
                                       data_timeout=self.data_timeout)

    async def _forward_smtp(self, row: Any, arrival: Any) -> str:
        original = await self.engine.run_blocking(self._fetch_original, arrival)
        await self._store_identity(arrival, identity_of(original.raw))
        mid = row["sent_message_id"] or new_message_id(self.engine.config.identity.new_address)
        raw = self._forward_message(arrival, original.raw, mid)
        await self._send(row, "new", self.engine.config.identity.new_address, raw)
        what = f"sent to {row['recipient']} as an attachment through the new account's SMTP"
        await self._mark_delivered(row["id"], what)
        return what

    async def _remind(self, row: Any, arrival: Any) -> str:
        _, raw = await self._reminder(arrival, row["recipient"], row["sent_message_id"], bool(row["auto"]))
        acct = self.engine.account("old")
        await self._send(row, "old", self.engine.config.identity.old_address, raw)
        await self._mark_delivered(row["id"], "sent")
        note = ""
        if acct.provider not in _SAVES_SENT:
            try:
                folder = await self.engine.run_blocking(self._append_sent, raw)
                note = f"; a copy is in {folder}" if folder else ""
            except Exception as e:  # the reminder went out; a missing copy is only noted
                note = f"; no copy in Sent ({_sentence(e)})"
        return f"reminder sent to {row['recipient']}{note}"

    async def _store_identity(self, arrival: Any, identity: str) -> None:
        if arrival["identity"] != identity:
            await self.engine.store.run("UPDATE arrivals SET identity=? WHERE id=?",
                                        (identity, arrival["id"]))

    # -- forwarding by IMAP: one placement per message in the new INBOX --------------------
    async def _forward_imap(self, row: Any, arrival: Any) -> str:
        """Append the original into the new INBOX unless it is (being) placed there: by
        the migration, another forward, or this action's own earlier attempt."""
        original = await self.engine.run_blocking(self._fetch_original, arrival)
        identity = identity_of(original.raw)
        await self._store_identity(arrival, identity)
        placements = self.engine.placements
        ref = str(row["id"])
        for _ in range(3):
            new_id, holder = await placements.begin_one("INBOX", "forward", identity, ref)
            if holder is None:
                break
            what = await self._settle_holder(row, arrival, original, holder)
            if what is not None:
                return what
        else:
            raise _Later(BUSY_RETRY_SECONDS, "the new INBOX is being written; checking again shortly")
        assert new_id is not None
        appending = [False]
        try:
            # a copy placed before placements existed (or by another tool) counts too
            found, uidvalidity, uid = await self.engine.run_blocking(
                self._find_or_append, arrival["message_id"], original, appending)
        except BaseException as e:
            # refused, or cut before the APPEND went out: nothing was placed. Cut during
            # it: it may have landed; the row stays 'sending' and the next attempt looks
            # at the server first
            if isinstance(e, _Refused) or not appending[0]:
                await placements.drop([new_id])
            raise
        await placements.placed([(new_id, uidvalidity, uid)])
        if found:
            return f"already in the new INBOX (UID {uid})"
        what = f"copied into the new INBOX{f' (UID {uid})' if uid else ''}"
        await self._mark_delivered(row["id"], what)
        return what

    async def _settle_holder(self, row: Any, arrival: Any, original: Original,
                             holder: "Placement") -> str | None:
        """Someone holds this message's place in the new INBOX. Returns the outcome when
        the forward is done, None to try placing again (a dead attempt left nothing),
        raises _Later while the holder may still be writing."""
        placements = self.engine.placements
        own = holder.owner == "forward" and holder.ref == str(row["id"])
        if holder.state == "placed":
            uid = f" (UID {holder.uid})" if holder.uid else ""
            if own:
                return f"copied into the new INBOX{uid}"
            by = {"migrate": ", copied by the migration", "import": ", placed by an import",
                  "forward": f", forwarded by action {holder.ref}"}.get(holder.owner, "")
            return f"already in the new INBOX{uid}{by}"
        writing = (holder.pid != os.getpid() and pid_alive(holder.pid)) or (holder.mine and not own)
        if writing:
            who = "the migration is" if holder.owner == "migrate" else f"another {holder.owner} is"
            raise _Later(BUSY_RETRY_SECONDS, f"{who} placing this message in the new INBOX right now; "
                                             f"checking again shortly")
        # a dead process's append, or this action's own earlier one that was cut off
        if time.time() - holder.started < SETTLE_SECONDS:
            raise _Later(SETTLE_SECONDS, "an interrupted copy of this message may still be landing; "
                                         "checking again shortly")
        found = await self.engine.run_blocking(self._find_in_new_inbox, arrival["message_id"], original.raw)
        if found is not None:
            if holder.owner == "forward":
                await placements.placed([(holder.id, found[0], found[1])])
            if own or holder.owner == "forward":
                return f"copied into the new INBOX (UID {found[1]}, found after an interruption)"
            return f"already in the new INBOX (UID {found[1]}), copied by an interrupted migration"
        if holder.owner == "forward":
            await placements.drop([holder.id])     # that attempt left nothing: place it anew
            return None
        # another owner's dead append left nothing; its own next run checks its row:
        # record ours beside it and append
        (new_id,) = await placements.begin("INBOX", "forward", [(holder.identity, str(row["id"]))],
                                           yield_to=())
        assert new_id is not None
        try:
            uidvalidity, uid = await self.engine.run_blocking(self._append_new_inbox, original)
        except _Refused:
            await placements.drop([new_id])
            raise
        await placements.placed([(new_id, uidvalidity, uid)])
        what = f"copied into the new INBOX{f' (UID {uid})' if uid else ''}"
        await self._mark_delivered(row["id"], what)
        return what

    # -- the servers (blocking; run in threads) -------------------------------------------
    def _fetch_original(self, arrival: Any) -> Original:
        """The original bytes by (folder, uidvalidity, uid), else by Message-ID; PEEK, so
        the message stays unread."""
        acct = self.engine.account(arrival["side"])
        folder = arrival["folder"]
        client = imapmod.connect(acct)
        try:
            client.normalise_times = False
            info = client.select_folder(folder, readonly=True)
            uids: list[int] = []
            if info.get(b"UIDVALIDITY") == arrival["uidvalidity"]:
                uids = [arrival["uid"]]
            data = client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"]) if uids else {}
            hit = data.get(arrival["uid"]) if uids else None
            if (hit is None or b"BODY[]" not in hit) and arrival["message_id"]:
                found = client.search(["HEADER", "Message-ID", arrival["message_id"]])
                if found:
                    data = client.fetch([found[-1]], ["BODY.PEEK[]", "INTERNALDATE"])
                    hit = data.get(found[-1])
                    uids = [found[-1]]
            if hit is None or b"BODY[]" not in hit:
                raise SwitchoverError(
                    f"The message is no longer in the {arrival['side']} mailbox's {folder} "
                    f"(it was moved or deleted); nothing to forward.")
            return Original(raw=bytes(hit[b"BODY[]"]), internaldate=hit.get(b"INTERNALDATE"),
                            uid=uids[0])
        finally:
            imapmod.close(client)

    def _find_or_append(self, message_id: str | None, original: Original,
                        appending: list[bool]) -> tuple[bool, int | None, int | None]:
        """On one connection: (True, UIDVALIDITY, UID) of the message when the new INBOX
        holds it, else APPEND it: (False, UIDVALIDITY, UID). ``appending[0]`` turns True
        just before the APPEND is sent."""
        client = imapmod.connect(self.engine.account("new"))
        try:
            hit = self._search_new_inbox(client, message_id, original.raw)
            if hit is not None:
                return True, hit[0], hit[1]
            appending[0] = True
            uidvalidity, uid = self._append(client, "INBOX", original.raw, (), original.internaldate)
            return False, uidvalidity, uid
        finally:
            imapmod.close(client)

    def _find_in_new_inbox(self, message_id: str | None, raw: bytes | None,
                           header: tuple[str, str] | None = None) -> tuple[int, int] | None:
        """(UIDVALIDITY, UID) of the message in the new INBOX: by Message-ID (or another
        header), else by size and exact bytes for a message without one."""
        client = imapmod.connect(self.engine.account("new"))
        try:
            return self._search_new_inbox(client, message_id, raw, header)
        finally:
            imapmod.close(client)

    @staticmethod
    def _search_new_inbox(client: imapclient.IMAPClient, message_id: str | None, raw: bytes | None,
                          header: tuple[str, str] | None = None) -> tuple[int, int] | None:
        info = client.select_folder("INBOX", readonly=True)
        uidvalidity = int(info.get(b"UIDVALIDITY", 0) or 0)
        if header is not None:
            hits = client.search(["HEADER", header[0], header[1]])
            return (uidvalidity, hits[-1]) if hits else None
        if message_id:
            hits = client.search(["HEADER", "Message-ID", message_id])
            return (uidvalidity, hits[-1]) if hits else None
        if raw is None:
            return None
        hits = client.search(["LARGER", str(len(raw) - 1), "SMALLER", str(len(raw) + 1)])
        if hits:
            for uid, d in client.fetch(hits, ["BODY.PEEK[]"]).items():
                if bytes(d.get(b"BODY[]", b"")) == raw:
                    return uidvalidity, uid
        return None

    @staticmethod
    def append_exact(client: imapclient.IMAPClient, folder: str, raw: bytes,
                     flags: tuple[str, ...] = (), when: dt.datetime | None = None) -> int | None:
        """APPEND ``raw`` untouched (imapclient.append would rewrite bare CR / LF);
        returns the APPENDUID when the server tells it."""
        return Actions._append(client, folder, raw, flags, when)[1]

    @staticmethod
    def _append(client: imapclient.IMAPClient, folder: str, raw: bytes,
                flags: tuple[str, ...] = (), when: dt.datetime | None = None) -> tuple[int | None, int | None]:
        """APPEND ``raw`` untouched; (UIDVALIDITY, UID) from APPENDUID when told. A NO /
        BAD raises :class:`_Refused` (nothing was stored)."""
        args = [client._normalise_folder(folder),
                ("(" + " ".join(flags) + ")").encode()]
        if when is not None:
            args.append(b'"' + datetime_to_INTERNALDATE(when).encode() + b'"')
        args.append(_literal(raw))
        try:
            typ, data = client._raw_command(b"APPEND", args, uid=False)
        except imapclient.exceptions.IMAPClientError as e:
            if imapmod.is_connection_error(e):
                raise
            raise _Refused(f"The server refused to store the message in {folder}: {e}.") from None
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        if typ != "OK":
            raise _Refused(f"The server refused to store the message in {folder}: {text}.")
        m = re.search(r"APPENDUID (\d+) (\d+)", text, re.I)
        return (int(m.group(1)), int(m.group(2))) if m else (None, None)

    def _append_new_inbox(self, original: Original) -> tuple[int | None, int | None]:
        client = imapmod.connect(self.engine.account("new"))
        try:
            return self._append(client, "INBOX", original.raw, (), original.internaldate)
        finally:
            imapmod.close(client)

    @staticmethod
    def _sent_folder(client: imapclient.IMAPClient) -> str | None:
        folders = client.list_folders()
        for flags, _d, name in folders:
            if any(f in (b"\\Sent", "\\Sent") for f in flags):
                return name
        names = {name: name for _f, _d, name in folders}
        lower = {n.lower(): n for n in names}
        for cand in _SENT_NAMES:
            if cand.lower() in lower:
                return lower[cand.lower()]
        return None

    def _append_sent(self, raw: bytes) -> str | None:
        client = imapmod.connect(self.engine.account("old"))
        try:
            folder = self._sent_folder(client)
            if folder is None:
                return None
            self.append_exact(client, folder, raw, ("\\Seen",))
            return folder
        finally:
            imapmod.close(client)

    def _find_in_sent(self, message_id: str) -> bool:
        client = imapmod.connect(self.engine.account("old"))
        try:
            folder = self._sent_folder(client)
            if folder is None:
                return False
            client.select_folder(folder, readonly=True)
            return bool(client.search(["HEADER", "Message-ID", message_id]))
        finally:
            imapmod.close(client)

    # -- building the messages ------------------------------------------------------------
    def _forward_message(self, arrival: Any, original: bytes, message_id: str) -> bytes:
        """multipart/mixed: a short cover text + the original as message/rfc822. The
        boundary comes from the Message-ID, so a preview and the send are the same bytes
        but for the Date."""
        ident = self.engine.config.identity
        boundary = "=_switchover_" + hashlib.sha256(message_id.encode()).hexdigest()[:32]
        subject = arrival["subject"] or ""
        cover = (f"Forwarded by switchover from your old address {ident.old_address}.\n\n"
                 f"From:    {arrival['sender_name'] or ''} <{arrival['sender'] or ''}>\n"
                 f"Date:    {arrival['date'] or ''}\n"
                 f"Subject: {subject}\n\n"
                 f"The original message is attached unchanged.\n")
        b64 = base64.encodebytes(cover.encode("utf-8")).replace(b"\n", b"\r\n")
        inner = _crlf(original)
        if not inner.endswith(b"\r\n"):
            inner += b"\r\n"
        eightbit = any(b > 127 for b in inner)
        heads = [
            "From: " + email.utils.formataddr((ident.name, ident.new_address), charset="utf-8"),
            "To: " + ident.new_address,
            "Subject: " + Header("Fwd: " + subject, "utf-8").encode(),
            "Date: " + email.utils.formatdate(localtime=True),
            "Message-ID: " + message_id,
            f"X-Switchover-Arrival: {arrival['id']}",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/mixed; boundary="{boundary}"',
        ]
        if arrival["message_id"]:
            heads.append("References: " + arrival["message_id"])
        parts = [
            "\r\n".join(heads).encode() + b"\r\n\r\n",
            f"--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n".encode(), b64,
            f"--{boundary}\r\nContent-Type: message/rfc822\r\n"
            f"Content-Disposition: attachment; filename=\"original.eml\"\r\n"
            f"Content-Transfer-Encoding: {'8bit' if eightbit else '7bit'}\r\n\r\n".encode(),
            inner, f"--{boundary}--\r\n".encode(),
        ]
        return b"".join(parts)

    async def reminder_language(self, arrival: Any, recipient: str | None = None) -> str:
        """The sender's language (what they wrote in this message, else what the history
        says they write) when a reminder text exists for it, else English — never the
        user's own language."""
        corr = await self.engine.store.fetchone(
            "SELECT language FROM correspondents WHERE address=?",
            ((recipient or arrival["sender"] or "").lower(),))
        return sender_language(arrival["language"], corr["language"] if corr else None)

    async def _reminder(self, arrival: Any, recipient: str, message_id: str | None,
                        auto: bool) -> tuple[Any, bytes]:
        cfg = self.engine.config
        ident = cfg.identity
        lang = await self.reminder_language(arrival, recipient)
        name, _ = self._reply_address(arrival)
        text = reminder(lang, ident, close_date=cfg.transition.close_date, sender_name=name,
                        original_subject=arrival["subject"])
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = email.utils.formataddr((ident.name, ident.old_address))
        msg["To"] = email.utils.formataddr((name, recipient)) if name else recipient
        msg["Subject"] = text.subject
        msg["Date"] = email.utils.format_datetime(dt.datetime.now().astimezone())
        msg["Message-ID"] = message_id or new_message_id(ident.old_address)
        orig = (arrival["message_id"] or "").strip()
        if orig:
            headers = parse_headers(arrival["headers"] or "")
            refs = " ".join((header_text(headers, "References") or "").split()[-10:])
            msg["In-Reply-To"] = orig
            msg["References"] = f"{refs} {orig}".strip() if orig not in refs else refs
        if auto:
            msg["Auto-Submitted"] = "auto-replied"
            msg["X-Auto-Response-Suppress"] = "All"
        msg["Content-Language"] = text.language
        cte = "base64" if text.language == "zh" else "quoted-printable"
        msg.set_content(text.body, charset="utf-8", cte=cte)
        return text, msg.as_bytes(policy=email.policy.SMTP)

    # -- after a crash ----------------------------------------------------------------------
    async def reconcile(self, older_than: float = 0.0) -> None:
        """Settle actions left 'running' by a process that died, and look again at doubts
        that can be checked. Never sends by itself:

        * delivered marker → done;
        * 'sending' marker (died inside the in-doubt window) → done if the server shows
          the message, else doubt;
        * neither: nothing left by SMTP; done if the server shows it (an IMAP append, or a
          row of an older switchover), else pending again.
        """
        now = time.time()
        rows = await self.engine.store.fetchall("SELECT * FROM actions WHERE state='running'")
        for r in rows:
            if r["id"] in self._inflight or (r["started"] or 0) > now - older_than:
                continue
            pid = _pid_of(r["outcome"])
            if pid is not None and pid != os.getpid() and pid_alive(pid):
                continue   # another live process (dashboard / watch) is carrying it out
            outcome = r["outcome"] or ""
            if DELIVERED in outcome:
                await self._settle_done(r, outcome.split(DELIVERED, 1)[1] + " (confirmed after a restart)",
                                        from_states=("running",))
                continue
            if SENDING in outcome:
                found = await self._check_quietly(r, self._check_doubt)
                if found:
                    await self._settle_done(r, found + " (found after a restart)", from_states=("running",))
                else:
                    await self._to_doubt(r, "The process sending it stopped before the server answered; "
                                            "it may or may not have been delivered.")
                continue
            found = await self._check_quietly(r, self._check_server)
            if found is False:
                continue
            if found:
                await self._settle_done(r, found + " (found after a restart)", from_states=("running",))
            else:
                cur = await self.engine.store.run(
                    "UPDATE actions SET state='pending', not_before=?, outcome=? WHERE id=? AND state='running'",
                    (now, "interrupted before anything was sent; trying again", r["id"]))
                if cur.rowcount == 1:
                    self.engine.publish(ActionChanged(r["id"], r["arrival_id"], r["kind"], "pending",
                                                      "interrupted; trying again"))
        await self._recheck_doubts()
        self._poke()

    async def _check_quietly(self, r: Any, check: Callable[[Any], Awaitable[str | None]]) -> str | None | bool:
        """A check's answer, or False when it could not run (logged; the row waits)."""
        try:
            return await check(r)
        except Exception as e:
            if is_database_error(e):
                raise
            self.engine.publish(LogLine("warning", f"Could not check action {r['id']} "
                                                   f"after a restart: {_sentence(e)}"))
            return False

    async def _recheck_doubts(self) -> None:
        now = time.time()
        rows = await self.engine.store.fetchall(
            "SELECT * FROM actions WHERE state='doubt' AND requested>?", (now - DOUBT_RECHECK_DAYS * 86400,))
        for r in rows:
            if now - self._doubt_checked.get(r["id"], 0.0) < DOUBT_RECHECK_SECONDS:
                continue
            self._doubt_checked[r["id"]] = now
            if not self._doubt_checkable(r):
                continue
            found = await self._check_quietly(r, self._check_doubt)
            if found:
                await self._settle_done(r, f"{found} (the doubt is settled)", from_states=("doubt",))

    def _doubt_checkable(self, r: Any) -> bool:
        if r["kind"] == "forward":
            return bool(r["sent_message_id"])
        return r["kind"] == "remind" and self.engine.account("old").provider in _SAVES_SENT

    async def _check_doubt(self, r: Any) -> str | None:
        """Proof that a send in doubt was delivered, where the servers can give one."""
        if not self._doubt_checkable(r) or not r["sent_message_id"]:
            return None
        if r["kind"] == "forward":
            hit = await self.engine.run_blocking(self._find_in_new_inbox, r["sent_message_id"], None)
            return f"in the new INBOX (UID {hit[1]})" if hit else None
        if await self.engine.run_blocking(self._find_in_sent, r["sent_message_id"]):
            return f"the old account's SMTP filed the reminder to {r['recipient']} in Sent: it was taken"
        return None

    async def _check_server(self, r: Any) -> str | None:
        if r["kind"] == "handled":
            return None
        arrival = await self._arrival(r["arrival_id"])
        if r["kind"] == "forward":
            if self.engine.config.transition.forward_method == "smtp" or r["sent_message_id"]:
                hit = None
                if r["sent_message_id"]:
                    hit = await self.engine.run_blocking(self._find_in_new_inbox, r["sent_message_id"], None)
                if hit is None:   # forwards of older versions carried the action's id
                    hit = await self.engine.run_blocking(self._find_in_new_inbox, None, None,
                                                         ("X-Switchover-Action", str(r["id"])))
                return f"in the new INBOX (UID {hit[1]})" if hit else None
            raw = None
            if not arrival["message_id"]:
                raw = (await self.engine.run_blocking(self._fetch_original, arrival)).raw
            hit = await self.engine.run_blocking(self._find_in_new_inbox, arrival["message_id"], raw)
            if hit is None:
                return None
            await self._settle_own_placement(r, arrival, hit)
            return f"in the new INBOX (UID {hit[1]})"
        if r["sent_message_id"] and await self.engine.run_blocking(self._find_in_sent, r["sent_message_id"]):
            return f"reminder to {r['recipient']} is in the old Sent folder"
        return None

    async def _settle_own_placement(self, r: Any, arrival: Any, hit: tuple[int, int]) -> None:
        if not arrival["identity"]:
            return
        for p in await self.engine.placements.live_for("INBOX", arrival["identity"]):
            if p.owner == "forward" and p.ref == str(r["id"]) and p.state == "sending":
                await self.engine.placements.placed([(p.id, hit[0], hit[1])])

    # -- automatic rules --------------------------------------------------------------------
    async def remind_allowed(self, arrival_id: int) -> tuple[bool, str]:
        """May an automatic reminder answer this arrival? (False, reason) otherwise."""
        arrival = await self._arrival(arrival_id)
        if arrival["side"] != "old":
            return False, "not an arrival in the old mailbox"
        if arrival["badge"] in ("spam", "bounce"):
            return False, f"marked {arrival['badge']}"
        msg = parse_headers(arrival["headers"] or "")
        ok, why = rfc3834_allows_reply(msg, own_addresses_of(self.engine))
        if not ok:
            return False, why
        _, recipient = self._reply_address(arrival)
        if recipient in own_addresses_of(self.engine):
            return False, "the reply would go to one of our own addresses"
        corr = await self.engine.store.fetchone(
            "SELECT automated, messages_to, switched, last_reminded FROM correspondents WHERE address=?",
            (recipient,))
        days = self.engine.config.transition.remind_every_days
        since = time.time() - days * 86400
        if corr is not None:
            if corr["automated"] and not corr["messages_to"]:   # same rule as the badge
                return False, "an automated sender"
            if corr["switched"] is not None:
                return False, "already writes to the new address"
            if corr["last_reminded"] and corr["last_reminded"] > since:
                return False, f"reminded less than {days} days ago"
        recent = await self.engine.store.fetchone(
            f"SELECT 1 FROM actions WHERE kind='remind' AND recipient=? AND state IN {_LIVE_SQL} "
            f"AND requested>?", (recipient, since))
        if recent is not None:
            return False, f"reminded less than {days} days ago"
        return True, ""

    async def on_arrival(self, arrival_id: int) -> None:
        """Apply config.transition.auto_forward / auto_remind to a new arrival."""
        t = self.engine.config.transition
        if not (t.auto_forward or t.auto_remind):
            return
        # two mails from one sender, seen by two tasks or two processes at once, must not
        # both pass the once-per-N-days check: the check and the insert share one write
        # transaction (BEGIN IMMEDIATE serializes processes, the store's lock tasks)
        async with self.engine.store.transaction():
            arrival = await self._arrival(arrival_id)
            if arrival["side"] != "old":
                return
            if t.auto_forward:
                msg = parse_headers(arrival["headers"] or "")
                automated = is_automated(msg)[0]
                if arrival["badge"] not in ("spam", "bounce", "automated") and not automated:
                    await self.request(arrival_id, "forward", delay=0, auto=True)
            if t.auto_remind:
                ok, why = await self.remind_allowed(arrival_id)
                if ok:
                    await self.request(arrival_id, "remind", delay=0, auto=True)
                else:
                    self.engine.publish(LogLine("info", f"No automatic reminder to "
                                                        f"{arrival['sender']}: {why}."))

    # -- background runner ------------------------------------------------------------------
    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._wake = asyncio.Event()
        self._last_reconcile = time.time()
        try:
            await self.reconcile()
        except Exception as e:
            self.engine.publish(LogLine("warning", f"Checking interrupted actions failed: {_sentence(e)}"))
        self._task = asyncio.create_task(self._loop(), name="switchover-actions")
        self._task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        """Every background task's end is looked at: an exception is logged once (never
        'Task exception was never retrieved')."""
        self._workers.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.engine.publish(LogLine("error", f"Action runner ({task.get_name()}): {_sentence(exc)}"))

    async def _loop(self) -> None:
        assert self._wake is not None
        failing = False
        while True:
            try:
                if self._unsettled:
                    await self._retry_unsettled()
                for row in await self._claim_due(SLOTS - len(self._workers)):
                    task = asyncio.create_task(self._execute(row), name=f"switchover-action-{row['id']}")
                    self._workers.add(task)
                    task.add_done_callback(self._task_done)
                if time.time() - self._last_reconcile > 60:
                    self._last_reconcile = time.time()
                    await self.reconcile(older_than=300)
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a database hiccup must not stop the runner; said once
                if not failing:
                    self.engine.publish(LogLine("error", f"Action runner: {_sentence(e)}"))
                failing = True
            try:
                await asyncio.wait_for(self._wake.wait(), 1.0 if failing else 0.25)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._workers:
            # let sends in flight finish (they are short); what is cut stays 'running'
            # with its phase noted, and reconcile settles it on the next start
            await asyncio.wait(list(self._workers), timeout=15)
        if self._unsettled:
            await self._retry_unsettled()


class _Refused(SwitchoverError):
    """The server answered NO / BAD to an APPEND: nothing was stored."""
