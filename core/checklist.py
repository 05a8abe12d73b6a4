"""The four phases' checklist: items, the seed's advice, ticks, notes, due dates, and the
items the engine proves itself (with evidence a person can read).

A person ticks the items only they can know about. Items the engine can prove (logins
work, backup verified, migration verified, auto-reply active, every arrival handled) are
ticked by the engine from recorded proofs; a person cannot tick them into a state the
proof does not support.

Login proofs and later failures. A successful login proves "the login works" with the
server's own answer. An *explicit* check that fails (``switchover check``, ``e`` in the
dashboard) takes the proof back: the person asked, the server said no. A failure the
person did not ask for — the dashboard's login at start, with a password typed (or
mistyped) into its prompt — only adds a note to the evidence ("last attempt … failed:
…") and leaves the proof standing: a typo in a prompt says nothing about the account,
and the status line already shows the refused login. The next explicit check decides.

Proofs from other facets. A facet that proves something (the migration, a verified
backup, the auto-reply) publishes a ``Proven`` event; this facet subscribes and records
it by the rules above (``record``). A failure about one ``subject`` (a backup directory)
takes back only a proof about that same subject: a failed check of some other backup
says nothing about the one that proved the item. The arrivals proof asks the arrivals'
owner for its tally (``ArrivalTally``); no other facet's table is read here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import Protocol

from .config import Config
from .context import Accounts, Blocking
from .errors import SwitchoverError
from .events import ChecklistChanged, Event, EventBus, Proven
from .net import imap
from .store import Store


@dataclass(frozen=True)
class ItemSpec:
    key: str
    phase: int
    title: str
    advice: str
    provable: bool = False
    proof_hint: str = ""
    dated: bool = False
    #: provable, and a person may still tick or skip it (a letter written elsewhere)
    by_hand: bool = False


PHASES = {
    1: "Internal request and preparation (内部申请与准备)",
    2: "Data migration (新旧邮箱数据迁移)",
    3: "Notify and switch (对外通知与切换)",
    4: "Wrap-up and maintenance (收尾与维护)",
}

ITEMS: tuple[ItemSpec, ...] = (
    ItemSpec("request", 1, "Change request letter (申请书)",
             "Argue from business needs, not complaints: capacity (inquiries bounce when the old "
             "mailbox is full), security (customer data and contracts), features (automation, "
             "customer management). Propose the provider, the new address, a plan and a timeline, "
             "and close by politely asking for approval and guidance. 'switchover letter' (or l "
             "here) writes one from the measured mailbox, in Chinese or English.", dated=True,
             provable=True, by_hand=True,
             proof_hint="the engine ticks this when 'switchover letter --out FILE' writes the letter; "
                        "a letter written elsewhere can be ticked by hand"),
    ItemSpec("approval", 1, "Approval from the company",
             "Get the written approval before touching anything technical.", dated=True),
    ItemSpec("service", 1, "New service chosen",
             "Compare capacity, anti-spam and delivery to your customers' countries; a company "
             "domain (sales@company.com) looks more trustworthy than company12345@service.com."),
    ItemSpec("login_old", 1, "Old mailbox login works (IMAP)",
             "switchover logs in to the old mailbox over IMAP; on QQ / 163 / Exmail use the "
             "authorization code (授权码), not the web password.", provable=True,
             proof_hint="the engine ticks this after a successful login to the old mailbox"),
    ItemSpec("login_new", 1, "New mailbox login works (IMAP)",
             "The new mailbox must accept IMAP logins before anything is copied into it.",
             provable=True, proof_hint="the engine ticks this after a successful login to the new mailbox"),
    ItemSpec("setup", 1, "New mailbox fully set up",
             "Signature, auto-reply text, folders (e.g. 历史邮件-2025年前) and rules are ready "
             "before you switch — don't switch into an empty, unconfigured mailbox.",
             provable=True, proof_hint="the engine ticks this when 'switchover check' finds the new "
                                       "domain's DNS (MX, SPF, DKIM, DMARC) without a failure"),
    ItemSpec("security", 1, "Strong password and two-factor authentication",
             "A long unique password and 2FA on the new account from day one."),
    ItemSpec("sendtest", 1, "Test sending and receiving",
             "Send to yourself from other mailboxes and back, including to hard countries "
             "(Russia, South America), before telling customers.", provable=True,
             proof_hint="the engine ticks this when every test message of 'switchover check' "
                        "(new → new, new → old, old → new) arrived in an inbox"),
    ItemSpec("shared", 1, "Shared mailboxes have a handling process",
             "For info@ or support@: agree internally who reads and answers the new mailbox."),
    ItemSpec("backup", 2, "Complete local backup (.mbox / .eml), verified",
             "Back up Inbox, Sent and every important folder to local files before anything "
             "else; keep the backup for 3–6 months after closing the old mailbox.", provable=True,
             proof_hint="the engine ticks this when 'switchover backup --verify' passes"),
    ItemSpec("migrate", 2, "Everything copied into the new mailbox",
             "Copy all folders over IMAP with flags and dates intact; optionally under an "
             "archive folder such as 历史邮件-2025年前.", provable=True,
             proof_hint="the engine ticks this when a migration run finishes with nothing missing"),
    ItemSpec("verify", 2, "Migration verified",
             "Counts, identities, flags and dates compared folder by folder.", provable=True,
             proof_hint="the engine ticks this when 'switchover verify' finds nothing missing"),
    ItemSpec("check_clients", 2, "Checked on web and phone",
             "Open the new mailbox on the web and on your phone and spot-check old threads."),
    ItemSpec("notice", 3, "Change notice sent to every correspondent",
             "Clear subject ('Important Notice: Update of Email Address for …'), old address with "
             "its end date and new address highlighted, 'nothing else changes', ask them to update "
             "their address book; send early, with a buffer period.", dated=True, provable=True,
             proof_hint="the engine ticks this when every notified correspondent was sent the notice "
                        "or bounced ('switchover notify --send')"),
    ItemSpec("autoreply", 3, "Auto-reply active on the old mailbox",
             "A short version of the notice: thanks, the new address, the date the old one stops.",
             provable=True, proof_hint="the engine ticks this when 'switchover autoreply on' succeeds"),
    ItemSpec("signature", 3, "New signature everywhere",
             "Update the signature with the new address in every mail client and phone."),
    ItemSpec("website", 3, "Website updated",
             "Contact page and team pages show the new address.", provable=True,
             proof_hint="the engine ticks this when 'switchover scan --url URL' finds the old address "
                        "on none of the pages (s here shows what is left)"),
    ItemSpec("social", 3, "LinkedIn / Facebook / Twitter updated",
             "Personal and company profiles: a customer who finds you there must see the same address "
             "— a prospect who follows your LinkedIn profile to your website should meet one address "
             "everywhere; different addresses look unprofessional."),
    ItemSpec("b2b", 3, "B2B platforms updated",
             "Alibaba.com (阿里巴巴国际站), Made-in-China (中国制造网), Global Sources (环球资源): the "
             "contact details of the shop and of every product page's inquiry contact."),
    ItemSpec("im", 3, "WhatsApp / WeChat signature updated",
             "Online business cards: WhatsApp and WeChat status lines (个性签名) and profile cards."),
    ItemSpec("documents", 3, "Quotation, contract templates and catalogues updated",
             "Headers and footers of quotation and contract templates and catalogue PDFs.", provable=True,
             proof_hint="the engine ticks this when 'switchover scan FOLDER' reads office / PDF files "
                        "and finds the old address in none (s here shows what is left)"),
    ItemSpec("internal", 3, "Internal departments told",
             "Finance, logistics and purchasing must use the new address too.", provable=True,
             proof_hint="the engine ticks this when the internal notice went to every colleague "
                        "('switchover notify --internal')"),
    ItemSpec("watch", 4, "Old mailbox watched for at least 3 months",
             "Check the old mailbox daily, later weekly; forward what matters and remind the "
             "sender. switchover's feed does this while it runs.", provable=True,
             proof_hint="the engine ticks this when the transition has run for 90 days", dated=True),
    ItemSpec("arrivals", 4, "Every arrival on the old address handled",
             "Forward, remind or mark handled every message that still reaches the old address.",
             provable=True, proof_hint="the engine ticks this while no arrival is left unhandled"),
    ItemSpec("final_reminder", 4, "Final reminder sent",
             "One last reminder to those who still write to the old address.", dated=True, provable=True,
             proof_hint="the engine ticks this when the final reminder campaign is done "
                        "('switchover notify --final')"),
    ItemSpec("final_backup", 4, "Final backup verified",
             "A last complete backup, verified, kept for 3–6 months.", provable=True,
             proof_hint="the engine ticks this when 'switchover archive' verifies a backup taken after "
                        "the last arrival (or a backup is verified after the close date)"),
    ItemSpec("close", 4, "Old account closed or archived",
             "Only when every important contact has moved, the old address has had no business "
             "mail for a long time and the final backup is safe.", dated=True),
)

SPECS = {s.key: s for s in ITEMS}


@dataclass(frozen=True)
class Proof:
    """What one engine check found (``recheck`` returns one per item it looked at)."""
    key: str
    title: str
    ok: bool
    evidence: str


#: appended to a login proof's evidence when a later, unasked-for login failed
LAST_FAILURE = " · last attempt "


@dataclass(frozen=True)
class ChecklistItem:
    key: str
    phase: int
    title: str
    advice: str
    state: str            # open | done | skipped
    by: str | None        # person | engine | None
    evidence: str
    note: str
    due: str | None
    provable: bool
    proof_hint: str
    dated: bool = False   # a date matters for this item (shown as "due")


class ArrivalTally(Protocol):
    """What the checklist needs from the arrivals' owner (core/transition)."""

    async def tally(self, side: str) -> tuple[int, int]:
        """(arrivals seen on ``side``, how many of them are not handled yet)."""
        ...


