"""A small blocking ManageSieve client (RFC 5804): connect (TLS or STARTTLS), log in
(PLAIN, OAUTHBEARER, XOAUTH2), list, read, check, store, activate and delete scripts;
and where an account's ManageSieve server is. The auto-reply facet
(core/transition/autoreply.py) drives it from worker threads.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..config import Account, Endpoint
from ..errors import AuthError, ConnectError, SwitchoverError
from .imap import describe_os_error, ssl_context

SIEVE_PORT = 4190


class SieveError(SwitchoverError):
    """The ManageSieve server answered NO / BYE; ``code`` is its response code."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class Atom(str):
    """An unquoted token in a response (OK, NO, ACTIVE ...)."""


@dataclass(frozen=True)
class Response:
    status: str                      # OK | NO | BYE
    code: str                        # response code text, e.g. "NONEXISTENT", "SASL ..."
    text: str
    lines: list[list[Any]]           # untagged lines before it, as token lists


def quote(value: str) -> bytes:
    """A ManageSieve string: quoted when plain ASCII, else a non-synchronizing literal."""
    raw = value.encode("utf-8")
    if value.isascii() and "\r" not in value and "\n" not in value and len(raw) < 1000:
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d+}\r\n" % len(raw) + raw


class ManageSieve:
    """A blocking ManageSieve connection: ``connect`` → ``authenticate`` → commands."""

    def __init__(self, host: str, port: int, *, security: str = "starttls", timeout: float = 15.0,
                 context: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.security, self.timeout = host, port, security, timeout
        self.context = context or ssl.create_default_context()
        self.sock: socket.socket | None = None
        self.file: BinaryIO | None = None
        self.capabilities: dict[str, str] = {}

    # -- wire ----------------------------------------------------------------------------
    def _attach(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def connect(self) -> dict[str, str]:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        if self.security == "ssl":
            sock = self.context.wrap_socket(sock, server_hostname=self.host)
        self._attach(sock)
        self.capabilities = self._caps(self.read_response())
        if self.security != "none" and self.security != "ssl":
            if "STARTTLS" not in self.capabilities:
                raise ConnectError(f"The ManageSieve server {self.host}:{self.port} does not offer "
                                   f"STARTTLS; set sieve.security to ssl or none.")
            self.command(b"STARTTLS")
            tls = self.context.wrap_socket(sock, server_hostname=self.host)
            self._attach(tls)
            # RFC 5804 2.2: the server sends its capabilities again after TLS
            self.capabilities = self._caps(self.read_response())
        return self.capabilities

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def _reader(self) -> BinaryIO:
        if self.file is None:
            raise ConnectError(f"The ManageSieve connection to {self.host}:{self.port} is closed.")
        return self.file

    def _line(self) -> bytes:
        line = self._reader().readline(1 << 20)
        if not line:
            raise ConnectError(f"The ManageSieve server {self.host}:{self.port} closed the connection.")
        return line

    def _tokens(self) -> list[Any]:
        """One response line as tokens: Atom, str (quoted or literal), list (parens)."""
        line = self._line()
        stack: list[list[Any]] = [[]]
        i = 0
        while True:
            while i < len(line) and line[i:i + 1] in (b" ", b"\t"):
                i += 1
            if i >= len(line) or line[i:i + 1] in (b"\r", b"\n"):
                break
            c = line[i:i + 1]
            if c == b'"':
                j, out = i + 1, bytearray()
                while j < len(line) and line[j:j + 1] != b'"':
                    if line[j:j + 1] == b"\\":
                        j += 1
                    out += line[j:j + 1]
                    j += 1
                stack[-1].append(out.decode("utf-8", "replace"))
                i = j + 1
            elif c == b"{":
                m = re.match(rb"\{(\d+)\+?\}\r?\n", line[i:])
                if not m:
                    raise ConnectError(f"The ManageSieve server sent a malformed literal: {line[:80]!r}.")
                n = int(m.group(1))
                stack[-1].append(self._reader().read(n).decode("utf-8", "replace"))
                line, i = self._line(), 0
            elif c == b"(":
                stack.append([])
                i += 1
            elif c == b")":
                inner = stack.pop() if len(stack) > 1 else []
                stack[-1].append(inner)
                i += 1
            else:
                m = re.match(rb'[^\s()"{]+', line[i:])
                assert m
                stack[-1].append(Atom(m.group(0).decode("utf-8", "replace")))
                i += len(m.group(0))
        return stack[0]

    def read_response(self) -> Response:
        lines: list[list[Any]] = []
        while True:
            toks = self._tokens()
            if toks and isinstance(toks[0], Atom) and toks[0].upper() in ("OK", "NO", "BYE"):
                code, text = "", ""
                for t in toks[1:]:
                    if isinstance(t, list):
                        code = " ".join(str(x) for x in t)
                    elif isinstance(t, str):
                        text = str(t)
                return Response(toks[0].upper(), code, text, lines)
            lines.append(toks)

    def command(self, *parts: bytes, what: str = "") -> Response:
        self.send(b" ".join(parts) + b"\r\n")
        resp = self.read_response()
        if resp.status != "OK":
            verb = parts[0].decode()
            words = resp.text or resp.code or resp.status
            code = f" [{resp.code}]" if resp.code else ""
            raise SieveError(f"The ManageSieve server refused {what or verb}: {words}{code}.",
                             resp.code.split(" ")[0] if resp.code else "")
        return resp

    @staticmethod
    def _caps(resp: Response) -> dict[str, str]:
        caps: dict[str, str] = {}
        for toks in resp.lines:
            if toks:
                caps[str(toks[0]).upper()] = str(toks[1]) if len(toks) > 1 else ""
        return caps

    # -- commands ------------------------------------------------------------------------
    @property
    def extensions(self) -> set[str]:
        return set(self.capabilities.get("SIEVE", "").lower().split())

    @property
    def sasl(self) -> set[str]:
        return set(self.capabilities.get("SASL", "").upper().split())

    def authenticate(self, username: str, secret: str, *, oauth2: bool = False) -> None:
        if oauth2 and "OAUTHBEARER" in self.sasl:
            mech, ir = "OAUTHBEARER", f"n,a={username},\x01auth=Bearer {secret}\x01\x01"
        elif oauth2 and "XOAUTH2" in self.sasl:
            mech, ir = "XOAUTH2", f"user={username}\x01auth=Bearer {secret}\x01\x01"
        else:
            mech, ir = "PLAIN", f"\x00{username}\x00{secret}"
        if self.sasl and mech not in self.sasl:
            raise AuthError(f"The ManageSieve server offers no login method switchover can use "
                            f"({' '.join(sorted(self.sasl))}).")
        self.send(b'AUTHENTICATE "' + mech.encode() + b'" "' + base64.b64encode(ir.encode()) + b'"\r\n')
        while True:
            toks = self._tokens()
            if toks and isinstance(toks[0], Atom) and toks[0].upper() in ("OK", "NO", "BYE"):
                break
            # an OAuth error challenge: answer with an empty response, then read NO
            self.send(b'""\r\n')
        status = toks[0].upper()
        if status != "OK":
            words = next((str(t) for t in toks[1:] if isinstance(t, str)), status)
            raise AuthError(f"The ManageSieve server refused the login for {username}: {words.rstrip('.')}.")

    def listscripts(self) -> list[tuple[str, bool]]:
        resp = self.command(b"LISTSCRIPTS")
        out = []
        for toks in resp.lines:
            if toks:
                active = any(isinstance(t, Atom) and t.upper() == "ACTIVE" for t in toks[1:])
                out.append((str(toks[0]), active))
        return out

    def active_script(self) -> str | None:
        return next((n for n, a in self.listscripts() if a), None)

    def getscript(self, name: str) -> str:
        resp = self.command(b"GETSCRIPT", quote(name), what=f"to read the script {name}")
        for toks in resp.lines:
            if toks:
                return str(toks[0])
        return ""

    def checkscript(self, content: str) -> None:
        self.command(b"CHECKSCRIPT", quote_literal(content), what="the script")

    def putscript(self, name: str, content: str) -> None:
        self.command(b"PUTSCRIPT", quote(name), quote_literal(content), what=f"to store the script {name}")

    def setactive(self, name: str) -> None:
        self.command(b"SETACTIVE", quote(name), what=f"to activate {name or 'no script'}")

    def deletescript(self, name: str) -> None:
        self.command(b"DELETESCRIPT", quote(name), what=f"to delete the script {name}")

    def logout(self) -> None:
        try:
            self.send(b"LOGOUT\r\n")
            self.read_response()
        except Exception:
            pass
        self.close()

    def close(self) -> None:
        for obj in (self.file, self.sock):
            try:
                if obj is not None:
                    obj.close()
            except Exception:
                pass
        self.file = self.sock = None


def quote_literal(value: str) -> bytes:
    raw = value.encode("utf-8")
    return b"{%d+}\r\n" % len(raw) + raw


def sieve_endpoint(account: Account) -> Endpoint | None:
    """The configured ManageSieve endpoint, else the IMAP host on 4190 for self-hosted
    servers; None for the big providers (none of them offers ManageSieve)."""
    if account.sieve is not None:
        return account.sieve
    if account.provider != "custom":
        return None
    return Endpoint(account.imap.host, SIEVE_PORT,
                    "none" if account.imap.security == "none" else "starttls")


def login(account: Account, endpoint: Endpoint) -> ManageSieve:
    """Connected and logged in; raises ConnectError / AuthError / SieveError."""
    client = ManageSieve(endpoint.host, endpoint.port, security=endpoint.security,
                         context=ssl_context(account))
    try:
        client.connect()
        client.authenticate(account.username, account.secret(), oauth2=account.uses_oauth2)
    except (OSError, ssl.SSLError) as e:
        client.close()
        raise ConnectError(f"ManageSieve on the old server: "
                           f"{describe_os_error(endpoint.host, endpoint.port, e)}.") from None
    except BaseException:
        client.close()
        raise
    return client
