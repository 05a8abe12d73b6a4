"""What the user (or an automatic rule) does with an arrival in the old mailbox: forward
it to the new address, remind its sender of the new address, or mark it handled.

Every action is a row in ``actions`` written *before* anything is sent or appended and
marked after, so a double key press, a retry or a crash never sends twice:

* ``request`` inserts the row (state ``pending``, ``not_before`` = now + the undo window)
  in one statement that refuses a second live row for the same arrival and kind;
* a runner claims a due row with ``UPDATE ... WHERE state='pending'`` (only one process
  wins), carries it out, and as soon as the server has taken the mail writes a
  ``delivered`` marker, then ``done`` with the server's words (or ``failed``);
* ``reconcile`` looks at rows left ``running`` by a dead process and asks the server
  whether the mail got there before trying again.

Arrival state: a ``handled`` action marks the arrival handled; so does the pair
forward + remind once both are done (either alone leaves it for the person to decide).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.policy
import email.utils
import os
import re
import time
import uuid
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import imapclient
from imapclient.imapclient import _literal
from imapclient.datetime_util import datetime_to_INTERNALDATE

from . import imap as imapmod
from . import smtp as smtpmod
from .classify import (addresses, header_text, is_automated, own_addresses_of, parse_headers,
                       rfc3834_allows_reply)
from .errors import SwitchoverError
from .events import ActionChanged, LogLine
from .templates import pick_language, reminder

if TYPE_CHECKING:
    from .engine import Engine

KINDS = ("forward", "remind", "handled")
LIVE = ("pending", "running", "done")
#: written into ``outcome`` while running, once a server has taken the mail
DELIVERED = "delivered: "
#: temporary failures (network, 4xx, throttling) are retried by themselves this often
AUTO_ATTEMPTS = 3
#: providers whose SMTP files a copy in Sent by itself
_SAVES_SENT = {"gmail", "outlook"}
_SENT_NAMES = ("Sent", "Sent Messages", "Sent Items", "Sent Mail", "已发送", "已发送邮件",
               "INBOX.Sent", "INBOX/Sent", "[Gmail]/Sent Mail", "Отправленные", "Enviados")


@dataclass(frozen=True)
class ActionRow:
    id: int
    arrival_id: int | None
    kind: str
    state: str
    requested: float
    not_before: float
    done: float | None
    recipient: str | None
    outcome: str | None
    attempts: int
    auto: bool


@dataclass(frozen=True)
class Original:
    raw: bytes
    internaldate: dt.datetime | None
    uid: int


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


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1] if "@" in address else "switchover.invalid"


def new_message_id(address: str) -> str:
    return f"<{uuid.uuid4().hex}.switchover@{_domain(address)}>"


def _crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r\n|\r|\n", b"\r\n", raw)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Actions:
    """The ``engine.actions`` facet."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._inflight: set[int] = set()
        self._workers: set[asyncio.Task] = set()
        self._rules_lock = asyncio.Lock()
        self._sem = asyncio.Semaphore(4)
        self._last_reconcile = 0.0

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

    # -- requesting ---------------------------------------------------------------------
    def _reply_address(self, arrival: Any) -> tuple[str, str]:
        """(name, address) a reminder goes to: Reply-To, else the sender."""
        msg = parse_headers(arrival["headers"] or "")
        reply_to = addresses(msg, "Reply-To")
        if reply_to:
            name, addr = reply_to[0]
            return name or (arrival["sender_name"] or ""), addr
        return arrival["sender_name"] or "", (arrival["sender"] or "").lower()

    async def request(self, arrival_id: int, kind: str, *, delay: float | None = None,
                      auto: bool = False) -> int:
        """Record an action (pending until now + delay) and return its id; a live one for
        the same arrival and kind is returned instead of a second."""
        if kind not in KINDS:
            raise SwitchoverError(f"Unknown action '{kind}' (use forward, remind or handled).")
        arrival = await self._arrival(arrival_id)
        cfg = self.engine.config
        wait = cfg.transition.undo_seconds if delay is None else max(0.0, float(delay))
        recipient, mid = None, None
        if kind == "forward":
            recipient = cfg.identity.new_address
            if cfg.transition.forward_method == "smtp":
                mid = new_message_id(cfg.identity.new_address)
        elif kind == "remind":
            recipient = self._reply_address(arrival)[1]
            if not recipient or "@" not in recipient:
                raise SwitchoverError(f"Arrival {arrival_id} has no sender address to remind.")
            mid = new_message_id(cfg.identity.old_address)
        now = time.time()
        action_id, new = await self._insert_live(arrival_id, kind, now + wait, recipient, mid, int(auto))
        if new:
            self.engine.publish(ActionChanged(action_id, arrival_id, kind, "pending",
                                              f"in {wait:.0f} s" if wait else ""))
            self._poke()
        return action_id

    async def _insert_live(self, arrival_id: int, kind: str, not_before: float,
                           recipient: str | None, mid: str | None, auto: int) -> tuple[int, bool]:
        """Insert a pending action unless one for this arrival and kind is already live
        (pending, running or done); returns (id of the live action, whether it is new).
        One statement: SQLite serializes writers, so two presses (or two processes)
        cannot both insert a live row."""
        cur = await self.engine.store.run(
            "INSERT INTO actions (arrival_id, kind, state, requested, not_before, recipient, "
            "sent_message_id, auto) SELECT ?, ?, 'pending', ?, ?, ?, ?, ? WHERE NOT EXISTS "
            "(SELECT 1 FROM actions WHERE arrival_id=? AND kind=? AND state IN "
            "('pending', 'running', 'done'))",
            (arrival_id, kind, time.time(), not_before, recipient, mid, auto, arrival_id, kind))
        if cur.rowcount == 1:
            return int(cur.lastrowid), True
        row = await self.engine.store.fetchone(
            "SELECT id FROM actions WHERE arrival_id=? AND kind=? AND state IN "
            "('pending', 'running', 'done') ORDER BY id DESC LIMIT 1", (arrival_id, kind))
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

    # -- running ------------------------------------------------------------------------
    async def _claim_due(self) -> list[Any]:
        now = time.time()
        rows = await self.engine.store.fetchall(
            "SELECT * FROM actions WHERE state='pending' AND not_before<=? ORDER BY not_before, id",
            (now,))
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
        rows = await self._claim_due()
        if rows:
            await asyncio.gather(*(self._execute(r) for r in rows))
        return len(rows)

    async def _execute(self, row: Any) -> None:
        aid, kind, arrival_id = row["id"], row["kind"], row["arrival_id"]
        self.engine.publish(ActionChanged(aid, arrival_id, kind, "running"))
        try:
            async with self._sem:
                outcome = await self._carry_out(row)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await self._failed(row, e)
        else:
            await self._done(row, outcome)
        finally:
            self._inflight.discard(aid)

    async def _done(self, row: Any, outcome: str) -> None:
        now = time.time()
        await self.engine.store.execute(
            "UPDATE actions SET state='done', done=?, outcome=? WHERE id=?", (now, outcome, row["id"]))
        if row["kind"] == "remind" and row["recipient"]:
            await self.engine.store.execute(
                "INSERT INTO correspondents (address, last_reminded) VALUES (?, ?) "
                "ON CONFLICT(address) DO UPDATE SET last_reminded=excluded.last_reminded",
                (row["recipient"].lower(), now))
        if row["arrival_id"] is not None:
            await self._maybe_handled(row["arrival_id"], row["kind"])
        self.engine.publish(ActionChanged(row["id"], row["arrival_id"], row["kind"], "done", outcome))

    async def _maybe_handled(self, arrival_id: int, kind: str) -> None:
        if kind != "handled":
            done = {r["kind"] for r in await self.engine.store.fetchall(
                "SELECT kind FROM actions WHERE arrival_id=? AND state='done'", (arrival_id,))}
            if not {"forward", "remind"} <= done:
                return
        await self.engine.store.execute("UPDATE arrivals SET state='handled' WHERE id=?", (arrival_id,))

    async def _failed(self, row: Any, exc: BaseException) -> None:
        words = _sentence(exc)
        attempts = (await self._action(row["id"]))["attempts"]
        if smtpmod.is_temporary(exc) and attempts < AUTO_ATTEMPTS:
            wait = getattr(exc, "retry_after", None) or 30.0 * 2 ** (attempts - 1)
            await self.engine.store.execute(
                "UPDATE actions SET state='pending', not_before=?, outcome=? WHERE id=?",
                (time.time() + wait, f"will try again in {wait:.0f} s: {words}", row["id"]))
            self.engine.publish(ActionChanged(row["id"], row["arrival_id"], row["kind"], "pending",
                                              f"will try again in {wait:.0f} s: {words}"))
            return
        await self.engine.store.execute(
            "UPDATE actions SET state='failed', done=?, outcome=? WHERE id=?",
            (time.time(), words, row["id"]))
        self.engine.publish(ActionChanged(row["id"], row["arrival_id"], row["kind"], "failed", words))
        self.engine.publish(LogLine("error", f"{row['kind']} of arrival {row['arrival_id']} failed: {words}"))

    async def _mark_delivered(self, action_id: int, what: str) -> None:
        await self.engine.store.execute("UPDATE actions SET outcome=? WHERE id=?",
                                        (f"pid {os.getpid()}; {DELIVERED}{what}", action_id))

    async def _carry_out(self, row: Any) -> str:
        kind = row["kind"]
        if kind == "handled":
            return "marked handled"
        arrival = await self._arrival(row["arrival_id"])
        if kind == "forward":
            original = await self.engine.run_blocking(self._fetch_original, arrival)
            if self.engine.config.transition.forward_method == "smtp":
                raw = self._forward_message(arrival, original.raw, row)
                acct = self.engine.account("new")
                await self.engine.run_blocking(smtpmod.send, acct, self.engine.config.identity.new_address,
                                               [row["recipient"]], raw)
                what = f"sent to {row['recipient']} as an attachment through the new account's SMTP"
                await self._mark_delivered(row["id"], what)
                return what
            found = await self.engine.run_blocking(self._find_in_new_inbox, arrival["message_id"], original.raw)
            if found is not None:
                return f"already in the new INBOX (UID {found})"
            uid = await self.engine.run_blocking(self._append_new_inbox, original)
            what = f"copied into the new INBOX{f' (UID {uid})' if uid else ''}"
            await self._mark_delivered(row["id"], what)
            return what
        # remind
        raw = await self._reminder_message(arrival, row)
        acct = self.engine.account("old")
        await self.engine.run_blocking(smtpmod.send, acct, self.engine.config.identity.old_address,
                                       [row["recipient"]], raw)
        await self._mark_delivered(row["id"], "sent")
        note = ""
        if acct.provider not in _SAVES_SENT:
            try:
                folder = await self.engine.run_blocking(self._append_sent, raw)
                note = f"; a copy is in {folder}" if folder else ""
            except Exception as e:  # the reminder went out; a missing copy is only noted
                note = f"; no copy in Sent ({_sentence(e)})"
        return f"reminder sent to {row['recipient']}{note}"

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

    def _find_in_new_inbox(self, message_id: str | None, raw: bytes | None,
                           header: tuple[str, str] | None = None) -> int | None:
        """UID of the message in the new INBOX: by Message-ID (or another header), else
        by size and exact bytes for a message without one."""
        client = imapmod.connect(self.engine.account("new"))
        try:
            client.select_folder("INBOX", readonly=True)
            if header is not None:
                hits = client.search(["HEADER", header[0], header[1]])
                return hits[-1] if hits else None
            if message_id:
                hits = client.search(["HEADER", "Message-ID", message_id])
                return hits[-1] if hits else None
            if raw is None:
                return None
            hits = client.search(["LARGER", str(len(raw) - 1), "SMALLER", str(len(raw) + 1)])
            if hits:
                for uid, d in client.fetch(hits, ["BODY.PEEK[]"]).items():
                    if bytes(d.get(b"BODY[]", b"")) == raw:
                        return uid
            return None
        finally:
            imapmod.close(client)

    @staticmethod
    def append_exact(client: imapclient.IMAPClient, folder: str, raw: bytes,
                     flags: tuple[str, ...] = (), when: dt.datetime | None = None) -> int | None:
        """APPEND ``raw`` untouched (imapclient.append would rewrite bare CR / LF);
        returns the APPENDUID when the server tells it."""
        args = [client._normalise_folder(folder),
                ("(" + " ".join(flags) + ")").encode()]
        if when is not None:
            args.append(b'"' + datetime_to_INTERNALDATE(when).encode() + b'"')
        args.append(_literal(raw))
        typ, data = client._raw_command(b"APPEND", args, uid=False)
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        if typ != "OK":
            raise SwitchoverError(f"The server refused to store the message in {folder}: {text}.")
        m = re.search(r"APPENDUID \d+ (\d+)", text, re.I)
        return int(m.group(1)) if m else None

    def _append_new_inbox(self, original: Original) -> int | None:
        client = imapmod.connect(self.engine.account("new"))
        try:
            return self.append_exact(client, "INBOX", original.raw, (), original.internaldate)
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
    def _forward_message(self, arrival: Any, original: bytes, row: Any) -> bytes:
        """multipart/mixed: a short cover text + the original as message/rfc822."""
        ident = self.engine.config.identity
        boundary = "=_switchover_" + uuid.uuid4().hex
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
            "Message-ID: " + (row["sent_message_id"] or new_message_id(ident.new_address)),
            f"X-Switchover-Action: {row['id']}",
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

    async def _reminder_message(self, arrival: Any, row: Any) -> bytes:
        cfg = self.engine.config
        ident = cfg.identity
        corr = await self.engine.store.fetchone(
            "SELECT language FROM correspondents WHERE address=?", ((row["recipient"] or "").lower(),))
        lang = pick_language(corr["language"] if corr else None, arrival["language"], ident.language)
        name, _ = self._reply_address(arrival)
        text = reminder(lang, ident, close_date=cfg.transition.close_date, sender_name=name,
                        original_subject=arrival["subject"])
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = email.utils.formataddr((ident.name, ident.old_address))
        msg["To"] = email.utils.formataddr((name, row["recipient"])) if name else row["recipient"]
        msg["Subject"] = text.subject
        msg["Date"] = email.utils.format_datetime(dt.datetime.now().astimezone())
        msg["Message-ID"] = row["sent_message_id"] or new_message_id(ident.old_address)
        orig = (arrival["message_id"] or "").strip()
        if orig:
            headers = parse_headers(arrival["headers"] or "")
            refs = " ".join((header_text(headers, "References") or "").split()[-10:])
            msg["In-Reply-To"] = orig
            msg["References"] = f"{refs} {orig}".strip() if orig not in refs else refs
        if row["auto"]:
            msg["Auto-Submitted"] = "auto-replied"
            msg["X-Auto-Response-Suppress"] = "All"
        msg["Content-Language"] = lang
        cte = "base64" if lang == "zh" else "quoted-printable"
        msg.set_content(text.body, charset="utf-8", cte=cte)
        return msg.as_bytes(policy=email.policy.SMTP)

    # -- after a crash ----------------------------------------------------------------------
    async def reconcile(self, older_than: float = 0.0) -> None:
        """Settle actions left 'running' by a process that died: ask the server whether
        the mail got there; done if so, else back to pending. Never sends by itself."""
        now = time.time()
        rows = await self.engine.store.fetchall("SELECT * FROM actions WHERE state='running'")
        for r in rows:
            if r["id"] in self._inflight or (r["started"] or 0) > now - older_than:
                continue
            m = re.match(r"pid (\d+)", r["outcome"] or "")
            if m and int(m.group(1)) != os.getpid() and _pid_alive(int(m.group(1))):
                continue   # another live process (dashboard / watch) is carrying it out
            outcome = r["outcome"] or ""
            if DELIVERED in outcome:
                await self._done(r, outcome.split(DELIVERED, 1)[1] + " (confirmed after a restart)")
                continue
            try:
                found = await self._check_server(r)
            except Exception as e:
                self.engine.publish(LogLine("warning", f"Could not check action {r['id']} "
                                                       f"after a restart: {_sentence(e)}"))
                continue
            if found:
                await self._done(r, found + " (found after a restart)")
            else:
                await self.engine.store.execute(
                    "UPDATE actions SET state='pending', not_before=?, outcome=? WHERE id=? AND state='running'",
                    (now, "interrupted; not found on the server, trying again", r["id"]))
                self.engine.publish(ActionChanged(r["id"], r["arrival_id"], r["kind"], "pending",
                                                  "interrupted; trying again"))
        self._poke()

    async def _check_server(self, r: Any) -> str | None:
        if r["kind"] == "handled":
            return None
        arrival = await self._arrival(r["arrival_id"])
        if r["kind"] == "forward":
            if self.engine.config.transition.forward_method == "smtp" or r["sent_message_id"]:
                uid = await self.engine.run_blocking(self._find_in_new_inbox, None, None,
                                                     ("X-Switchover-Action", str(r["id"])))
                if uid is None and r["sent_message_id"]:
                    uid = await self.engine.run_blocking(self._find_in_new_inbox, r["sent_message_id"], None)
                return f"in the new INBOX (UID {uid})" if uid else None
            raw = None
            if not arrival["message_id"]:
                raw = (await self.engine.run_blocking(self._fetch_original, arrival)).raw
            uid = await self.engine.run_blocking(self._find_in_new_inbox, arrival["message_id"], raw)
            return f"in the new INBOX (UID {uid})" if uid else None
        if r["sent_message_id"] and await self.engine.run_blocking(self._find_in_sent, r["sent_message_id"]):
            return f"reminder to {r['recipient']} is in the old Sent folder"
        return None

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
            "SELECT 1 FROM actions WHERE kind='remind' AND recipient=? AND state IN "
            "('pending', 'running', 'done') AND requested>?", (recipient, since))
        if recent is not None:
            return False, f"reminded less than {days} days ago"
        return True, ""

    async def on_arrival(self, arrival_id: int) -> None:
        """Apply config.transition.auto_forward / auto_remind to a new arrival."""
        t = self.engine.config.transition
        if not (t.auto_forward or t.auto_remind):
            return
        async with self._rules_lock:   # two mails from one sender must not both pass the once-per-N-days check
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

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            try:
                for row in await self._claim_due():
                    task = asyncio.create_task(self._execute(row))
                    self._workers.add(task)
                    task.add_done_callback(self._workers.discard)
                if time.time() - self._last_reconcile > 60:
                    self._last_reconcile = time.time()
                    await self.reconcile(older_than=300)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a database hiccup must not stop the runner
                self.engine.publish(LogLine("error", f"Action runner: {_sentence(e)}"))
            try:
                await asyncio.wait_for(self._wake.wait(), 0.25)
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
            # and reconcile settles it on the next start
            await asyncio.wait(list(self._workers), timeout=15)
