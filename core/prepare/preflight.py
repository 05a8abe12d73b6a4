"""``engine.preflight``: the check before the switch (``switchover check``, ``c`` in the
dashboard's checklist). It logs in over IMAP and SMTP on both sides (never sending),
reads the capabilities that matter, measures whether the old mail fits into the new
mailbox, sends the round trip of test messages, looks up the new domain's DNS and reads
the new address as a customer would — then hands back a ``Report`` of findings
(core/prepare/records.py) and publishes the checklist proofs it earned:

- ``login_old`` / ``login_new``: the IMAP logins (as ``check`` always proved them);
- ``setup``: the new domain's DNS has no failure and nothing that could not be checked;
- ``sendtest``: every leg of the round trip arrived in an inbox.

Beside the logins, a note that never blocks when an account's way of signing in has
better advice (core/auth/advice.py: Google OAuth2 on a personal Gmail address).

One preflight runs at a time per state file (``JobLock(state, "preflight")``): a second
key press or a second ``switchover check`` is refused while test messages are on their
way. The last report is kept in the settings table (``preflight:last``) for the faces.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from ..auth.advice import sign_in_advice
from ..config import Config
from ..context import Accounts, Blocking
from ..errors import ConnectError, sentence
from ..events import EventBus, Proven
from ..joblock import JobLock
from ..store import Store
from . import address, dns, servers
from .probe import imap_probe, sieve_probe, smtp_probe
from .records import NOT_RUN, OK, WARN, Finding, Report
from .roundtrip import SECTION as ROUND_TRIP, RoundTrip

LAST = "preflight:last"
DEFAULT_TIMEOUT = 120.0


class Preflight:
    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config) -> None:
        self.store = store
        self.bus = bus
        self.accounts = accounts
        self.blocking = blocking
        self.config = config
        self.roundtrip = RoundTrip(store, accounts, blocking, config)

    async def run(self, *, send: bool = True, timeout: float = DEFAULT_TIMEOUT,
                  poll: float = 0.5) -> Report:
        """Every check; raises JobBusy (exit 4) while another preflight runs."""
        lock = JobLock(self.config.state, "preflight").acquire()
        try:
            return await self._run(send, timeout, poll)
        finally:
            lock.release()

    async def last(self) -> Report | None:
        data = await self.store.get_setting(LAST)
        return Report.from_dict(data) if isinstance(data, dict) else None

    async def _run(self, send: bool, timeout: float, poll: float) -> Report:
        started = time.time()
        acct = self.accounts.account
        old_imap, new_imap, old_smtp, new_smtp, sieve = await asyncio.gather(
            self.blocking.run(imap_probe, acct("old"), sizes=True, quota=False),
            self.blocking.run(imap_probe, acct("new"), sizes=False, quota=True),
            self.blocking.run(smtp_probe, acct("old")),
            self.blocking.run(smtp_probe, acct("new")),
            self.blocking.run(sieve_probe, acct("old")))
        findings: list[Finding] = []
        findings += servers.login_findings(old_imap, old_smtp, self.config)
        findings += servers.login_findings(new_imap, new_smtp, self.config)
        findings += sign_in_notes(self.config)
        await self._prove_logins(findings, {"old": old_imap.caps, "new": new_imap.caps})
        findings += servers.capability_findings(old_imap, old_smtp, sieve, self.config)
        findings += servers.capability_findings(new_imap, new_smtp, None, self.config)
        findings += servers.fit_findings(old_imap, new_imap, new_smtp, self.config)

        can_send = {"old": old_smtp.proof is not None, "new": new_smtp.proof is not None}
        can_read = {"old": old_imap.logged_in, "new": new_imap.logged_in}
        dns_job = asyncio.ensure_future(self._dns())
        if send:
            trip = await self.roundtrip.run(timeout=timeout, can_send=can_send, can_read=can_read, poll=poll)
        else:
            trip = [Finding("roundtrip", ROUND_TRIP, "round trip", WARN, "not tested (--no-send)",
                            "Nothing proves that the new mailbox sends and receives.",
                            "Run 'switchover check' without --no-send before telling customers.",
                            blocks=False)]
        findings += trip + await dns_job + address.check_address(self.config)

        login_failed = any(isinstance(p.error, ConnectError) for p in (old_imap, new_imap, old_smtp, new_smtp))
        report = Report(tuple(findings), started, time.time() - started, login_failed=login_failed)
        await self._prove(report, send)
        await self.store.set_setting(LAST, report.as_dict())
        await self.bus.drain()           # the proofs are recorded when this returns
        return report

    async def _dns(self) -> list[Finding]:
        try:
            return await self.blocking.run(dns.check_domain, self.config)
        except Exception as e:        # an unexpected resolver failure: not run, never a pass
            return [Finding("dns", dns.SECTION, "DNS", NOT_RUN, sentence(e),
                            "Not known whether receivers accept mail from the new address.",
                            "Check the network or dns.nameservers, then run the check again.")]

    async def _prove_logins(self, findings: list[Finding], caps: dict[str, set[str]]) -> None:
        for f in findings:
            if f.name in ("login.old.imap", "login.new.imap"):
                side = f.label
                now = f"{dt.datetime.now():%Y-%m-%d %H:%M}"
                ok = f.verdict == OK
                self.bus.publish(Proven(f"login_{side}", ok, f.found if ok else f"{now}: {f.found}"))
                if ok:
                    await self.store.set_setting(f"capabilities:{side}", sorted(caps[side]))

    async def _prove(self, report: Report, send: bool) -> None:
        now = f"{dt.datetime.now():%Y-%m-%d %H:%M}"
        found = report.section(dns.SECTION)
        ok = bool(found) and all(f.verdict in (OK, WARN) for f in found)
        words = ", ".join(f"{f.label} {f.word}" for f in found)
        domain = self.config.identity.new_address.rsplit("@", 1)[-1]
        self.bus.publish(Proven("setup", ok, f"DNS of {domain}: {words} ({now})"))
        if send:
            legs = report.section(ROUND_TRIP)
            arrived = [f for f in legs if f.name.startswith("roundtrip.") and f.name != "roundtrip.earlier"]
            ok = bool(arrived) and all(f.verdict == OK for f in arrived)
            words = "; ".join(f"{f.label.split(' (')[0]} {f.word}: {f.found}" for f in arrived)
            self.bus.publish(Proven("sendtest", ok, f"{words} ({now})"))


def sign_in_notes(config: Config) -> list[Finding]:
    """A "warn" that never blocks per account whose sign-in has advice (``signin.<side>``)."""
    out: list[Finding] = []
    for side in ("old", "new"):
        account = config.account(side)
        advice = sign_in_advice(account)
        if advice:
            how = f"{account.oauth2.provider.title()} OAuth2" if account.oauth2 else account.auth
            out.append(Finding(f"signin.{side}", "Logins", f"{side} sign-in", WARN,
                               f"{account.username} signs in with {how}",
                               "Nothing blocks the switch; a simpler way to sign in exists.",
                               advice, blocks=False))
    return out
