"""``engine.notices``: the change-notice campaigns — "notice" to every correspondent the
user notifies, "internal" to colleagues, "final" (the last reminder before the close
date), and "test" (one per language in use, to the user's own two addresses).

Built from the store, the bus, the accounts, the blocking pool, the config, the
placements and the people's owner (``People``: who each campaign speaks to, and what the
watch learned of each person). The messages come from the composer
(core/notify/compose.py); sending and its outcomes from core/notify/campaign.py; the
table from core/notify/ledger.py. One campaign per state file at a time
(core/joblock.py, kind "notify").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.policy
import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import Config
from ..context import Accounts, Blocking
from ..errors import SwitchoverError, sentence
from ..events import ArrivalSeen, Event, EventBus, LogLine, NoticeChanged, Proven
from ..joblock import JobLock
from ..mail.compose import new_message_id
from ..people.audience import GROUPS, NOTIFY_GROUPS, Recipient
from ..placements import Placements, pid_alive
from ..store import Store
from . import bounces, sentbox, trial
from .campaign import CampaignRun, Composer, Postman, RunResult, kind_of, render
from .ledger import NoticeLedger, NoticeRow
from .pacing import Clock, Pace, Pacer, Sleep, pace_for
from .status import PersonNote, Status, evidence, ordered
from .trial import TestResult

CAMPAIGNS = ("notice", "internal", "final")
#: checklist items the campaigns prove
ITEMS = {"notice": "notice", "internal": "internal", "final": "final_reminder"}


class People(Protocol):
    """What the campaign asks the people's owner (core/transition/people.py)."""

    async def audience(self, campaign: str, *, group: str | None = None) -> list[Recipient]: ...

    async def get(self, address: str) -> Any: ...


@dataclass(frozen=True)
class Plan:
    campaign: str
    count: int                  # messages this send would go out now
    pace: Pace
    eta_seconds: float
    counts: dict[str, int]      # the campaign's rows per state before it


