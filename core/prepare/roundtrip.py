"""The round trip: one test message from the new account to itself, one from the new
to the old address and one from the old to the new; each is waited for in the receiving
mailbox (IMAP search by its Message-ID, INBOX and Junk), timed, and deleted there
afterwards — only these test messages, never anything else.

Exactly once (the project's rule for anything that sends): every test message is a row
of ``preflight_sends`` (this module owns the table) written in state ``sending`` before
the SMTP transaction and settled after (sent / doubt / failed, then arrived / missing).
A row a dead process left in ``sending`` becomes ``doubt`` and is never sent again; a
later run looks for it (and for any earlier test message that arrived late) and deletes
it where it landed. Two runs at once are refused by the caller's job lock.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

import imapclient
from imapclient.exceptions import IMAPClientError

from ..config import Account, Config
from ..context import Accounts, Blocking
from ..errors import SwitchoverError, sentence
from ..net import imap, smtp
from ..net.mailboxes import list_folders
from ..store import Store
from .records import FAIL, NOT_RUN, OK, WARN, Finding

SECTION = "Round trip"
SUBJECT = "switchover test message — you can delete it"
#: (leg, from side, to side)
LEGS = (("new-new", "new", "new"), ("new-old", "new", "old"), ("old-new", "old", "new"))
ARROW = {"new-new": "new → new", "new-old": "new → old", "old-new": "old → new"}


@dataclass
class Leg:
    key: str
    from_side: str
    to_side: str
    to_address: str
    message_id: str = ""
    row: int = 0
    state: str = ""             # sending | sent | doubt | failed | arrived | missing
    sent_at: float = 0.0
    seconds: float | None = None
    folder: str = ""
    outcome: str = ""


@dataclass
class Found:
    """What a waiter saw in one mailbox: Message-ID → (folder, seconds after sending)."""
    arrived: dict[str, tuple[str, float]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    error: str = ""


def build_message(config: Config, leg: Leg, run: str) -> bytes:
    frm = config.identity.old_address if leg.from_side == "old" else config.identity.new_address
    m = EmailMessage()
    m["From"] = formataddr((config.identity.name, frm))
    m["To"] = leg.to_address
    m["Subject"] = SUBJECT
    m["Date"] = formatdate(localtime=True)
    m["Message-ID"] = leg.message_id
    m["Auto-Submitted"] = "auto-generated"          # no auto-reply answers it (RFC 3834)
    m["X-Switchover-Test"] = f"{run}/{leg.key}"
    m.set_content(
        f"This message was sent by switchover ({ARROW[leg.key]}) to test that mail between your "
        f"old and new address is delivered.\n\nYou can delete it; switchover deletes it itself "
        f"once it has arrived.\n")
    return m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _folders(client: imapclient.IMAPClient) -> list[str]:
    try:
        junk = [f.name for f in list_folders(client) if f.special == "\\Junk" and f.selectable]
    except (IMAPClientError, SwitchoverError, OSError):
        junk = []
    return ["INBOX"] + junk[:1]


def _search(client: imapclient.IMAPClient, folder: str, mids: list[str]) -> dict[str, int]:
    client.select_folder(folder)
    hits: dict[str, int] = {}
    for mid in mids:
        uids = client.search(["HEADER", "Message-ID", mid])
        if uids:
            hits[mid] = max(uids)
    return hits


def _delete(client: imapclient.IMAPClient, uids: list[int]) -> bool:
    """Only these UIDs: UID EXPUNGE (UIDPLUS); without it they stay flagged \\Deleted
    (a plain EXPUNGE would also remove what the person marked deleted)."""
    client.add_flags(uids, [imapclient.DELETED])
    if client.has_capability("UIDPLUS"):
        client.expunge(uids)
        return True
    return False


def wait_for(account: Account, sent: dict[str, float], stale: list[str], deadline: float,
             poll: float = 0.5) -> Found:
    """Blocking: search ``account``'s INBOX (and Junk) until every Message-ID of ``sent``
    (→ time it was sent) is there or ``deadline`` passes; then delete what was found,
    plus any earlier test message (``stale``) that turned up late."""
    out = Found()
    try:
        client = imap.connect(account, timeout=30)
    except SwitchoverError as e:
        out.error = e.message
        return out
    try:
        folders = _folders(client)
        where: dict[str, dict[str, int]] = {f: {} for f in folders}
        pending = set(sent)
        while True:
            for folder in folders:
                if not pending:
                    break
                hits = _search(client, folder, sorted(pending))
                now = time.time()
                for mid, uid in hits.items():
                    out.arrived[mid] = (folder, max(0.0, now - sent[mid]))
                    where[folder][mid] = uid
                pending -= set(hits)
            if not pending or time.time() >= deadline:
                break
            time.sleep(poll)
        for folder in folders:
            extra = _search(client, folder, stale) if stale else {}
            found = {**where[folder], **extra}
            if found and _delete(client, sorted(set(found.values()))):
                out.deleted |= set(found)
    except (IMAPClientError, OSError) as e:
        out.error = sentence(e)
    finally:
        imap.close(client)
    return out


class RoundTrip:
    """Sends the test messages (recorded first), waits for them, deletes them."""

    def __init__(self, store: Store, accounts: Accounts, blocking: Blocking, config: Config) -> None:
        self.store = store
        self.accounts = accounts
        self.blocking = blocking
        self.config = config

    async def run(self, *, timeout: float, can_send: dict[str, bool], can_read: dict[str, bool],
                  poll: float = 0.5) -> list[Finding]:
        earlier = await self._settle_dead()
        stale = [r["message_id"] for r in await self.store.fetchall(
            "SELECT message_id FROM preflight_sends WHERE deleted = 0 AND state != 'failed' "
            "ORDER BY id DESC LIMIT 30")]
        run = uuid.uuid4().hex[:12]
        legs = [Leg(k, f, t, self.config.identity.old_address if t == "old" else self.config.identity.new_address)
                for k, f, t in LEGS]
        findings: dict[str, Finding] = {}
        for leg in legs:
            why = self._cannot(leg, can_send, can_read)
            if why:
                findings[leg.key] = self._finding(leg, NOT_RUN, why)
                continue
            await self._send(leg, run)
        deadline = time.time() + timeout
        waits = {}
        for side in ("old", "new"):
            mine = {lg.message_id: lg.sent_at for lg in legs if lg.to_side == side and lg.state in ("sent", "doubt")}
            if mine or (stale and can_read.get(side)):
                waits[side] = self.blocking.run(wait_for, self.accounts.account(side), mine,
                                                stale, deadline, poll)
        seen: dict[str, Found] = dict(zip(waits, await asyncio.gather(*waits.values())))
        for leg in legs:
            if leg.key not in findings:
                findings[leg.key] = await self._settle(leg, seen.get(leg.to_side, Found()), timeout)
        for found in seen.values():
            if found.deleted:
                marks = ",".join("?" * len(found.deleted))
                await self.store.execute(f"UPDATE preflight_sends SET deleted = 1 WHERE message_id IN ({marks})",
                                         list(found.deleted))
        out = [findings[k] for k, _, _ in LEGS]
        if earlier:
            out.append(Finding("roundtrip.earlier", SECTION, "earlier test", WARN,
                               f"{earlier} test message(s) of an earlier check were never confirmed sent",
                               "They may still arrive; they are not sent again.",
                               "Nothing to do: a later check deletes them if they turn up.", blocks=False))
        return out

    def _cannot(self, leg: Leg, can_send: dict[str, bool], can_read: dict[str, bool]) -> str:
        if self.config.account(leg.from_side).smtp is None:
            return f"no SMTP server is configured for the {leg.from_side} account"
        if not can_send.get(leg.from_side):
            return f"the {leg.from_side} SMTP login failed"
        if not can_read.get(leg.to_side):
            return f"the {leg.to_side} IMAP login failed"
        return ""

    async def _settle_dead(self) -> int:
        rows = await self.store.fetchall("SELECT id, pid FROM preflight_sends WHERE state = 'sending'")
        # the caller's job lock lets one check run at a time: a row still 'sending' now was
        # left by a check that ended (killed, crashed) inside its send
        dead = [r["id"] for r in rows]
        for row_id in dead:
            await self.store.execute(
                "UPDATE preflight_sends SET state = 'doubt', outcome = ? WHERE id = ? AND state = 'sending'",
                ("the check that sent it ended before the server answered", row_id))
        return len(dead)

    async def _send(self, leg: Leg, run: str) -> None:
        frm = self.config.identity.old_address if leg.from_side == "old" else self.config.identity.new_address
        leg.message_id = make_msgid("switchover-test", domain=frm.rsplit("@", 1)[-1])
        raw = build_message(self.config, leg, run)
        leg.row = await self.store.execute(
            "INSERT INTO preflight_sends(run, leg, from_side, to_side, to_address, message_id, state, pid, "
            "started) VALUES(?,?,?,?,?,?,'sending',?,?)",
            (run, leg.key, leg.from_side, leg.to_side, leg.to_address, leg.message_id, os.getpid(), time.time()))
        account = self.accounts.account(leg.from_side)
        try:
            await self.blocking.run(smtp.send, account, frm, [leg.to_address], raw, timeout=30,
                                    data_timeout=60)
            leg.state, leg.outcome = "sent", "accepted"
        except smtp.SmtpInDoubt as e:
            leg.state, leg.outcome = "doubt", e.message
        except SwitchoverError as e:
            leg.state, leg.outcome = "failed", e.message
        leg.sent_at = time.time()
        await self.store.execute("UPDATE preflight_sends SET state = ?, sent = ?, outcome = ? WHERE id = ?",
                                 (leg.state, leg.sent_at, leg.outcome, leg.row))

    async def _settle(self, leg: Leg, found: Found, timeout: float) -> Finding:
        if leg.state == "failed":
            return self._finding(leg, FAIL, f"the server refused to send it: {leg.outcome}",
                                 "Mail from this address does not go out.",
                                 f"Check that sending is allowed for the {leg.from_side} account "
                                 f"(some providers need SMTP switched on), then run the check again.")
        hit = found.arrived.get(leg.message_id)
        if hit is None:
            state, why = "missing", (found.error or f"did not arrive within {timeout:g} s")
            verdict = NOT_RUN if found.error else FAIL
        else:
            leg.folder, leg.seconds = hit
            state, why, verdict = "arrived", "", OK
        await self.store.execute(
            "UPDATE preflight_sends SET state = ?, arrived = ?, seconds = ? WHERE id = ?",
            (state, time.time() if hit else None, leg.seconds, leg.row))
        gone = "" if leg.message_id in found.deleted else "; not deleted, delete it by hand"
        if verdict == OK and leg.folder != "INBOX":
            return self._finding(leg, WARN, f"arrived in {leg.folder} after {leg.seconds:.1f} s{gone}",
                                 "Mail between the two addresses is treated as spam.",
                                 "Ask IT to check SPF, DKIM and DMARC (below) and the spam filter.",
                                 blocks=False)
        if verdict == OK:
            return self._finding(leg, OK, f"arrived after {leg.seconds:.1f} s{gone}")
        if verdict == NOT_RUN:
            return self._finding(leg, NOT_RUN, f"sent, but the inbox could not be read: {why}")
        doubt = " (the server never confirmed taking it)" if leg.state == "doubt" else ""
        return self._finding(leg, FAIL, f"sent{doubt}, but it {why}",
                             "Mail between your addresses is lost or very slow; customers' mail may be too.",
                             f"Run the check again with a longer --timeout; if it still does not arrive, "
                             f"ask IT to trace the message {leg.message_id}.")

    def _finding(self, leg: Leg, verdict: str, found: str, meaning: str = "", advice: str = "",
                 blocks: bool = True) -> Finding:
        label = f"{ARROW[leg.key]} ({leg.to_address})"
        if verdict == NOT_RUN and not meaning:
            meaning = "Nothing proves mail goes this way."
            advice = advice or "Fix what is named, then run the check again."
        return Finding(f"roundtrip.{leg.key}", SECTION, label, verdict, found, meaning, advice, blocks)
