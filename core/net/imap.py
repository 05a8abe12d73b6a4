"""Opening IMAP connections: TLS, login (password or XOAUTH2), IMAP ID, timeouts,
and turning every way a connection can fail into one sentence for people; plus the
FETCH helpers every job shares (sliced UID FETCH, the header item of a reply).

imapclient is blocking; callers run these functions in worker threads. Trying again
after a dropped connection is core/net/retry.py's job (``reconnect``), not this module's.
"""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
from typing import Any, Iterator

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from ..auth.oauth2 import sign_in_again
from ..config import Account
from ..errors import AuthError, ConnectError, sentence
from ..version import version

CLIENT_ID = {"name": "switchover", "version": version(), "vendor": "switchover",
             "support-url": "https://example.invalid/switchover"}


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
        raise ConnectError(f"The {who}: the connection broke during login ({sentence(e)}).") from None
    try:
        if client.has_capability("ID"):
            # NetEase refuses SELECT ("Unsafe Login") until the client says who it is.
            client.id_(CLIENT_ID)
    except (OSError, IMAPClientError):
        pass
    return client


#: a NO to LOGIN that says "not now" rather than "wrong credentials" (RFC 5530)
_TEMPORARY = re.compile(r"\[(UNAVAILABLE|INUSE|LIMIT)\]", re.I)


def _login_failure(account: Account, e: BaseException) -> ConnectError:
    """What a failed LOGIN / AUTHENTICATE means. imapclient wraps every failure in
    LoginError, a dropped connection and a BYE included; the error it wraps
    (``__context__``) tells them apart. Only a tagged NO (or BAD) answer is the server
    refusing these credentials (AuthError, never retried); a connection that ended during
    login (EOF, reset, BYE) is a ConnectError the callers retry, and so is a NO that says
    the server is unavailable or busy."""
    who = f"{account.side} mailbox"
    cause = e.__context__
    words = sentence(e, named=False)
    if isinstance(cause, (imaplib.IMAP4.abort, OSError, EOFError)):
        return ConnectError(f"The {who}: the connection ended during login ({sentence(cause)}).")
    if _TEMPORARY.search(words):
        return ConnectError(f"The {who} cannot take the login now: {words}.")
    if account.signs_in:        # the token was refused: a new sign-in gives a new one
        return sign_in_again(account.side, f"was refused by the IMAP server ({words})")
    hint = ""
    if "IPDENY" in words.upper():
        hint = " (the administrator must allow logins from this IP address)"
    return AuthError(f"The {who} refused the login for {account.username}: {words}{hint}; "
                     f"check the username and the password or authorization code.")


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


def fetch_chunked(client: imapclient.IMAPClient, uids: list[int], items: list[bytes],
                  chunk: int = 2000) -> Iterator[tuple[int, dict[bytes, Any]]]:
    """UID FETCH of many messages in slices (short command lines, bounded responses)."""
    uids = sorted(uids)
    for i in range(0, len(uids), chunk):
        yield from client.fetch(uids[i:i + chunk], items).items()


def header_item(data: dict[bytes, Any]) -> bytes:
    """The ``BODY[HEADER.FIELDS (...)]`` item of one FETCH reply, whatever order the
    server lists the field names in (pymap sorts them, so the requested key alone is not
    enough)."""
    value = next((v for k, v in data.items() if isinstance(k, bytes)
                  and k.upper().startswith(b"BODY[HEADER.FIELDS")), b"")
    return value or b""
