"""Sending mail over SMTP: TLS (ssl / starttls / none), AUTH PLAIN/LOGIN or XOAUTH2,
timeouts, and turning every refusal into one sentence carrying the server's code and words.

``smtplib`` is blocking; callers run :func:`send` in a worker thread
(``engine.run_blocking``). The message bytes are sent as given (callers build them with
CRLF line ends), only dot-stuffed.

Exactly once (issue 9): a send has one window whose outcome cannot be known — from the
moment the end of the message data (``CRLF . CRLF``) leaves until the server's reply
arrives. Before it, a failure means nothing was delivered (the server discards data that
never ended), so trying again is safe. Inside it, a timeout or a dropped connection
means the server may or may not have taken the message: :func:`send` raises
:class:`SmtpInDoubt`, never a retryable error, and calls ``before_data`` just before the
data goes out so the caller can record that the window opened (a process killed inside
it leaves that record behind). The reply to the end of data is awaited for
``data_timeout`` (RFC 5321 §4.5.3.2.6 suggests 10 minutes: a slow server is not a lost
message); connecting, the greeting and the commands use the shorter ``timeout``.
"""

from __future__ import annotations

import re
import smtplib
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..auth.oauth2 import sign_in_again
from ..config import Account
from ..errors import AuthError, ConnectError, SwitchoverError
from .imap import describe_os_error, ssl_context

#: server words that mean "slow down" rather than "never": provider rate limits and quotas
_THROTTLE = re.compile(
    r"throttl|rate limit|too many|quota|frequen|try again later|limit exceeded|"
    r"sending limit|daily user sending|SubmissionQuotaExceeded|RP:TRC|RP:QRC|RP:CEL|"
    r"4\.7\.0 temporary|exceeded|slow down", re.I)


#: connecting, the greeting and each command's reply (RFC 5321 allows more; 60 s is plenty
#: for a server that is there at all)
COMMAND_TIMEOUT = 60.0
#: the reply to the end of the message data (RFC 5321 §4.5.3.2.6: 10 minutes)
DATA_TIMEOUT = 600.0
#: a kept connection idle longer than this is not tried again (every notice preset's gap
#: is shorter; servers may hang up after 5 minutes)
IDLE_REUSE = 120.0