class Checklist:
    """``engine.checklist``: the items, a person's ticks and notes, and the proofs."""

    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config, *, arrivals: ArrivalTally | None = None) -> None:
        self.store = store
        self.bus = bus
        self.accounts = accounts
        self.blocking = blocking
        self.config = config
        self.arrivals = arrivals
        self._recording = asyncio.Lock()     # proofs of one item are recorded in order
        self._unsubscribe = bus.subscribe_async((Proven,), self._on_proven)

    async def items(self) -> list[ChecklistItem]:
        rows = {r["item"]: r for r in await self.store.fetchall("SELECT * FROM checklist")}
        out = []
        for spec in ITEMS:
            r = rows.get(spec.key)
            out.append(ChecklistItem(
                key=spec.key, phase=spec.phase, title=spec.title, advice=spec.advice,
                state=r["state"] if r else "open", by=r["by"] if r else None,
                evidence=(r["evidence"] or "") if r else "", note=(r["note"] or "") if r else "",
                due=r["due"] if r else None, provable=spec.provable, proof_hint=spec.proof_hint, dated=spec.dated))
        return out

    async def item(self, key: str) -> ChecklistItem:
        self._spec(key)
        return next(i for i in await self.items() if i.key == key)

    async def progress(self) -> dict[int, tuple[int, int]]:
        result: dict[int, tuple[int, int]] = {p: (0, 0) for p in PHASES}
        for i in await self.items():
            done, total = result[i.phase]
            result[i.phase] = (done + (i.state in ("done", "skipped")), total + 1)
        return result

    def _spec(self, key: str) -> ItemSpec:
        try:
            return SPECS[key]
        except KeyError:
            raise SwitchoverError(f"There is no checklist item '{key}'.") from None

    async def _write(self, key: str, **fields: object) -> None:
        cols = ["item"] + list(fields) + ["updated"]
        vals = [key] + list(fields.values()) + [time.time()]
        updates = ", ".join(f"{c}=excluded.{c}" for c in cols[1:])
        await self.store.execute(
            f"INSERT INTO checklist({', '.join(cols)}) VALUES({', '.join('?' * len(cols))}) "
            f"ON CONFLICT(item) DO UPDATE SET {updates}", vals)

    def _changed(self, key: str, state: str, evidence: str = "") -> None:
        self.bus.publish(ChecklistChanged(key, state, evidence))

    async def tick(self, key: str, done: bool = True) -> ChecklistItem:
        """A person ticks (or unticks) an item; provable items follow their proof."""
        spec = self._spec(key)
        if spec.provable and not spec.by_hand:
            current = await self.item(key)
            proven = current.by == "engine" and current.state == "done"
            if done and not proven:
                raise SwitchoverError(f"'{spec.title}' cannot be ticked by hand: {spec.proof_hint}.")
            if not done and proven:
                raise SwitchoverError(f"'{spec.title}' is proven by the engine ({current.evidence}); "
                                      f"it cannot be unticked by hand.")
            return current
        await self._write(key, state="done" if done else "open", by="person" if done else None,
                          evidence=f"ticked {dt.datetime.now():%Y-%m-%d %H:%M}" if done else "")
        self._changed(key, "done" if done else "open")
        return await self.item(key)

    async def skip(self, key: str) -> ChecklistItem:
        spec = self._spec(key)
        if spec.provable and not spec.by_hand:
            raise SwitchoverError(f"'{spec.title}' cannot be skipped: {spec.proof_hint}.")
        await self._write(key, state="skipped", by="person", evidence="not needed")
        self._changed(key, "skipped")
        return await self.item(key)

    async def set_note(self, key: str, text: str) -> None:
        self._spec(key)
        await self._write(key, note=text.strip())
        self._changed(key, (await self.item(key)).state)

    async def set_hint(self, key: str, text: str) -> None:
        """Evidence beside an item only a person ticks (the closing readiness beside
        'close', core/wrapup/closing.py): shown while the item is open; it ticks nothing,
        and a person's tick replaces it."""
        spec = self._spec(key)
        if spec.provable:
            raise ValueError(f"{key} is provable: its evidence comes from its proof")
        current = await self.item(key)
        if current.state != "open" or current.evidence == text:
            return
        await self._write(key, evidence=text)
        self._changed(key, "open", text)

    async def set_due(self, key: str, date: dt.date | None) -> None:
        self._spec(key)
        await self._write(key, due=date.isoformat() if date else None)
        self._changed(key, (await self.item(key)).state)

    # -- proofs ---------------------------------------------------------------------------
    async def _on_proven(self, event: Event) -> None:
        if isinstance(event, Proven):
            await self.record(event)

    async def record(self, proof: Proven) -> None:
        """Record what a check found, by the rules in the module docstring."""
        async with self._recording:
            spec = self._spec(proof.item)
            if not spec.provable:
                raise ValueError(f"{proof.item} is not provable")
            if proof.ok:
                await self.prove(proof.item, True, proof.evidence)
                return
            current = await self.item(proof.item)
            proven = current.by == "engine" and current.state == "done"
            if proof.subject:
                # only a failure of the very thing that was the proof takes it back
                if proven and proof.subject in current.evidence:
                    await self.prove(proof.item, False, proof.evidence)
            elif not proof.explicit and proven:
                # a background attempt notes its failure once; the proof stands
                standing = current.evidence.split(LAST_FAILURE, 1)[0]
                evidence = f"{standing}{LAST_FAILURE}{proof.evidence}"
                await self._write(proof.item, evidence=evidence)
                self._changed(proof.item, "done", evidence)
            else:
                await self.prove(proof.item, False, proof.evidence)

    async def prove(self, key: str, ok: bool, evidence: str) -> None:
        """Set a proof (or its loss) with human-readable evidence. Other facets publish
        ``Proven`` instead of calling this."""
        spec = self._spec(key)
        if not spec.provable:
            raise ValueError(f"{key} is not provable")
        await self._write(key, state="done" if ok else "open", by="engine" if ok else None,
                          evidence=evidence)
        self._changed(key, "done" if ok else "open", evidence)

    async def refresh_evidence(self) -> list[Proof]:
        """Re-derive the proofs that come from state rather than from a run; returns what
        each check found."""
        found: list[Proof] = []
        cfg = self.config.transition
        if cfg.start:
            days = (dt.date.today() - cfg.start).days
            if days >= 90:
                evidence = f"watched for {days} days since {cfg.start}"
                await self.prove("watch", True, evidence)
                found.append(Proof("watch", SPECS["watch"].title, True, evidence))
            else:
                evidence = f"day {max(days + 1, 0)} of at least 90"
                if (await self.item("watch")).by == "engine":
                    await self.prove("watch", False, evidence)
                found.append(Proof("watch", SPECS["watch"].title, False, evidence))
        total, unhandled = await self.arrivals.tally("old") if self.arrivals is not None else (0, 0)
        if total:
            if unhandled == 0:
                evidence = f"all {total} arrivals handled ({dt.datetime.now():%Y-%m-%d %H:%M})"
                await self.prove("arrivals", True, evidence)
            else:
                evidence = f"{unhandled} of {total} arrivals not handled yet"
                await self.prove("arrivals", False, evidence)
            found.append(Proof("arrivals", SPECS["arrivals"].title, unhandled == 0, evidence))
        return found

    async def check_logins(self, *, explicit: bool = True) -> dict[str, str]:
        """Log in to both mailboxes now and record the outcome as proof; returns the
        evidence (or the server's refusal) per side. ``explicit=False`` (a face's own
        login, not asked for by the person) never takes back a standing proof: the
        failure is noted in its evidence (see the module docstring)."""
        results: dict[str, str] = {}
        for side in ("old", "new"):
            results[side] = await self._check_login(side, explicit)
        return results

    async def _check_login(self, side: str, explicit: bool) -> str:
        key = f"login_{side}"
        now = f"{dt.datetime.now():%Y-%m-%d %H:%M}"
        try:
            account = self.accounts.account(side)
            client = await self.blocking.run(imap.connect, account, timeout=30)
            caps = sorted(c.decode() if isinstance(c, bytes) else str(c)
                          for c in await self.blocking.run(client.capabilities))
            await self.blocking.run(imap.close, client)
        except SwitchoverError as e:
            # a background failure is a note ("last attempt … failed: …"); an explicit one
            # takes the proof back, saying when
            evidence = f"{now} failed: {e.message}" if not explicit else f"{now}: {e.message}"
            await self.record(Proven(key, False, evidence, explicit=explicit))
            return e.message
        evidence = (f"logged in as {account.username} at {account.imap.host} "
                    f"{now}; {len(caps)} capabilities")
        await self.record(Proven(key, True, evidence))
        await self.store.set_setting(f"capabilities:{side}", caps)
        return evidence

    async def recheck(self) -> list[Proof]:
        """What a person's explicit re-check does: log in to both sides (a failure takes
        the proof back) and re-derive the state proofs; returns each finding."""
        found: list[Proof] = []
        for side in ("old", "new"):
            text = await self._check_login(side, explicit=True)
            item = await self.item(f"login_{side}")
            found.append(Proof(item.key, item.title, item.state == "done", text))
        return found + await self.refresh_evidence()
