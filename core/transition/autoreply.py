"""The old mailbox's server-side auto-reply: a small ManageSieve client (RFC 5804) and the
Sieve vacation script (RFC 5230) carrying the short change notice.

``enable`` never destroys the user's own filters: the previously active script is kept
and run from ours (``include :personal`` when the server has the include extension,
else its text is copied in after the vacation), its name is remembered in the
``autoreply`` table, and ``disable`` makes it active again and deletes ours.

Where the server has no ManageSieve (none of the big providers do), ``status`` says so,
with the provider's web-settings steps, and that switchover's in-app reminders answer
senders while it runs. The socket work is blocking and runs in engine worker threads.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import Account, Endpoint
from ..errors import AuthError, ConnectError, SwitchoverError
from ..net.imap import describe_os_error, ssl_context
from ..providers import get_provider
from ..mail.templates import autoreply_notice

if TYPE_CHECKING:
    from ..engine import Engine

SCRIPT_NAME = "switchover"
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
        self.file: Any = None
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
            tls = self.context.wrap_socket(self.sock, server_hostname=self.host)
            self._attach(tls)
            # RFC 5804 2.2: the server sends its capabilities again after TLS
            self.capabilities = self._caps(self.read_response())
        return self.capabilities

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def _line(self) -> bytes:
        line = self.file.readline(1 << 20)
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
                stack[-1].append(self.file.read(n).decode("utf-8", "replace"))
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


# -- the script ---------------------------------------------------------------------------

def sieve_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sieve_text(value: str) -> str:
    """A multi-line ``text:`` string, dot-stuffed (RFC 5228 2.4.2)."""
    lines = [("." + ln if ln.startswith(".") else ln) for ln in value.replace("\r\n", "\n").split("\n")]
    return "text:\n" + "\n".join(lines).rstrip("\n") + "\n.\n"


_REQUIRE = re.compile(r'^\s*require\s+(\[[^\]]*\]|"[^"]*")\s*;', re.M)


def build_script(*, subject: str, body: str, days: int, addresses: list[str], from_addr: str,
                 end: dt.date | None, extensions: set[str], include: str | None = None,
                 wrapped: str | None = None) -> tuple[str, str]:
    """The vacation script and a note on what the server could not do (e.g. end date)."""
    req = ["vacation"]
    note = ""
    use_date = end is not None and {"date", "relational"} <= extensions
    if use_date:
        req += ["date", "relational"]
    elif end is not None:
        note = (f"the server cannot stop the reply by itself on {end.isoformat()} (no Sieve "
                f"date extension); run 'switchover autoreply off' then")
    if include is not None:
        req.append("include")
    head = ["# switchover: the old address's change notice (RFC 5230 vacation).",
            "# 'switchover autoreply off' restores the previous script"
            + (f' "{include or ""}".' if include else ".")]
    vac = (f"vacation :days {max(1, days)} :subject {sieve_string(subject)}\n"
           f"    :from {sieve_string(from_addr)}\n"
           f"    :addresses [{', '.join(sieve_string(a) for a in addresses)}]\n"
           f"    {sieve_text(body)};")
    if use_date:
        assert end is not None
        # no re-indent: it would change the text: lines
        vac = f'if currentdate :value "le" "date" {sieve_string(end.isoformat())} {{\n{vac}\n}}'
    parts: list[str] = []
    if wrapped is not None:
        # the user's requires must stay before any command; merge them into ours
        for m in _REQUIRE.finditer(wrapped):
            for ext in re.findall(r'"([^"]+)"', m.group(1)):
                if ext not in req:
                    req.append(ext)
        rest = _REQUIRE.sub("", wrapped).strip()
    parts.append("\n".join(head))
    parts.append("require [" + ", ".join(sieve_string(r) for r in req) + "];")
    parts.append(vac)
    if include is not None:
        parts.append(f"include :personal {sieve_string(include)};")
    if wrapped is not None and rest:
        parts.append("# the previously active script, copied (the server has no include):\n" + rest)
    return "\n\n".join(parts) + "\n", note


# -- the facet ----------------------------------------------------------------------------

@dataclass(frozen=True)
class AutoReplyStatus:
    supported: bool
    active: bool
    script_name: str | None
    detail: str
    steps: str = ""


def sieve_endpoint(account: Account) -> Endpoint | None:
    """The configured ManageSieve endpoint, else the IMAP host on 4190 for self-hosted
    servers; None for the big providers (none of them offers ManageSieve)."""
    if account.sieve is not None:
        return account.sieve
    if account.provider != "custom":
        return None
    return Endpoint(account.imap.host, SIEVE_PORT,
                    "none" if account.imap.security == "none" else "starttls")


class AutoReply:
    """The ``engine.autoreply`` facet."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine

    def _unsupported(self, why: str) -> AutoReplyStatus:
        acct = self.engine.config.old
        steps = get_provider(acct.provider).autoreply_steps or (
            "In your provider's web mail, look for 'Vacation', 'Out of office' or 'Automatic "
            "reply', switch it on with the notice text and the last day, and save.")
        detail = (f"{why} Set the auto-reply in the provider's web settings instead; while "
                  f"switchover runs, its in-app reminders answer senders of the old address.")
        return AutoReplyStatus(False, False, None, detail, steps)

    def _open(self) -> ManageSieve:
        """Connected and logged in; raises ConnectError / AuthError / SieveError."""
        acct = self.engine.account("old")
        ep = sieve_endpoint(acct)
        assert ep is not None
        client = ManageSieve(ep.host, ep.port, security=ep.security, context=ssl_context(acct))
        try:
            client.connect()
            client.authenticate(acct.username, acct.secret(), oauth2=acct.uses_oauth2)
        except (OSError, ssl.SSLError) as e:
            client.close()
            raise ConnectError(f"ManageSieve on the old server: {describe_os_error(ep.host, ep.port, e)}.") from None
        except BaseException:
            client.close()
            raise
        return client

    async def _last_row(self) -> Any:
        return await self.engine.store.fetchone(
            "SELECT * FROM autoreply WHERE removed IS NULL ORDER BY id DESC LIMIT 1")

    async def status(self) -> AutoReplyStatus:
        acct = self.engine.config.old
        ep = sieve_endpoint(acct)
        if ep is None:
            return self._unsupported(f"{get_provider(acct.provider).label} offers no ManageSieve, "
                                     f"so switchover cannot install the auto-reply itself.")
        try:
            scripts = await self.engine.run_blocking(self._list)
        except (ConnectError, SieveError) as e:
            if isinstance(e, AuthError):
                raise
            return self._unsupported(f"The old server does not offer ManageSieve at "
                                     f"{ep.host}:{ep.port} ({e.message.rstrip('.')}).")
        row = await self._last_row()
        name = row["script_name"] if row else SCRIPT_NAME
        active = dict(scripts).get(name, False)
        if active:
            detail = f"The auto-reply script '{name}' is active on the old server."
            if row and row["detail"]:
                detail += f" Note: {row['detail']}."
        else:
            other = next((n for n, a in scripts if a), None)
            detail = ("The auto-reply is off." + (f" The active script is '{other}'." if other else ""))
        # what the server says is the checklist's evidence, either way
        evidence = (f"Sieve script '{name}' active on {ep.host} ({dt.datetime.now():%Y-%m-%d %H:%M})"
                    if active else "the auto-reply is off on the old server")
        await self.engine.checklist.prove("autoreply", bool(active), evidence)
        return AutoReplyStatus(True, bool(active), name if active else None, detail)

    def _list(self) -> list[tuple[str, bool]]:
        client = self._open()
        try:
            return client.listscripts()
        finally:
            client.logout()

    async def enable(self, *, days: int = 7, end: dt.date | None = None, subject: str | None = None,
                     text: str | None = None) -> AutoReplyStatus:
        acct = self.engine.config.old
        if sieve_endpoint(acct) is None:
            return await self.status()
        cfg = self.engine.config
        ident = cfg.identity
        end = end or cfg.transition.close_date
        notice = autoreply_notice(ident, end)
        row = await self._last_row()
        remembered = row["previous_active"] if row else None
        try:
            previous, note = await self.engine.run_blocking(
                self._install, subject or notice.subject, text or notice.body, days, end,
                row is not None, remembered)
        except (ConnectError, SieveError) as e:
            if isinstance(e, AuthError):
                raise
            st = await self.status()
            if not st.supported:
                return st
            raise
        now = time.time()
        if row is None:
            await self.engine.store.execute(
                "INSERT INTO autoreply (installed, script_name, previous_active, detail) VALUES (?, ?, ?, ?)",
                (now, SCRIPT_NAME, previous, note))
        else:
            await self.engine.store.execute(
                "UPDATE autoreply SET installed=?, detail=? WHERE id=?", (now, note, row["id"]))
        return await self.status()

    def _install(self, subject: str, body: str, days: int, end: dt.date | None,
                 known: bool, remembered: str | None) -> tuple[str | None, str]:
        ident = self.engine.config.identity
        client = self._open()
        try:
            scripts = client.listscripts()
            active = next((n for n, a in scripts if a), None)
            # re-enabling keeps the script that was active before our first install
            previous = remembered if (known or active == SCRIPT_NAME) else active
            if previous == SCRIPT_NAME:
                previous = None
            if previous is not None and previous not in dict(scripts):
                previous = None
            exts = client.extensions
            include = wrapped = None
            if previous is not None:
                if "include" in exts:
                    include = previous
                else:
                    wrapped = client.getscript(previous)
            from_addr = f'"{ident.name}" <{ident.old_address}>' if ident.name.isascii() else ident.old_address
            addresses = sorted({ident.old_address, *( [self.engine.config.old.username]
                                                     if "@" in self.engine.config.old.username else [])})
            script, note = build_script(subject=subject, body=body, days=days, addresses=addresses,
                                        from_addr=from_addr, end=end, extensions=exts,
                                        include=include, wrapped=wrapped)
            try:
                client.checkscript(script)
            except SieveError as e:
                if wrapped is None:
                    raise
                # the copied script does not combine; keep the user's script untouched
                # and install the vacation alone, saying so
                script, note2 = build_script(subject=subject, body=body, days=days, addresses=addresses,
                                             from_addr=from_addr, end=end, extensions=exts)
                note = "; ".join(x for x in (note2, f"your script '{previous}' could not be combined "
                                             f"with the vacation ({e.message}) and is paused until "
                                             f"'autoreply off'") if x)
            client.putscript(SCRIPT_NAME, script)
            client.setactive(SCRIPT_NAME)
            return previous, note
        finally:
            client.logout()

    async def disable(self) -> AutoReplyStatus:
        acct = self.engine.config.old
        if sieve_endpoint(acct) is None:
            return await self.status()
        row = await self._last_row()
        previous = row["previous_active"] if row else None
        await self.engine.run_blocking(self._remove, previous)
        if row is not None:
            await self.engine.store.execute("UPDATE autoreply SET removed=? WHERE id=?", (time.time(), row["id"]))
        return await self.status()

    def _remove(self, previous: str | None) -> None:
        client = self._open()
        try:
            scripts = dict(client.listscripts())
            if previous and previous in scripts:
                client.setactive(previous)
            elif scripts.get(SCRIPT_NAME):
                client.setactive("")
            if SCRIPT_NAME in scripts:
                client.deletescript(SCRIPT_NAME)
        finally:
            client.logout()