class SmtpError(SwitchoverError):
    """The SMTP server refused; ``temporary`` tells whether trying later may work."""

    def __init__(self, message: str, *, code: int | None = None, temporary: bool = False,
                 throttled: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.temporary = temporary or throttled
        self.throttled = throttled


class SmtpInDoubt(SwitchoverError):
    """The whole message went to the server but its answer never came (timeout, dropped
    connection): it may have been delivered. Never to be retried blindly."""

    temporary = False


@dataclass(frozen=True)
class SendResult:
    accepted: tuple[str, ...]
    #: recipients the server refused while accepting others: address → "code words"
    refused: dict[str, str] = field(default_factory=dict)
    response: str = ""


def _reply_text(raw: bytes | str) -> str:
    """A server reply's text on one line (not an exception's: see errors.sentence)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())


def is_throttle(code: int | None, words: str) -> bool:
    return code == 421 or bool(_THROTTLE.search(words))


def _refusal(what: str, code: int, raw: bytes | str) -> SmtpError:
    words = _reply_text(raw)
    throttled = is_throttle(code, words)
    temporary = 400 <= code < 500
    kind = ("the server asks to slow down" if throttled
            else "temporary, will work later" if temporary else "permanent")
    return SmtpError(f"{what}: {code} {words} ({kind}).", code=code, temporary=temporary,
                     throttled=throttled)


class _XOAuth2:
    """smtplib auth object: the initial response, then an empty line after an error
    challenge (the server sends a base64 JSON error and waits for one)."""

    def __init__(self, user: str, token: str) -> None:
        self.user = user
        self.token = token
        self.calls = 0

    def __call__(self, challenge: bytes | None = None) -> str:
        self.calls += 1
        if self.calls == 1:
            return f"user={self.user}\x01auth=Bearer {self.token}\x01\x01"
        return ""


def _open(account: Account, timeout: float) -> smtplib.SMTP:
    ep = account.smtp
    assert ep is not None
    if ep.security == "ssl":
        conn: smtplib.SMTP = smtplib.SMTP_SSL(ep.host, ep.port, timeout=timeout,
                                              context=ssl_context(account))
    else:
        conn = smtplib.SMTP(ep.host, ep.port, timeout=timeout)
    conn.ehlo_or_helo_if_needed()
    if ep.security == "starttls":
        if not conn.has_extn("starttls"):
            conn.close()
            raise ConnectError(f"The {account.side} SMTP server {ep.host}:{ep.port} does not offer "
                               f"STARTTLS; check the port and 'security'.")
        conn.starttls(context=ssl_context(account))
        conn.ehlo()
    _no_delay(conn)
    return conn


def _no_delay(conn: smtplib.SMTP) -> None:
    """TCP_NODELAY: the end of the data (CRLF . CRLF) goes in a write of its own so the
    in-doubt window is exact; with Nagle that small write waited for the ACK of the
    body — a delayed ACK, 40 ms on Linux, per message."""
    try:
        if conn.sock is not None:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def _login(conn: smtplib.SMTP, account: Account, secret: str) -> None:
    if not conn.has_extn("auth"):
        # a local relay may take mail without AUTH; a refusal then comes at MAIL/RCPT
        return
    if account.uses_oauth2:
        conn.auth("XOAUTH2", _XOAuth2(account.username, secret), initial_response_ok=True)
        return
    methods = conn.esmtp_features.get("auth", "").upper().split()
    # PLAIN/LOGIN only: CRAM-MD5 needs the clear password on the server, often absent.
    for name, fn in (("PLAIN", conn.auth_plain), ("LOGIN", conn.auth_login)):
        if name in methods:
            conn.user, conn.password = account.username, secret
            conn.auth(name, fn, initial_response_ok=True)
            return
    conn.login(account.username, secret)


def send(account: Account, mail_from: str, rcpts: list[str], raw: bytes, *,
         timeout: float = COMMAND_TIMEOUT, data_timeout: float = DATA_TIMEOUT,
         secret: str | None = None, before_data: Callable[[], None] | None = None) -> SendResult:
    """Send ``raw`` through ``account``'s SMTP server to ``rcpts`` on a connection of its
    own (a :class:`Session` used once).

    ``before_data`` is called (in this thread) after the server said 354 and before any
    byte of the message leaves; if it raises, the message is not sent (the connection is
    dropped mid-DATA, which the server discards) and its exception propagates.

    Raises AuthError (login refused), ConnectError (unreachable or cut before the data
    ended; temporary), SmtpError (refused; ``temporary`` / ``throttled`` say whether to
    retry) or SmtpInDoubt (the data ended but no answer came), each one sentence.
    """
    session = Session(account, timeout=timeout, secret=secret)
    try:
        return session.send(mail_from, rcpts, raw, data_timeout=data_timeout, before_data=before_data)
    finally:
        session.close()


class _Stale(Exception):
    """A kept connection the server had closed meanwhile: nothing of the message left."""


class Session:
    """One SMTP connection kept between the messages of a campaign, so 300 notices are not
    300 TLS handshakes and 300 logins (providers watch login counts). Blocking: one
    worker thread at a time.

    A connection idle longer than ``idle`` seconds is closed and a new one opened (RFC
    5321 lets a server give up after 5 minutes). A kept connection the server closed
    meanwhile — found when MAIL FROM meets a hang-up, a timeout or a 421 — is replaced
    and the message tried once more on the new one: nothing of it had left, so this
    cannot send it twice. Any failure drops the connection; the next message opens a
    new one. ``opened`` counts the connections opened (tests, the benchmark).
    """

    def __init__(self, account: Account, *, timeout: float = COMMAND_TIMEOUT, idle: float = IDLE_REUSE,
                 secret: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.account, self.timeout, self.idle, self.secret = account, timeout, idle, secret
        self.clock = clock
        self.opened = 0
        self._conn: smtplib.SMTP | None = None
        self._last = 0.0
        # one conversation at a time: a resend decided while a campaign runs, or a close
        # while a cancelled caller's send still runs in its thread, waits its turn
        self._lock = threading.Lock()

    @property
    def who(self) -> str:
        return f"The {self.account.side} SMTP server"

    def send(self, mail_from: str, rcpts: list[str], raw: bytes, *, data_timeout: float = DATA_TIMEOUT,
             before_data: Callable[[], None] | None = None) -> SendResult:
        """As :func:`send` does, on the kept connection."""
        if self.account.smtp is None:
            raise SwitchoverError(f"No SMTP server is configured for the {self.account.side} account; "
                                  f"add {self.account.side}.smtp (host, port, security) to the config.")
        with self._lock:
            if self._conn is not None and self.clock() - self._last > self.idle:
                self._drop(polite=True)
            try:
                return self._attempt(self._conn is not None, mail_from, rcpts, raw, data_timeout, before_data)
            except _Stale:
                return self._attempt(False, mail_from, rcpts, raw, data_timeout, before_data)

    def close(self) -> None:
        """QUIT the kept connection, if any (after the conversation under way ends)."""
        with self._lock:
            self._drop(polite=True)

    def _drop(self, *, polite: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _hang_up(conn, polite=polite)

    def _connect(self) -> smtplib.SMTP:
        ep = self.account.smtp
        assert ep is not None
        password = self.secret if self.secret is not None else self.account.secret()
        try:
            conn = _open(self.account, self.timeout)
        except smtplib.SMTPResponseException as e:
            raise _refusal(f"{self.who} {ep.host}:{ep.port} refused the connection",
                           e.smtp_code, e.smtp_error) from None
        except smtplib.SMTPException as e:
            raise ConnectError(f"{self.who} {ep.host}:{ep.port}: {e or 'the connection broke'}.") from None
        except OSError as e:
            raise ConnectError(f"{self.who}: {describe_os_error(ep.host, ep.port, e)}.") from None
        self.opened += 1
        try:
            _checked_login(conn, self.account, password, self.who)
        except BaseException:
            _hang_up(conn)
            raise
        return conn

    def _attempt(self, reused: bool, mail_from: str, rcpts: list[str], raw: bytes, data_timeout: float,
                 before_data: Callable[[], None] | None) -> SendResult:
        ep = self.account.smtp
        assert ep is not None
        who = self.who
        tx: _Transaction | None = None
        keep = False
        broken = False          # hung up or silent: QUIT would only wait for nothing

        def stale() -> bool:
            # a kept connection that failed before any byte of the message left
            return reused and (tx is None or not tx.in_data)

        def gave_up(code: int, text: bytes | str) -> bool:
            # a 421 that closes a kept connection; not one asking to slow down
            return code == 421 and stale() and not _THROTTLE.search(_reply_text(text))

        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            if conn.sock is not None:        # the last message's end waited data_timeout
                conn.sock.settimeout(self.timeout)
            options: list[str] = []
            if any(b > 127 for b in raw) and conn.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            if (not mail_from.isascii() or not all(r.isascii() for r in rcpts)) and conn.has_extn("smtputf8"):
                options.append("SMTPUTF8")
            tx = _Transaction(conn, who=f"{who} {ep.host}:{ep.port}", data_timeout=data_timeout,
                              before_data=before_data)
            try:
                refused = tx.run(mail_from, rcpts, raw, options)
            except smtplib.SMTPRecipientsRefused as e:
                parts = [f"{addr}: {code} {_reply_text(msg)}" for addr, (code, msg) in e.recipients.items()]
                code = min((c for c, _ in e.recipients.values()), default=550)
                if any(gave_up(c, m) for c, m in e.recipients.values()):
                    raise _Stale() from None
                temp = all(400 <= c < 500 for c, _ in e.recipients.values())
                words = "; ".join(parts)
                throttled = any(is_throttle(c, _reply_text(m)) for c, m in e.recipients.values())
                kind = ("the server asks to slow down" if throttled
                        else "temporary, will work later" if temp else "permanent")
                raise SmtpError(f"{who} refused the recipient ({words}) ({kind}).", code=code,
                                temporary=temp, throttled=throttled) from None
            except smtplib.SMTPSenderRefused as e:
                if gave_up(e.smtp_code, e.smtp_error):
                    raise _Stale() from None
                raise _refusal(f"{who} refused the sender {mail_from}", e.smtp_code, e.smtp_error) from None
            except smtplib.SMTPDataError as e:
                raise _refusal(f"{who} refused the message", e.smtp_code, e.smtp_error) from None
            except smtplib.SMTPResponseException as e:
                raise _refusal(f"{who} refused", e.smtp_code, e.smtp_error) from None
            accepted = tuple(r for r in rcpts if r not in refused)
            keep = conn.sock is not None
            return SendResult(accepted=accepted,
                              refused={a: f"{c} {_reply_text(m)}" for a, (c, m) in refused.items()},
                              response="accepted")
        except smtplib.SMTPServerDisconnected as e:
            broken = True
            if stale():
                raise _Stale() from None
            raise ConnectError(f"{who} {ep.host}:{ep.port} closed the connection ({e or 'no reason given'}).") from None
        except (socket.timeout, TimeoutError):
            broken = True
            if stale():
                raise _Stale() from None
            raise ConnectError(f"{who} {ep.host}:{ep.port} did not answer in time.") from None
        except OSError as e:        # ssl.SSLError too
            broken = True
            if stale():
                raise _Stale() from None
            raise ConnectError(f"{who}: {describe_os_error(ep.host, ep.port, e)}.") from None
        finally:
            if keep:
                self._last = self.clock()
            else:
                # QUIT would be read as message text while the server is inside DATA
                self._drop(polite=not broken and (tx is None or not tx.in_data))


def _hang_up(conn: smtplib.SMTP, *, polite: bool = True) -> None:
    """QUIT (or only close, while the server may still read message data); a connection
    that is already gone is closed quietly."""
    try:
        if polite:
            conn.quit()
        else:
            conn.close()
    except Exception:
        try:
            conn.close()
        except Exception:
            pass


@dataclass(frozen=True)
class LoginProof:
    """What :func:`login_only` learned: the server's EHLO extensions (lower-case name →
    parameters) after TLS, whether the session was encrypted, and whether AUTH ran."""
    features: dict[str, str]
    encrypted: bool
    authenticated: bool


def _checked_login(conn: smtplib.SMTP, account: Account, password: str, who: str) -> None:
    """AUTH on an open connection; a refusal becomes its one sentence (a 4xx: try later;
    a signed-in account: sign in again; else the password)."""
    try:
        _login(conn, account, password)
    except smtplib.SMTPAuthenticationError as e:
        words = _reply_text(e.smtp_error)
        if 400 <= e.smtp_code < 500:
            raise _refusal(f"{who} could not check the login for {account.username} now",
                           e.smtp_code, e.smtp_error) from None
        if account.signs_in:
            raise sign_in_again(account.side, f"was refused by the SMTP server ({e.smtp_code} "
                                              f"{words}; Microsoft 365 also needs SMTP AUTH "
                                              f"turned on for the mailbox)") from None
        raise AuthError(f"{who} refused the login for {account.username}: {e.smtp_code} "
                        f"{words}; check the username and the password or authorization "
                        f"code.") from None
    except smtplib.SMTPNotSupportedError:
        raise AuthError(f"{who} offers no login method switchover can use "
                        f"({conn.esmtp_features.get('auth', 'none')}).") from None


def login_only(account: Account, *, timeout: float = COMMAND_TIMEOUT) -> LoginProof:
    """Connect, EHLO, STARTTLS / SSL, AUTH, QUIT — nothing is ever sent (the preflight's
    SMTP login). Raises what :func:`send` raises before its transaction: AuthError,
    ConnectError, SmtpError (a refusal at connect or a 4xx to AUTH)."""
    ep = account.smtp
    who = f"The {account.side} SMTP server"
    if ep is None:
        raise SwitchoverError(f"No SMTP server is configured for the {account.side} account.")
    conn: smtplib.SMTP | None = None
    try:
        conn = _open(account, timeout)
        authenticated = conn.has_extn("auth")
        _checked_login(conn, account, account.secret(), who)
        return LoginProof(features=dict(conn.esmtp_features), encrypted=ep.security != "none",
                          authenticated=authenticated)
    except smtplib.SMTPResponseException as e:
        raise _refusal(f"{who} {ep.host}:{ep.port} refused", e.smtp_code, e.smtp_error) from None
    except smtplib.SMTPException as e:      # closed, or a STARTTLS the server lacks
        raise ConnectError(f"{who} {ep.host}:{ep.port}: {e or 'the connection broke'}.") from None
    except OSError as e:
        raise ConnectError(f"{who}: {describe_os_error(ep.host, ep.port, e)}.") from None
    finally:
        if conn is not None:
            _hang_up(conn)


class _Transaction:
    """One MAIL / RCPT / DATA exchange, as ``smtplib.SMTP.sendmail`` does it, with the
    end of the data sent apart so the in-doubt window is exact (see the module's
    docstring). ``in_data`` is True while the server is inside DATA (QUIT would be read
    as message text then)."""

    def __init__(self, conn: smtplib.SMTP, *, who: str, data_timeout: float,
                 before_data: Callable[[], None] | None) -> None:
        self.conn = conn
        self.who = who
        self.data_timeout = data_timeout
        self.before_data = before_data
        self.in_data = False

    def run(self, mail_from: str, rcpts: list[str], raw: bytes,
            options: list[str]) -> dict[str, tuple[int, bytes]]:
        conn = self.conn
        esmtp = list(options)
        if conn.does_esmtp and conn.has_extn("size"):
            esmtp.insert(0, f"size={len(raw)}")
        code, resp = conn.mail(mail_from, esmtp if conn.does_esmtp else [])
        if code != 250:
            if code == 421:
                conn.close()
            else:
                conn._rset()  # type: ignore[attr-defined]  # smtplib's quiet RSET, as sendmail() uses
            raise smtplib.SMTPSenderRefused(code, resp, mail_from)
        refused: dict[str, tuple[int, bytes]] = {}
        for rcpt in rcpts:
            code, resp = conn.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = (code, resp)
            if code == 421:
                conn.close()
                raise smtplib.SMTPRecipientsRefused(refused)
        if len(refused) == len(rcpts):
            conn._rset()  # type: ignore[attr-defined]  # smtplib's quiet RSET, as sendmail() uses
            raise smtplib.SMTPRecipientsRefused(refused)
        conn.putcmd("data")
        code, resp = conn.getreply()
        if code != 354:
            conn._rset()  # type: ignore[attr-defined]  # smtplib's quiet RSET, as sendmail() uses
            raise smtplib.SMTPDataError(code, resp)
        self.in_data = True
        if self.before_data is not None:
            self.before_data()          # raises: nothing of the message has left
        body = re.sub(rb"(?m)^\.", b"..", raw)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        conn.send(body)                 # cut here: the data never ended, nothing delivered
        command_timeout = conn.sock.gettimeout() if conn.sock is not None else None
        try:
            if conn.sock is not None:
                conn.sock.settimeout(self.data_timeout)
            conn.send(b".\r\n")
            code, resp = conn.getreply()
            if conn.sock is not None:       # a kept connection's next command: the short wait
                conn.sock.settimeout(command_timeout)
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            raise SmtpInDoubt(
                f"{self.who} received the whole message but gave no answer "
                f"({_doubt_reason(e, self.data_timeout)}); it may or may not have been "
                f"delivered.") from None
        self.in_data = False
        if code != 250:
            if code == 421:
                conn.close()
            else:
                conn._rset()  # type: ignore[attr-defined]  # smtplib's quiet RSET, as sendmail() uses
            raise smtplib.SMTPDataError(code, resp)
        return refused


def _doubt_reason(e: BaseException, waited: float) -> str:
    text = str(e).lower()
    if isinstance(e, (socket.timeout, TimeoutError)) or "timed out" in text:
        return f"no reply within {waited:g} s"
    return "the connection broke while waiting for the reply"


def is_temporary(exc: BaseException) -> bool:
    """True when trying again later may succeed (network trouble, 4xx, throttling)."""
    if isinstance(exc, (AuthError, SmtpInDoubt)):
        return False
    if isinstance(exc, SmtpError):
        return exc.temporary
    return isinstance(exc, (ConnectError, OSError))
