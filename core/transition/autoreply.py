"""The old mailbox's server-side auto-reply: the Sieve vacation script (RFC 5230)
carrying the short change notice, installed over ManageSieve (core/net/sieve.py).

``enable`` never destroys the user's own filters: the previously active script is kept
and run from ours (``include :personal`` when the server has the include extension,
else its text is copied in after the vacation), its name is remembered in the
``autoreply`` table (the only SQL on it is here), and ``disable`` makes it active again
and deletes ours. What the server says is the checklist's evidence: ``status`` publishes
a ``Proven("autoreply", ...)`` event.

Where the server has no ManageSieve (none of the big providers do), ``status`` says so,
with the provider's web-settings steps, and that switchover's in-app reminders answer
senders while it runs. The socket work is blocking and runs in worker threads.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..context import Accounts, Blocking
from ..errors import AuthError, ConnectError, SwitchoverError
from ..events import EventBus, Proven
from ..mail.templates import autoreply_notice
from ..net.sieve import ManageSieve, SieveError, login, sieve_endpoint
from ..providers import get_provider
from ..store import Store

SCRIPT_NAME = "switchover"


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


class AutoReply:
    """``engine.autoreply``."""

    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config) -> None:
        self.store, self.bus, self.accounts, self.blocking, self.config = store, bus, accounts, blocking, config

    def _unsupported(self, why: str) -> AutoReplyStatus:
        steps = get_provider(self.config.old.provider).autoreply_steps or (
            "In your provider's web mail, look for 'Vacation', 'Out of office' or 'Automatic "
            "reply', switch it on with the notice text and the last day, and save.")
        detail = (f"{why} Set the auto-reply in the provider's web settings instead; while "
                  f"switchover runs, its in-app reminders answer senders of the old address.")
        return AutoReplyStatus(False, False, None, detail, steps)

    def _open(self) -> ManageSieve:
        """Connected and logged in; raises ConnectError / AuthError / SieveError."""
        account = self.accounts.account("old")
        endpoint = sieve_endpoint(account)
        assert endpoint is not None
        return login(account, endpoint)

    async def _last_row(self) -> Any:
        return await self.store.fetchone("SELECT * FROM autoreply WHERE removed IS NULL ORDER BY id DESC LIMIT 1")

    async def status(self) -> AutoReplyStatus:
        """What the old server says; its answer is the checklist's evidence (Proven)."""
        acct = self.config.old
        ep = sieve_endpoint(acct)
        if ep is None:
            return self._unsupported(f"{get_provider(acct.provider).label} offers no ManageSieve, "
                                     f"so switchover cannot install the auto-reply itself.")
        try:
            scripts = await self.blocking.run(self._list)
        except (ConnectError, SieveError) as e:
            if isinstance(e, AuthError):
                raise
            return self._unsupported(f"The old server does not offer ManageSieve at "
                                     f"{ep.host}:{ep.port} ({e.message.rstrip('.')}).")
        row = await self._last_row()
        name = row["script_name"] if row else SCRIPT_NAME
        active = bool(dict(scripts).get(name, False))
        if active:
            detail = f"The auto-reply script '{name}' is active on the old server."
            if row and row["detail"]:
                detail += f" Note: {row['detail']}."
        else:
            other = next((n for n, a in scripts if a), None)
            detail = "The auto-reply is off." + (f" The active script is '{other}'." if other else "")
        # what the server says is the checklist's evidence, either way
        evidence = (f"Sieve script '{name}' active on {ep.host} ({dt.datetime.now():%Y-%m-%d %H:%M})"
                    if active else "the auto-reply is off on the old server")
        self.bus.publish(Proven("autoreply", active, evidence))
        return AutoReplyStatus(True, active, name if active else None, detail)

    def _list(self) -> list[tuple[str, bool]]:
        client = self._open()
        try:
            return client.listscripts()
        finally:
            client.logout()

    async def enable(self, *, days: int = 7, end: dt.date | None = None, subject: str | None = None,
                     text: str | None = None) -> AutoReplyStatus:
        if sieve_endpoint(self.config.old) is None:
            return await self.status()
        end = end or self.config.transition.close_date
        if end is not None and end < dt.date.today():
            raise SwitchoverError(f"transition.close_date is {end}, in the past: an auto-reply ending "
                                  f"then would never answer; set the real closing date in the config "
                                  f"first.", exit_code=2)
        notice = autoreply_notice(self.config.identity, end)
        row = await self._last_row()
        remembered = row["previous_active"] if row else None
        try:
            previous, note = await self.blocking.run(
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
            await self.store.run(
                "INSERT INTO autoreply (installed, script_name, previous_active, detail) VALUES (?, ?, ?, ?)",
                (now, SCRIPT_NAME, previous, note))
        else:
            await self.store.run("UPDATE autoreply SET installed=?, detail=? WHERE id=?", (now, note, row["id"]))
        return await self.status()

    def _install(self, subject: str, body: str, days: int, end: dt.date | None,
                 known: bool, remembered: str | None) -> tuple[str | None, str]:
        ident = self.config.identity
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
            username = self.config.old.username
            addresses = sorted({ident.old_address, *([username] if "@" in username else [])})
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
        if sieve_endpoint(self.config.old) is None:
            return await self.status()
        row = await self._last_row()
        previous = row["previous_active"] if row else None
        await self.blocking.run(self._remove, previous)
        if row is not None:
            await self.store.run("UPDATE autoreply SET removed=? WHERE id=?", (time.time(), row["id"]))
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
