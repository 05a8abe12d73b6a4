"""Sending mail over SMTP: TLS (ssl / starttls / none), AUTH PLAIN/LOGIN or XOAUTH2,
timeouts, and turning every refusal into one sentence carrying the server's code and words.

``smtplib`` is blocking; callers run :func:`send` in a worker thread
(``engine.run_blocking``). The message bytes are sent as given (callers build them with
CRLF line ends); ``smtplib`` only dot-stuffs them.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass, field

from .config import Account
from .errors import AuthError, ConnectError, SwitchoverError
from .imap import describe_os_error, ssl_context

#: server words that mean "slow down" rather than "never": provider rate limits and quotas
_THROTTLE = re.compile(
    r"throttl|rate limit|too many|quota|frequen|try again later|limit exceeded|"
    r"sending limit|daily user sending|SubmissionQuotaExceeded|RP:TRC|RP:QRC|RP:CEL|"
    r"4\.7\.0 temporary|exceeded|slow down", re.I)


class SmtpError(SwitchoverError):
    """The SMTP server refused; ``temporary`` tells whether trying later may work."""

    def __init__(self, message: str, *, code: int | None = None, temporary: bool = False,
                 throttled: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.temporary = temporary or throttled
        self.throttled = throttled


@dataclass(frozen=True)
class SendResult:
    accepted: tuple[str, ...]
    #: recipients the server refused while accepting others: address → "code words"
    refused: dict[str, str] = field(default_factory=dict)
    response: str = ""


def _words(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())


def is_throttle(code: int | None, words: str) -> bool:
    return code == 421 or bool(_THROTTLE.search(words))


def _refusal(what: str, code: int, raw: bytes | str) -> SmtpError:
    words = _words(raw)
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
    return conn


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
         timeout: float = 60.0, secret: str | None = None) -> SendResult:
    """Send ``raw`` through ``account``'s SMTP server to ``rcpts``.

    Raises AuthError (login refused), ConnectError (unreachable; temporary) or SmtpError
    (refused; ``temporary`` / ``throttled`` say whether to retry), each one sentence.
    """
    ep = account.smtp
    who = f"The {account.side} SMTP server"
    if ep is None:
        raise SwitchoverError(f"No SMTP server is configured for the {account.side} account; "
                              f"add {account.side}.smtp (host, port, security) to the config.")
    password = secret if secret is not None else account.secret()
    conn: smtplib.SMTP | None = None
    try:
        try:
            conn = _open(account, timeout)
        except smtplib.SMTPResponseException as e:
            raise _refusal(f"{who} {ep.host}:{ep.port} refused the connection",
                           e.smtp_code, e.smtp_error) from None
        except smtplib.SMTPException as e:
            raise ConnectError(f"{who} {ep.host}:{ep.port}: {e or 'the connection broke'}.") from None
        except OSError as e:
            raise ConnectError(f"{who}: {describe_os_error(ep.host, ep.port, e)}.") from None
        try:
            _login(conn, account, password)
        except smtplib.SMTPAuthenticationError as e:
            words = _words(e.smtp_error)
            if 400 <= e.smtp_code < 500:
                raise _refusal(f"{who} could not check the login for {account.username} now",
                               e.smtp_code, e.smtp_error) from None
            raise AuthError(f"{who} refused the login for {account.username}: {e.smtp_code} "
                            f"{words}; check the username and the password or authorization "
                            f"code.") from None
        except smtplib.SMTPNotSupportedError:
            raise AuthError(f"{who} offers no login method switchover can use "
                            f"({conn.esmtp_features.get('auth', 'none')}).") from None
        options: list[str] = []
        if any(b > 127 for b in raw) and conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if (not mail_from.isascii() or not all(r.isascii() for r in rcpts)) and conn.has_extn("smtputf8"):
            options.append("SMTPUTF8")
        try:
            refused = conn.sendmail(mail_from, rcpts, raw, mail_options=options)
        except smtplib.SMTPRecipientsRefused as e:
            parts = [f"{addr}: {code} {_words(msg)}" for addr, (code, msg) in e.recipients.items()]
            code = min((c for c, _ in e.recipients.values()), default=550)
            temp = all(400 <= c < 500 for c, _ in e.recipients.values())
            words = "; ".join(parts)
            throttled = any(is_throttle(c, _words(m)) for c, m in e.recipients.values())
            kind = ("the server asks to slow down" if throttled
                    else "temporary, will work later" if temp else "permanent")
            raise SmtpError(f"{who} refused the recipient ({words}) ({kind}).", code=code,
                            temporary=temp, throttled=throttled) from None
        except smtplib.SMTPSenderRefused as e:
            raise _refusal(f"{who} refused the sender {mail_from}", e.smtp_code, e.smtp_error) from None
        except smtplib.SMTPDataError as e:
            raise _refusal(f"{who} refused the message", e.smtp_code, e.smtp_error) from None
        except smtplib.SMTPResponseException as e:
            raise _refusal(f"{who} refused", e.smtp_code, e.smtp_error) from None
        accepted = tuple(r for r in rcpts if r not in refused)
        return SendResult(accepted=accepted,
                          refused={a: f"{c} {_words(m)}" for a, (c, m) in refused.items()},
                          response="accepted")
    except smtplib.SMTPServerDisconnected as e:
        raise ConnectError(f"{who} {ep.host}:{ep.port} closed the connection ({e or 'no reason given'}).") from None
    except (socket.timeout, TimeoutError):
        raise ConnectError(f"{who} {ep.host}:{ep.port} did not answer in time.") from None
    except ssl.SSLError as e:
        raise ConnectError(f"{who}: {describe_os_error(ep.host, ep.port, e)}.") from None
    except OSError as e:
        raise ConnectError(f"{who}: {describe_os_error(ep.host, ep.port, e)}.") from None
    finally:
        if conn is not None:
            try:
                conn.quit()
            except Exception:
                try:
                    conn.close()
                except Exception:
                    pass


def is_temporary(exc: BaseException) -> bool:
    """True when trying again later may succeed (network trouble, 4xx, throttling)."""
    if isinstance(exc, AuthError):
        return False
    if isinstance(exc, SmtpError):
        return exc.temporary
    return isinstance(exc, (ConnectError, OSError))
