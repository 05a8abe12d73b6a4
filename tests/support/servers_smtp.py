"""The SMTP server of the tests: aiosmtpd on loopback that records and delivers, run on
the one in-process harness the demo uses too (switchover/demo/harness.py SmtpService).

Owns: SmtpServer (what a test can make the server do). Import it from
tests/support/servers.py.
"""

from __future__ import annotations

import asyncio
import atexit
import smtplib
import threading
from typing import TYPE_CHECKING, Any

from switchover.demo.harness import ServerLoop, SmtpService
from tests.support.servers_base import HOST

if TYPE_CHECKING:
    from tests.support.servers_base import MailServer


class SmtpServer:
    """aiosmtpd on loopback: AUTH PLAIN/LOGIN without TLS, records every message byte-exact
    and delivers recipients that are users of the attached MailServer into their INBOX.

    ``passwords`` (login -> password) makes AUTH check them; otherwise any login passes.
    ``reject`` maps a recipient address to an SMTP reply line ("550 5.1.1 no such user")
    given at RCPT; ``fail_data`` (a reply line) refuses every DATA while set.

    The in-doubt window of a send (issue 9): ``reply_delay`` (seconds) makes the server
    take and deliver the message, then wait that long before answering the end of DATA
    (a slow provider); ``drop_after_data`` takes and delivers it, then closes the
    connection without an answer. ``taken`` counts messages taken so far (it moves
    before the delayed answer), so a test can act inside the window. ``release()`` ends
    every delay at once (``stop`` calls it). ``files_sent`` makes the server file a copy
    of what a user of the attached MailServer sends in that user's Sent folder, as Gmail
    and Outlook do. ``mail_reply`` answers the next MAIL FROM once (a server giving up on
    a kept connection says 421 there). ``logins`` lists every AUTH (one per connection).
    """

    def __init__(self, mailserver: MailServer | None = None, *,
                 passwords: dict[str, str] | None = None, deliver: bool = True,
                 relay_to_watchers: bool = False, max_size: int = 64 * 2**20) -> None:
        self.mailserver = mailserver
        self.host = HOST
        self.port = 0
        self.passwords = passwords
        self.deliver = deliver
        self.relay_to_watchers = relay_to_watchers
        self.max_size = max_size
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[str] = []
        self.delivery_errors: list[str] = []
        self.reject: dict[str, str] = {}
        self.fail_data: str | None = None
        self.reply_delay: float = 0.0
        self.drop_after_data = False
        self.files_sent = False
        #: the answer to the next MAIL FROM, once ("421 4.4.2 idle too long")
        self.mail_reply: str | None = None
        self._release = threading.Event()
        self._cond = threading.Condition()
        self._loop: ServerLoop | None = None
        self._service: SmtpService | None = None

    def _check_login(self, login: str, password: str) -> bool:
        if self.passwords is not None and self.passwords.get(login) != password:
            return False
        self.logins.append(login)
        return True

    def start(self) -> "SmtpServer":
        outer = self

        class Handler:
            async def handle_MAIL(self, server: Any, session: Any, envelope: Any,
                                  address: str, mail_options: list[str]) -> str:
                reply, outer.mail_reply = outer.mail_reply, None
                if reply:
                    return reply
                envelope.mail_from = address
                envelope.mail_options.extend(mail_options)
                return "250 OK"

            async def handle_RCPT(self, server: Any, session: Any, envelope: Any,
                                  address: str, rcpt_options: list[str]) -> str:
                reply = outer.reject.get(address.lower())
                if reply:
                    return reply
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if outer.fail_data:
                    return outer.fail_data
                raw = envelope.original_content or envelope.content
                if isinstance(raw, str):
                    raw = raw.encode("utf-8", "surrogateescape")
                loop = asyncio.get_running_loop()
                reply = await loop.run_in_executor(
                    None, outer._received, envelope.mail_from or "", list(envelope.rcpt_tos), raw)
                if outer.drop_after_data:
                    server.transport.close()
                    return "421 4.4.2 connection dropped"     # never reaches the client
                if outer.reply_delay > 0:
                    await loop.run_in_executor(None, outer._release.wait, outer.reply_delay)
                return reply

        self._loop = ServerLoop("smtp")
        self._service = SmtpService(Handler(), self._check_login, hostname="smtp.example.com",
                                    data_size_limit=self.max_size, smtputf8=True)
        self.port = self._loop.call(self._service.start(), timeout=10)
        atexit.register(self.stop)
        return self

    def _received(self, mail_from: str, rcpts: list[str], raw: bytes) -> str:
        if self.files_sent and self.mailserver is not None:
            sender = self.mailserver.user_for(mail_from)
            if sender is not None:
                self.mailserver.append(sender, "Sent", raw, flags=("\\Seen",))
        if self.deliver and self.mailserver is not None:
            for rcpt in rcpts:
                user = self.mailserver.user_for(rcpt)
                if user is None:
                    continue
                try:
                    self.mailserver.deliver(user, raw, sender=mail_from or "<>")
                except Exception as e:  # the sender is told, the test can look too
                    self.delivery_errors.append(f"{rcpt}: {e}")
                    return _reply_for(e, rcpt)
        with self._cond:
            self.messages.append((mail_from, rcpts, raw))
            self._cond.notify_all()
        if self.relay_to_watchers and self.mailserver is not None:
            for w in list(self.mailserver.watchers):
                w.record(mail_from, rcpts, raw)
        return "250 OK queued"

    @property
    def taken(self) -> int:
        with self._cond:
            return len(self.messages)

    def release(self) -> None:
        """End every delayed answer now."""
        self._release.set()

    def record(self, mail_from: str, rcpts: list[str], raw: bytes) -> None:
        with self._cond:
            self.messages.append((mail_from, rcpts, raw))
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 10) -> list[tuple[str, list[str], bytes]]:
        """Block until at least n messages arrived; AssertionError after timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= n, timeout):
                raise AssertionError(f"SMTP server got {len(self.messages)} message(s), "
                                     f"expected {n} within {timeout}s")
            return list(self.messages)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def attach(self) -> "SmtpServer":
        """Also receive what the mail server sends by itself (vacation replies)."""
        if self.mailserver is not None and self not in self.mailserver.watchers:
            self.mailserver.watchers.append(self)
        return self

    def stop(self) -> None:
        self._release.set()
        if self.mailserver is not None and self in self.mailserver.watchers:
            self.mailserver.watchers.remove(self)
        loop, service, self._loop, self._service = self._loop, self._service, None, None
        if loop is not None:
            if service is not None:
                try:
                    loop.call(service.stop(), timeout=5)
                except Exception:
                    pass
            loop.close()

    def __enter__(self) -> "SmtpServer":
        return self.start() if self._service is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _reply_for(exc: Exception, rcpt: str) -> str:
    """The mail server's own refusal (e.g. LMTP "552 5.2.2 Quota exceeded") as our reply."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code, words = next(iter(exc.recipients.values()))
    elif isinstance(exc, smtplib.SMTPResponseException):
        code, words = exc.smtp_code, exc.smtp_error
    else:
        return f"451 4.3.0 local delivery to {rcpt} failed"
    if isinstance(words, bytes):
        words = words.decode("utf-8", "replace")
    words = " ".join(str(words).split())       # one line
    return f"{code} {words}" if 400 <= code < 600 else f"451 {words}"
