"""Opening IMAP connections: TLS, login (password or XOAUTH2), IMAP ID, timeouts,
and turning every way a connection can fail into one sentence for people.

imapclient is blocking; callers run these functions in worker threads.
"""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
import time
from typing import Callable, TypeVar

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from ..config import Account
from ..errors import AuthError, ConnectError, ThrottledError

T = TypeVar("T")

CLIENT_ID = {"name": "switchover", "version": "0.1.0", "vendor": "switchover",
             "support-url": "https://example.invalid/switchover"}

_THROTTLE = re.compile(rb"throttl|\[LIMIT\]|\[UNAVAILABLE\]|too many|rate limit|try again later|"
                       rb"bandwidth|System Error", re.I)
_RETRY_AFTER = re.compile(rb"(?:backoff|retry)[^0-9]{0,20}(\d+)", re.I)


def ssl_context(account: Account) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not account.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def describe_os_error(host: str, port: int, exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot find the host {host} (DNS lookup failed); check the host name and the network"
    if isinstance(exc, ConnectionRefusedError):
        return f"{host}:{port} refused the connection; check the port and security settings"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"{host}:{port} did not answer in time"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"the TLS certificate of {host} is not trusted ({exc.verify_message}); "
                f"fix the server's certificate or set tls_verify: false")
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {host}:{port} failed ({exc.reason}); check 'security' (ssl or starttls) and the port"
    return f"cannot connect to {host}:{port} ({exc})"


def connect(account: Account, *, timeout: float = 60.0, secret: str | None = None) -> imapclient.IMAPClient:
    """Connect and log in; raises AuthError / ConnectError with a one-sentence message."""
    ep = account.imap
    who = f"{account.side} mailbox"
    try:
        client = imapclient.IMAPClient(
            ep.host, port=ep.port, use_uid=True, ssl=ep.security == "ssl",
            ssl_context=ssl_context(account) if ep.security == "ssl" else None,
            timeout=timeout)
        if ep.security == "starttls":
            client.starttls(ssl_context(account))
    except (OSError, IMAPClientError) as e:
        raise ConnectError(f"The {who}: {describe_os_error(ep.host, ep.port, e)}.") from None
    password = secret if secret is not None else account.secret()
    try:
        if account.uses_oauth2:
            client.oauth2_login(account.username, password)
        else:
            client.login(account.username, password)
    except LoginError as e:
        _safe_logout(client)
        raise _login_failure(account, e) from None
    except (OSError, IMAPClientError) as e:
        _safe_logout(client)
        raise ConnectError(f"The {who}: the connection broke during login ({_words(e)}).") from None
    try:
        if client.has_capability("ID"):
            # NetEase refuses SELECT ("Unsafe Login") until the client says who it is.
            client.id_(CLIENT_ID)
    except (OSError, IMAPClientError):
        pass
    return client


#: a NO to LOGIN that says "not now" rather than "wrong credentials" (RFC 5530)
_TEMPORARY = re.compile(r"\[(UNAVAILABLE|INUSE|LIMIT)\]", re.I)


def _login_failure(account: Account, e: LoginError) -> ConnectError:
    """What a failed LOGIN / AUTHENTICATE means. imapclient wraps every failure in
    LoginError, a dropped connection and a BYE included; the error it wraps
    (``__context__``) tells them apart. Only a tagged NO (or BAD) answer is the server
    refusing these credentials (AuthError, never retried); a connection that ended during
    login (EOF, reset, BYE) is a ConnectError the callers retry, and so is a NO that says
    the server is unavailable or busy."""
    who = f"{account.side} mailbox"
    cause = e.__context__
    words = _words(e)
    if isinstance(cause, (imaplib.IMAP4.abort, OSError, EOFError)):
        return ConnectError(f"The {who}: the connection ended during login ({_words(cause)}).")
    if _TEMPORARY.search(words):
        return ConnectError(f"The {who} cannot take the login now: {words}.")
    hint = ""
    if "IPDENY" in words.upper():
        hint = " (the administrator must allow logins from this IP address)"
    return AuthError(f"The {who} refused the login for {account.username}: {words}{hint}; "
                     f"check the username and the password or authorization code.")