class Notices:
    """``engine.notices``."""

    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking, config: Config,
                 placements: Placements, people: People, composer: Composer | None = None) -> None:
        self.store, self.bus, self.accounts, self.blocking, self.config = store, bus, accounts, blocking, config
        self.people = people
        self.ledger = NoticeLedger(store)
        self.postman = Postman(self.ledger, bus, accounts, blocking, config, placements)
        self._composer = composer
        #: injected by tests: a simulated clock and sleep run a day of pacing in milliseconds
        self.clock: Clock = time.time
        self.sleep: Sleep = asyncio.sleep
        self.run: CampaignRun | None = None
        self._starting = False
        self._scanning = asyncio.Lock()
        bus.subscribe_async((ArrivalSeen,), self.on_arrival)

    @property
    def composer(self) -> Composer:
        if self._composer is None:
            from .compose import NoticeComposer
            self._composer = NoticeComposer(self.config)
        return self._composer

    @composer.setter
    def composer(self, value: Composer) -> None:
        self._composer = value

    def _changed(self, row: NoticeRow, state: str, detail: str = "") -> None:
        self.bus.publish(NoticeChanged(row.address, kind_of(row.campaign), state, detail, time.time()))

    # -- controls (the dashboard, Ctrl-C) -------------------------------------------------------
    @property
    def sending(self) -> bool:
        return self.run is not None or self._starting

    def pause(self) -> bool:
        if self.run is None:
            return False
        self.run.paused = not self.run.paused
        return True

    def cancel(self) -> bool:
        """Stop at the next safe point (between two messages); the rest stays queued."""
        if self.run is None:
            return False
        self.run.cancelled = True
        return True

    # -- planning ---------------------------------------------------------------------------
    def final_opens(self) -> dt.date | None:
        close = self.config.transition.close_date
        return close - dt.timedelta(days=self.config.notices.final_reminder_days) if close else None

    def _check_final(self, now: bool) -> None:
        opens = self.final_opens()
        if now:
            return
        if opens is None:
            raise SwitchoverError("The final reminder goes a number of days before the close date, and "
                                  "transition.close_date is not set; set it, or send now with --now.", exit_code=2)
        today = dt.date.fromtimestamp(self.clock())
        if today < opens:
            raise SwitchoverError(f"The final reminder can go from {opens.isoformat()} "
                                  f"({self.config.notices.final_reminder_days} days before the close date "
                                  f"{self.config.transition.close_date}); send it earlier with --now.", exit_code=2)

    def pace(self) -> Pace:
        return pace_for(self.accounts.account("new"), self.config.notices)

    async def _queue(self, campaign: str, group: str | None) -> None:
        if group is not None and group not in GROUPS:
            raise SwitchoverError(f"'{group}' is not a group (one of: {', '.join(NOTIFY_GROUPS)}).", exit_code=2)
        people = await self.people.audience(campaign, group=group)
        address = self.config.identity.new_address
        for added in await self.ledger.enqueue(campaign, people, [new_message_id(address) for _ in people]):
            self.bus.publish(NoticeChanged(added, campaign, "queued", "", time.time()))
        if group is None:
            await self.ledger.cancel_missing(campaign, {p.address.lower() for p in people})

    async def _due(self, campaign: str, group: str | None, limit: int | None) -> list[NoticeRow]:
        if limit is not None and limit < 1:
            raise SwitchoverError(f"--limit must be 1 or more, not {limit}.", exit_code=2)
        rows = [r for r in await self.ledger.rows(campaign, ("queued",)) if group is None or r.group == group]
        return rows[:limit] if limit is not None else rows

    async def plan(self, campaign: str = "notice", *, group: str | None = None, limit: int | None = None,
                   now: bool = False) -> Plan:
        """What ``send`` would do (the confirmation names how many and the pace); queues
        the audience (a queued row is not a send)."""
        if campaign == "final":
            self._check_final(now)
        await self._queue(campaign, group)
        rows = await self._due(campaign, group, limit)
        pacer = Pacer(self.pace(), self.clock, self.sleep, await self.ledger.sent_since(self.clock() - 86400))
        return Plan(campaign, len(rows), pacer.pace, pacer.eta(len(rows)),
                    (await self.ledger.counts()).get(campaign, {}))

    # -- sending -----------------------------------------------------------------------------
    async def send(self, campaign: str = "notice", *, group: str | None = None, limit: int | None = None,
                   now: bool = False) -> RunResult:
        """Send ``campaign`` to everyone queued for it (after the last run's leftovers are
        settled), paced; returns when done, stopped, or cancelled at a safe point."""
        if campaign not in CAMPAIGNS:
            raise SwitchoverError(f"There is no campaign '{campaign}' (use one of {', '.join(CAMPAIGNS)}).",
                                  exit_code=2)
        if self.run is not None or self._starting:
            raise SwitchoverError("A campaign is already sending (a second press does nothing).", exit_code=4)
        if campaign == "final":
            self._check_final(now)
        self._starting = True
        try:
            return await self._send(campaign, group, limit)
        finally:
            self._starting = False

    async def _send(self, campaign: str, group: str | None, limit: int | None) -> RunResult:
        check = getattr(self.composer, "check", None)
        if check is not None:
            check()              # a broken template stops here, before anything is sent
        lock = JobLock(self.config.state, "notify").acquire()
        try:
            await self.reconcile()
            await self._queue(campaign, group)
            rows = await self._due(campaign, group, limit)
            pacer = Pacer(self.pace(), self.clock, self.sleep, await self.ledger.sent_since(self.clock() - 86400))
            self.run = CampaignRun(self.ledger, self.bus, self.postman, self.composer, pacer, campaign)
            try:
                result = await self.run.run(rows)
            finally:
                self.run = None
            if campaign == "final" and not rows:
                await self.store.set_setting("notify.final.ran_empty", self.clock())
            await self.prove()
            return result
        finally:
            lock.release()

    async def reconcile(self) -> int:
        """Settle rows a dead process left 'sending' (never by sending): nothing left the
        machine → queued; the data went out → sent when the Sent folder shows it, else
        doubt. Also looks again at doubts and places missing copies in Sent."""
        settled = await self.settle_abandoned()
        account = self.accounts.account("new")
        for r in await self.ledger.rows(None, ("doubt",)):
            if await self._in_sent(r) and await self.ledger.finish(
                    r.id, "sent", "found in the Sent folder: the server took it", from_states=("doubt",)):
                self._changed(r, "sent", "the doubt is settled: found in Sent")
                settled += 1
        for r in await self.ledger.rows(None, ("sent",)):
            if not r.sent_copy and not r.campaign.startswith("test") and account.smtp is not None:
                when = dt.datetime.fromtimestamp(r.data_at or r.sent or time.time()).astimezone()
                await self.postman.copy(r, render(self.composer, r, when))
        return settled

    async def settle_abandoned(self, own: bool = True) -> int:
        """What a gone process left 'sending': queued again when nothing had left, else
        sent when the new Sent folder shows it, else in doubt (never sent again here)."""
        settled = await self.requeue_abandoned(own)
        for r in await self._abandoned(own):
            dead = r.claimed_by
            if r.data_at is None:
                continue                # queued again meanwhile, or by another process
            if await self._in_sent(r):
                if await self.ledger.finish(r.id, "sent", "found in the Sent folder after a restart", claimer=dead):
                    self._changed(r, "sent", "found in Sent after a restart")
            elif await self.ledger.finish(r.id, "doubt", "the process sending it stopped after the data went "
                                          "out; it may or may not have been delivered", claimer=dead):
                self._changed(r, "doubt", "interrupted while the server had the message")
            settled += 1
        return settled

    async def _abandoned(self, own: bool) -> list[NoticeRow]:
        """Rows left 'sending' by a process that is gone; with ``own`` (only under the
        campaign lock, before a run) also this process's rows nothing here is sending (a
        run cancelled mid-message)."""
        def held(r: NoticeRow) -> bool:
            if r.claimed_by is None:
                return False
            if r.claimed_by == _pid():
                return not own or self.run is not None or r.id in self.postman.busy
            return pid_alive(r.claimed_by)
        return [r for r in await self.ledger.sending() if not held(r)]

    async def requeue_abandoned(self, own: bool = False) -> int:
        """Rows a gone process left 'sending' before any byte of the message left go back
        in the queue: nothing was sent, so nothing to look up (the state file alone). The
        statement itself checks that no data has started to leave."""
        settled = 0
        for r in await self._abandoned(own):
            if r.data_at is None and await self.ledger.requeue(
                    r.id, "interrupted before anything was sent", counts=False, claimer=r.claimed_by,
                    before_data=True):
                self._changed(r, "queued", "interrupted before anything was sent")
                settled += 1
        return settled

    async def _in_sent(self, row: NoticeRow) -> bool:
        try:
            return bool(await self.blocking.run(sentbox.in_sent, self.accounts.account("new"), row.message_id))
        except Exception as e:  # noqa: BLE001 - a Sent folder that cannot be read settles nothing
            self.bus.publish(LogLine("warning", f"Could not look in the new Sent folder: {sentence(e)}"))
            return False

    async def settle(self, address: str, delivered: bool, campaign: str | None = None) -> NoticeRow:
        """A person decides a notice in doubt: it arrived (→ sent), or send it again now
        (same Message-ID)."""
        rows = [r for r in await self.ledger.for_address(address)
                if r.state == "doubt" and (campaign is None or r.campaign == campaign)]
        if not rows:
            raise SwitchoverError(f"No notice to {address} is in doubt.", exit_code=2)
        row = rows[-1]
        if delivered:
            if await self.ledger.finish(row.id, "sent", "the person confirmed it arrived", from_states=("doubt",)):
                self._changed(row, "sent", "confirmed by the person")
            await self.prove()
            return await self.ledger.get(row.id)
        lock = JobLock(self.config.state, "notify").acquire() if self.run is None else None
        try:
            with self.postman.holding(row.id):
                if not await self.ledger.requeue(row.id, "to be sent again (the person asked)",
                                                 from_states=("doubt",)):
                    return await self.ledger.get(row.id)
                claimed = await self.ledger.claim(row.id)
                if claimed is not None:
                    raw = render(self.composer, claimed, dt.datetime.now().astimezone())
                    await self.postman.deliver(claimed, raw)
        finally:
            if lock is not None:
                lock.release()
        await self.prove()
        return await self.ledger.get(row.id)

    # -- looking -----------------------------------------------------------------------------
    async def preview(self, address: str, campaign: str | None = None) -> bytes:
        """The exact message ``address`` gets (or got): same builder, same Message-ID when
        it is queued already; only the Date differs."""
        addr = address.strip().lower()
        rows = [r for r in await self.ledger.for_address(addr)
                if not r.campaign.startswith("test") and (campaign is None or r.campaign == campaign)]
        when = dt.datetime.fromtimestamp(self.clock()).astimezone()
        if rows:
            return render(self.composer, rows[0], when)
        for c in (campaign,) if campaign else CAMPAIGNS:
            for p in await self.people.audience(c):
                if p.address.lower() == addr:
                    mid = new_message_id(self.config.identity.new_address)
                    msg = self.composer.message(c, p, message_id=mid, date=when)
                    return msg.as_bytes(policy=email.policy.SMTP)
        raise SwitchoverError(f"{address} is not in the audience of any campaign (notify: no, or not a "
                              f"correspondent); see 'switchover people'.", exit_code=2)

    async def status(self, scan: bool = True) -> Status:
        """Counts per campaign, bounced people and why, doubts, who switched."""
        problem = ""
        if scan:
            try:
                await self.scan_bounces()
            except Exception as e:  # noqa: BLE001 - the counts still show; the problem is said
                problem = sentence(e)
            try:
                await self.settle_abandoned(own=False)      # what a gone process left sending
            except Exception as e:  # noqa: BLE001 - as above
                problem = problem or sentence(e)
        else:
            await self.requeue_abandoned()
        rows = await self.ledger.rows()
        bounced = [PersonNote(r.address, r.campaign, r.bounce or r.reply) for r in rows if r.state == "bounced"]
        doubts = [PersonNote(r.address, r.campaign, r.reply) for r in rows if r.state == "doubt"]
        notified: dict[str, float] = {}
        for r in rows:
            if r.campaign in ("notice", "internal") and r.state == "sent":
                notified[r.address] = min(notified.get(r.address, r.sent or 0.0), r.sent or 0.0)
        switched, still_old = 0, []
        for addr, when in notified.items():
            person = await self.people.get(addr)
            if person is None:
                continue
            if getattr(person, "switched", None):
                switched += 1          # one state per person: switched wins
            elif (getattr(person, "last_old_arrival", None) or 0.0) > when:
                still_old.append(addr)
        return Status(ordered(await self.ledger.counts()), bounced, doubts, len(notified), switched,
                      still_old, problem)

    # -- bounces -------------------------------------------------------------------------------
    async def on_arrival(self, event: Event) -> None:
        """A report may have come in (the watch saw something from a mailer-daemon)."""
        if not isinstance(event, ArrivalSeen):
            return
        if event.badge == "bounce" or bounces.from_mailer(event.sender):
            if await self.ledger.first_sent() is not None:
                try:
                    await self.scan_bounces((event.side,))
                except SwitchoverError as e:
                    self.bus.publish(LogLine("warning", e.message))

    async def scan_bounces(self, sides: tuple[str, ...] = ("new", "old")) -> int:
        """Read the delivery reports that arrived in the INBOXes since the last look and
        mark the people they name bounced; returns how many."""
        first = await self.ledger.first_sent()
        if first is None:
            return 0
        since = dt.date.fromtimestamp(first) - dt.timedelta(days=1)
        own = {self.config.identity.old_address.lower(), self.config.identity.new_address.lower()}
        marked, problems = 0, []
        async with self._scanning:
            for side in sides:
                key = f"notify.bounces.{side}"
                mark = await self.store.get_setting(key)
                try:
                    mark, raws = await self.blocking.run(bounces.fetch_reports, self.accounts.account(side),
                                                         mark, since)
                except Exception as e:  # noqa: BLE001 - the other mailbox is still looked at
                    problems.append(f"the {side} INBOX: {sentence(e)}")
                    continue
                for raw in raws:
                    report = bounces.parse_report(raw, own)
                    if report is not None:
                        marked += await bounces.mark_bounced(self.ledger, report, self._changed)
                await self.store.set_setting(key, mark)
        if marked:
            await self.prove()
        if problems:
            raise SwitchoverError("Delivery reports could not be read in " + "; ".join(problems))
        return marked

    # -- the checklist ---------------------------------------------------------------------------
    async def prove(self) -> None:
        """Publish what the campaigns prove: everyone of the audience sent or bounced."""
        now = self.clock()
        for campaign, item in ITEMS.items():
            rows = await self.ledger.rows(campaign)
            counts: dict[str, int] = {}
            for r in rows:
                counts[r.state] = counts.get(r.state, 0) + 1
            if campaign == "final":
                done = {"sent", "bounced", "failed", "cancelled"}
                ok = bool(rows) and all(r.state in done for r in rows)
                if not rows and await self.store.get_setting("notify.final.ran_empty"):
                    ok = True
                total = len(rows)
                words = "final reminder: "
            else:
                audience = {p.address.lower() for p in await self.people.audience(campaign)}
                settled = {r.address for r in rows if r.state in ("sent", "bounced")}
                counts = {}
                for r in rows:
                    if r.address in audience:
                        counts[r.state] = counts.get(r.state, 0) + 1
                total = len(audience)
                ok = bool(audience) and audience <= settled
                words = ""
            key = f"notify.proven.{campaign}"
            was = await self.store.get_setting(key)
            if ok or was:
                text = evidence(counts, total, now, words) if total or not ok else \
                    f"nobody still wrote to the old address after the notice ({dt.date.fromtimestamp(now)})"
                self.bus.publish(Proven(item, ok, text))
                await self.store.set_setting(key, bool(ok))

    # -- the test notice ---------------------------------------------------------------------------
    async def test(self, timeout: float = 120.0) -> list[TestResult]:
        """One notice per language in use to the user's own old and new addresses; how
        long each took to show in that INBOX (core/notify/trial.py)."""
        have = set(self.composer.languages())
        used = {p.language for c in ("notice", "internal") for p in await self.people.audience(c)}
        languages = sorted({lang if lang in have else "en" for lang in used} or {"en"})
        lock = JobLock(self.config.state, "notify").acquire() if self.run is None else None
        try:
            return await trial.run_tests(self.ledger, self.postman, self.composer, self.accounts,
                                         self.blocking, self.config, languages, timeout)
        finally:
            if lock is not None:
                lock.release()


def _pid() -> int:
    return os.getpid()
