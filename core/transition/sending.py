"""Carrying out one claimed action: a reminder by SMTP from the old account, a forward
by SMTP to the new address, or a forward by IMAP into the new INBOX — and the checks
that tell, after a crash or an unknown outcome, whether the mail got there.

Sending by SMTP has one window whose outcome cannot be known: from the end of the
message data until the server's reply (core/net/smtp.py). Right before the data goes
out the row's outcome says ``sending``; a timeout or a dropped connection in the window
makes the action ``doubt`` (core/transition/actions.py), never retried by itself. What
can settle a doubt soundly:

* a forward by SMTP goes to the new address, whose INBOX we can read: the message's own
  Message-ID there proves delivery;
* a reminder through Gmail / Outlook, whose SMTP files every accepted message in Sent:
  its Message-ID in Sent proves the server took it;
* anything else cannot be told from outside: a copy we append to Sent ourselves only
  shows what we meant to send, never what the server took, so it proves nothing and is
  not used as proof. The person decides.

Forwards by IMAP go through core/transition/placing.py (one placement per message in
the new INBOX, shared with the migration).
"""

from __future__ import annotations

import asyncio
import datetime as dt

from ..config import Config
from ..context import Accounts, Blocking
from ..errors import StateFileError, SwitchoverError, sentence
from ..events import EventBus, LogLine
from ..mail.compose import new_message_id
from ..mail.identity import identity_of
from ..net import smtp as smtpnet
from .arrivals import Arrival, Arrivals
from .drafts import Drafts
from .ledger import DELIVERED, SENDING, ActionLedger, ActionRow
from .mailbox import Where, append_sent, find_in_inbox, in_sent, require_original

#: providers whose SMTP files a copy in Sent by itself
SAVES_SENT = {"gmail", "outlook"}


class Later(Exception):
    """Not now, and not a failure: try again in ``seconds`` (another writer is busy)."""

    def __init__(self, seconds: float, why: str) -> None:
        super().__init__(why)
        self.seconds = seconds
        self.why = why


def where(arrival: Arrival) -> Where:
    return Where(arrival.side, arrival.folder, arrival.uidvalidity, arrival.uid, arrival.message_id)


class Phases:
    """The phases a running action notes in its row (the in-doubt protocol)."""

    def __init__(self, ledger: ActionLedger, bus: EventBus) -> None:
        self.ledger = ledger
        self.bus = bus

    async def mark(self, action_id: int, text: str) -> None:
        """Note a phase; refuses when the row is no longer this process's running action
        (then nothing must be sent)."""
        if not await self.ledger.note(action_id, text):
            raise SwitchoverError(f"Action {action_id} changed elsewhere; nothing was sent.")

    async def delivered(self, action_id: int, what: str) -> None:
        """After the server took the mail. A busy state file must not turn a delivered
        send into a failure: the 'sending' marker already keeps it from a blind retry, and
        the final 'done' write carries the words anyway."""
        try:
            await self.mark(action_id, f"{DELIVERED}{what}")
        except StateFileError as e:
            self.bus.publish(LogLine("warning", f"Action {action_id}: could not note the delivery "
                                                f"yet ({sentence(e)})."))


class Sender:
    """Reminders and forwards by SMTP, the copy in Sent, and the checks on the servers."""

    def __init__(self, accounts: Accounts, blocking: Blocking, config: Config, arrivals: Arrivals,
                 drafts: Drafts, phases: Phases) -> None:
        self.accounts, self.blocking, self.config = accounts, blocking, config
        self.arrivals, self.drafts, self.phases = arrivals, drafts, phases
        #: how long the reply to the end of SMTP data is awaited (tests shorten it)
        self.data_timeout = smtpnet.DATA_TIMEOUT

    async def send(self, row: ActionRow, side: str, mail_from: str, raw: bytes) -> None:
        """SMTP with the in-doubt marker written right before the data leaves."""
        loop = asyncio.get_running_loop()

        def before_data() -> None:   # in the worker thread: wait for the write to commit
            stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
            fut = asyncio.run_coroutine_threadsafe(
                self.phases.mark(row.id, f"{SENDING}the message data went out at {stamp}"), loop)
            fut.result(timeout=120)

        await self.blocking.run(smtpnet.send, self.accounts.account(side), mail_from, [row.recipient or ""],
                                raw, before_data=before_data, data_timeout=self.data_timeout)

    async def forward(self, row: ActionRow, arrival: Arrival) -> str:
        """The original, attached, to the new address through the new account's SMTP."""
        original = await self.blocking.run(require_original, self.accounts.account(arrival.side), where(arrival))
        await self.arrivals.set_identity(arrival.id, identity_of(original.raw))
        mid = row.sent_message_id or new_message_id(self.config.identity.new_address)
        raw = self.drafts.forward(arrival, original.raw, mid)
        await self.send(row, "new", self.config.identity.new_address, raw)
        what = f"sent to {row.recipient} as an attachment through the new account's SMTP"
        await self.phases.delivered(row.id, what)
        return what

    async def remind(self, row: ActionRow, arrival: Arrival) -> str:
        """The reminder from the old address; a copy in the old Sent folder where the
        provider does not file one itself."""
        _, raw = await self.drafts.reminder(arrival, row.recipient or "", row.sent_message_id, row.auto)
        account = self.accounts.account("old")
        await self.send(row, "old", self.config.identity.old_address, raw)
        await self.phases.delivered(row.id, "sent")
        note = ""
        if account.provider not in SAVES_SENT:
            try:
                folder = await self.blocking.run(append_sent, account, raw)
                note = f"; a copy is in {folder}" if folder else ""
            except Exception as e:  # noqa: BLE001 - the reminder went out; a missing copy is only noted
                note = f"; no copy in Sent ({sentence(e)})"
        return f"reminder sent to {row.recipient}{note}"

    # -- checks ---------------------------------------------------------------------------
    def doubt_checkable(self, row: ActionRow) -> bool:
        if row.kind == "forward":
            return bool(row.sent_message_id)
        return row.kind == "remind" and self.accounts.account("old").provider in SAVES_SENT

    async def check_doubt(self, row: ActionRow) -> str | None:
        """Proof that a send in doubt was delivered, where the servers can give one."""
        if not self.doubt_checkable(row) or not row.sent_message_id:
            return None
        if row.kind == "forward":
            hit = await self.blocking.run(find_in_inbox, self.accounts.account("new"), row.sent_message_id, None)
            return f"in the new INBOX (UID {hit[1]})" if hit else None
        if await self.blocking.run(in_sent, self.accounts.account("old"), row.sent_message_id):
            return f"the old account's SMTP filed the reminder to {row.recipient} in Sent: it was taken"
        return None

    async def check_sent_by_smtp(self, row: ActionRow) -> str | None:
        """After a crash: did an SMTP forward or a reminder get there (the new INBOX, the
        old Sent folder)?"""
        if row.kind == "forward":
            new = self.accounts.account("new")
            hit = None
            if row.sent_message_id:
                hit = await self.blocking.run(find_in_inbox, new, row.sent_message_id, None)
            if hit is None:   # forwards of older versions carried the action's id
                hit = await self.blocking.run(find_in_inbox, new, None, None, ("X-Switchover-Action", str(row.id)))
            return f"in the new INBOX (UID {hit[1]})" if hit else None
        if not row.sent_message_id:
            return None
        found: bool = await self.blocking.run(in_sent, self.accounts.account("old"), row.sent_message_id)
        return f"reminder to {row.recipient} is in the old Sent folder" if found else None