def _words(e: BaseException) -> str:
    text = str(e)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return text.strip().rstrip(".") or e.__class__.__name__


def _safe_logout(client: imapclient.IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass


def close(client: imapclient.IMAPClient | None) -> None:
    if client is not None:
        _safe_logout(client)


def is_throttle(exc: BaseException) -> bool:
    raw = str(exc).encode(errors="replace")
    return bool(_THROTTLE.search(raw))


def retry_after(exc: BaseException, default: float) -> float:
    m = _RETRY_AFTER.search(str(exc).encode(errors="replace"))
    if m:
        value = int(m.group(1))
        return value / 1000 if value > 1000 else float(value)
    return default


def is_connection_error(exc: BaseException) -> bool:
    """True when the connection is gone and a new one should be opened."""
    if isinstance(exc, (OSError, EOFError, imapclient.IMAPClient.AbortError)):
        return True
    if isinstance(exc, ThrottledError):
        return True
    return is_throttle(exc)


class Backoff:
    """Exponential backoff with a cap: 1, 2, 4, ... up to ``cap`` seconds."""

    def __init__(self, first: float = 1.0, cap: float = 120.0) -> None:
        self.first = first
        self.cap = cap
        self.delay = first

    def next(self) -> float:
        d = self.delay
        self.delay = min(self.cap, self.delay * 2)
        return d

    def reset(self) -> None:
        self.delay = self.first


def with_reconnect(account: Account, work: Callable[[imapclient.IMAPClient], T], *,
                   attempts: int = 6, on_state: Callable[[str, str], None] | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``work`` on a fresh connection, reconnecting with backoff when it drops or the
    server throttles. Auth errors are not retried."""
    backoff = Backoff()
    last: BaseException | None = None
    for _ in range(attempts):
        client = None
        try:
            client = connect(account)
            if on_state:
                on_state("connected", "")
            result = work(client)
            close(client)
            return result
        except AuthError:
            if on_state:
                on_state("auth failed", "")
            raise
        except ConnectError as e:
            last = e
        except Exception as e:
            if not is_connection_error(e):
                close(client)
                raise
            last = e
        close(client)
        delay = retry_after(last, backoff.next()) if last and is_throttle(last) else backoff.next()
        if on_state:
            on_state("reconnecting", str(last))
        sleep(delay)
    assert last is not None
    if isinstance(last, ConnectError):
        raise last
    raise ConnectError(f"The {account.side} mailbox kept dropping the connection ({last}).")


def connect_retrying(account: Account, *, attempts: int = 4, timeout: float = 60.0,
                     on_retry: Callable[[str], None] | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> imapclient.IMAPClient:
    """``connect`` that tries again (0.5, 1, 2 s apart) when the connection fails or ends
    during login; a refused login (AuthError) is raised at once."""
    backoff = Backoff(first=0.5, cap=10)
    for attempt in range(attempts):
        try:
            return connect(account, timeout=timeout)
        except AuthError:
            raise
        except ConnectError as e:
            if attempt == attempts - 1:
                raise
            if on_retry is not None:
                on_retry(e.message)
            sleep(retry_after(e, backoff.next()) if is_throttle(e) else backoff.next())
    raise AssertionError("unreachable")


def fetch_header_fields(client: imapclient.IMAPClient, uids: list[int],
                        fields: bytes) -> dict[int, tuple[bytes, object]]:
    """``UID FETCH`` of a ``BODY.PEEK[HEADER.FIELDS (...)]`` item plus INTERNALDATE:
    {uid: (header block, internal date)}; nothing is marked \\Seen."""
    data = client.fetch(uids, [fields, b"INTERNALDATE"])
    out: dict[int, tuple[bytes, object]] = {}
    for uid, item in data.items():
        header = next((v for k, v in item.items() if isinstance(k, bytes) and k.startswith(b"BODY[")), b"")
        out[uid] = (header or b"", item.get(b"INTERNALDATE"))
    return out
