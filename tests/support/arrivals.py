"""Helpers of the transition tests (tests/transition/): mail as senders write it, a real
delivery recorded as the watch records it, what a mailbox holds, and a collector of the
engine's events."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from email.header import Header
from email.utils import format_datetime, make_msgid
from typing import Any

from switchover.core.events import ArrivalSeen
from switchover.core.mail.dates import date_of
from switchover.core.mail.headers import header_text, message_id_of, parse_headers, recipients_of, sender_of
from switchover.core.mail.identity import header_block
from switchover.core.mail.language import detect_language
from switchover.core.transition.arrivals import NewArrival

#: the closing date the transition tests configure (reminders name it)
CLOSE = dt.date(2027, 3, 31)
TRANSITION = {"close_date": CLOSE.isoformat()}


def make_mail(sender: str, to: str, subject: str = "Hello", body: str = "Hi there.",
              extra: str = "", charset: str = "utf-8", ctype: str = "text/plain") -> bytes:
    """A base64 message dated now, with a fresh Message-ID."""
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: {format_datetime(dt.datetime.now().astimezone())}\r\n"
            f"Message-ID: {make_msgid(domain='test.invalid')}\r\nMIME-Version: 1.0\r\n{extra}"
            f"Content-Type: {ctype}; charset={charset}\r\nContent-Transfer-Encoding: base64\r\n\r\n")
    return head.encode() + base64.encodebytes(body.encode(charset)).replace(b"\n", b"\r\n")


def message(to: str, *, sender: str = "Li Lei <li.lei@example.com>", subject: str = "Quote for order 17",
            body: str = "Hello, please send the quote.", mid: str | None = None,
            extra: str = "") -> bytes:
    """An 8-bit message in a thread (References), dated in 2026."""
    mid = mid or f"<{time.time_ns()}.test@example.com>"
    subj = subject if subject.isascii() else Header(subject, "utf-8").encode()
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subj}\r\nDate: Thu, 26 Nov 2026 10:00:00 +0800\r\n"
            f"Message-ID: {mid}\r\nReferences: <root@example.com>\r\nMIME-Version: 1.0\r\n{extra}"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    return head.encode() + body.encode("utf-8") + b"\r\n"


async def add_arrival(engine: Any, mailserver: Any, user: Any, raw: bytes,
                      sender: str = "li.lei@example.com") -> int:
    """Deliver for real into the old INBOX and record the arrival as the watch would
    (through the arrivals' owner; no ArrivalSeen, so no automatic rule reacts)."""
    await engine.blocking.run(mailserver.deliver, user, raw, sender)
    c = mailserver.client(user)
    try:
        info = c.select_folder("INBOX", readonly=True)
        uid = max(c.search(["ALL"]))
        stored = c.fetch([uid], ["BODY.PEEK[HEADER]"])[uid][b"BODY[HEADER]"]
    finally:
        c.logout()
    msg = parse_headers(stored)
    name, addr = sender_of(msg)
    body = raw.split(b"\r\n\r\n", 1)[1].decode("utf-8", "replace")
    subject = header_text(msg, "Subject")
    arrival_id = await engine.arrivals.add(NewArrival(
        side="old", folder="INBOX", uidvalidity=info[b"UIDVALIDITY"], uid=uid, message_id=message_id_of(msg),
        sender=addr, sender_name=name, recipients=recipients_of(msg), subject=subject, date=date_of(msg),
        size=len(raw), language=detect_language(subject + " " + body),
        badge=await engine.correspondents.badge(addr, msg), preview=body[:200],
        headers=header_block(stored), identity=None))
    assert arrival_id is not None
    return int(arrival_id)


def inbox(mailserver: Any, user: Any) -> list[bytes]:
    """The messages of a user's INBOX, in UID order."""
    c = mailserver.client(user)
    try:
        c.select_folder("INBOX", readonly=True)
        uids = c.search(["ALL"])
        return [d[b"BODY[]"] for _, d in sorted(c.fetch(uids, ["BODY.PEEK[]"]).items())] if uids else []
    finally:
        c.logout()


class Events:
    """Collects engine events; ``wait`` blocks until a predicate holds."""

    def __init__(self, engine: Any) -> None:
        self.items: list[Any] = []
        self.changed = asyncio.Event()
        engine.subscribe(self._on)

    def _on(self, ev: Any) -> None:
        self.items.append((time.monotonic(), ev))
        self.changed.set()

    def arrivals(self, side: str = "old") -> list[ArrivalSeen]:
        return [e for _, e in self.items if isinstance(e, ArrivalSeen) and e.side == side]

    async def wait(self, pred: Any, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while not pred():
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; events: {[e for _, e in self.items]}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.2))
            except asyncio.TimeoutError:
                pass
