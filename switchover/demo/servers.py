"""The demo's servers: the old and the new mailbox and the SMTP server that joins them.

Built on the one in-process harness (switchover/demo/harness.py, also what the tests
run): two pymap IMAP servers, the *old* and the *new* mailbox, one user each (the old one
with ManageSieve when pymap's optional ``sievelib`` is installed: ``sieve_port`` is None
otherwise), and an aiosmtpd SMTP server (AUTH checked against the two users) that
delivers recipients of the old/new address into the matching INBOX and keeps everything
else, bounded, as "sent to the outside world" — except mail to a domain the demo treats
as gone (``is_gone``: a fixed share of the correspondents' domains), which is answered
with a real delivery status notification (multipart/report, Status 5.1.1, the original's
headers) delivered into the sender's INBOX, as a real MTA does a moment after accepting.

Mail is loaded straight into pymap's backend objects (harness ``Mailboxes``) with pinned
UIDVALIDITY and UIDs, so thousands of messages take a moment and a snapshot restored on
the next start gives the same UIDs (see ``persist.py``). Nothing here knows about
switchover's engine: it only serves mail.
"""

from __future__ import annotations

import collections
import email
import email.policy
import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parseaddr
from typing import Any, TypeVar

from .harness import HOST, ImapServer, Mailboxes, ServerLoop, SmtpService, bulk_load
from .mime import dsn

__all__ = ["HOST", "DemoServers", "DemoUser", "Mailboxes", "bulk_load", "bounce_for", "is_gone"]

T = TypeVar("T")
#: how many outside-world messages the SMTP server remembers
OUTSIDE_KEEP = 200
#: a failed demo login waits this long, as a real server would (a little)
INVALID_USER_SLEEP = 0.05
#: one correspondent domain in GONE_SHARE is gone (the company closed or moved): mail to
#: it bounces. Chosen by a hash of the name, so the same people bounce in every run.
GONE_SHARE = 12
#: and these always are (tests and the README use them)
GONE_DOMAINS = frozenset({"gone.example"})


def is_gone(address: str) -> bool:
    """Whether mail to ``address`` bounces in the demo (its domain is gone)."""
    domain = address.rpartition("@")[2].lower()
    if domain in GONE_DOMAINS or any(domain.endswith("." + d) for d in GONE_DOMAINS):
        return True
    return int(hashlib.sha1(domain.encode()).hexdigest()[:8], 16) % GONE_SHARE == 0 \
        and domain.count(".") >= 2       # correspondents' company domains, never ours


def bounce_for(mail_from: str, rcpt: str, raw: bytes, now: datetime | None = None) -> bytes:
    """The DSN a real MTA sends back for ``raw`` that could not reach ``rcpt``."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    when = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    original_id = str(msg.get("Message-ID", "")).strip() or "<unknown@demo.invalid>"
    token = hashlib.sha1((original_id + rcpt).encode()).hexdigest()[:16]
    return dsn(postmaster="MAILER-DAEMON@mx.demo-relay.example", original_from=mail_from,
               failed_rcpt=rcpt, subject=" ".join(str(msg.get("Subject", "")).split()),
               date=when, message_id=f"<dsn.{token}@mx.demo-relay.example>",
               original_id=original_id,
               reason=f"<{rcpt}>: Recipient address rejected: the domain "
                      f"{rcpt.rpartition('@')[2]} no longer receives mail")


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    address: str


class _Delivery:
    """aiosmtpd handler: local recipients go into a pymap INBOX, the rest is kept."""

    def __init__(self, outside: collections.deque) -> None:
        #: address (lowercase) -> the mailboxes it is delivered into (set once started)
        self.local: dict[str, Mailboxes] = {}
        self.outside = outside
        self.delivered = 0
        self.bounced = 0
        #: told about every message leaving the demo (the live arrivals answer reminders)
        self.on_outside: Callable[[str, list[str], bytes], None] | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        outside: list[str] = []
        done: set[int] = set()
        for rcpt in envelope.rcpt_tos:
            target = self.local.get(parseaddr(rcpt)[1].lower())
            if target is None:
                outside.append(rcpt)
            elif id(target) not in done:  # one copy per mailbox, like a real MTA
                done.add(id(target))
                await target.inject("INBOX", raw, recent=True)
                self.delivered += 1
        sender = parseaddr(envelope.mail_from or "")[1].lower()
        home = self.local.get(sender)
        for rcpt in [r for r in outside if is_gone(r)]:
            outside.remove(rcpt)
            self.bounced += 1
            if home is not None:          # the bounce goes back to the sender's INBOX
                await home.inject("INBOX", bounce_for(sender, rcpt, raw), recent=True)
        if outside:
            self.outside.append((envelope.mail_from, outside, raw))
            if self.on_outside is not None:
                try:
                    self.on_outside(envelope.mail_from or "", outside, raw)
                except Exception:  # the demo's extras never refuse mail
                    pass
        return "250 Message accepted for delivery"


@dataclass
class DemoServers:
    """The old and new IMAP servers and the SMTP server, on one loop. ``old`` / ``new``
    are the two users' mailboxes; ``old_imap`` / ``new_imap`` the servers (ports)."""

    old_user: DemoUser
    new_user: DemoUser
    sieve: bool = True
    loop: ServerLoop = field(default_factory=lambda: ServerLoop("switchover-demo-servers"))
    outside: collections.deque = field(default_factory=lambda: collections.deque(maxlen=OUTSIDE_KEEP))

    def __post_init__(self) -> None:
        self.old_imap = ImapServer("old", invalid_user_sleep=INVALID_USER_SLEEP)
        self.new_imap = ImapServer("new", invalid_user_sleep=INVALID_USER_SLEEP)
        self.smtp: SmtpService | None = None
        self.smtp_port = 0
        self.delivery = _Delivery(self.outside)

    @property
    def old(self) -> Mailboxes:
        return self.old_imap.mailboxes(self.old_user.username)

    @property
    def new(self) -> Mailboxes:
        return self.new_imap.mailboxes(self.new_user.username)

    def start(self) -> None:
        self.loop.call(self._start())

    async def _start(self) -> None:
        await self.old_imap.start(sieve=self.sieve)
        await self.new_imap.start()
        old = await self.old_imap.add_user(self.old_user.username, self.old_user.password)
        new = await self.new_imap.add_user(self.new_user.username, self.new_user.password)
        self.delivery.local = {self.old_user.address.lower(): old,
                               self.new_user.address.lower(): new}
        users = {u.username: u.password for u in (self.old_user, self.new_user)}
        self.smtp = SmtpService(self.delivery, lambda name, pw: users.get(name) == pw)
        self.smtp_port = await self.smtp.start()

    def stop(self) -> None:
        try:
            self.loop.call(self._stop(), timeout=10)
        except Exception:
            pass
        self.loop.close()

    async def _stop(self) -> None:
        if self.smtp is not None:
            await self.smtp.stop()
        await self.old_imap.stop()
        await self.new_imap.stop()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 120) -> T:
        return self.loop.call(coro, timeout)
