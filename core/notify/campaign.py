"""Sending a campaign: one message per person through the new account's SMTP, recorded
before it leaves and settled after (core/notify/ledger.py), paced (pacing.py), with a
copy in the new Sent folder recorded in core/placements.py so a rerun never appends it
twice.

One message (``Postman.deliver``), following core/transition/sending.py + outcomes.py:

* the row is claimed (queued → sending, one conditional UPDATE) before SMTP starts;
* right before the message data leaves, ``data_at`` is written (the in-doubt window of
  core/net/smtp.py): a process killed after that left a row the next run calls
  ``doubt`` unless the Sent folder shows the message; killed before it, the row goes
  back to queued (the server discards data that never ended);
* 250 → ``sent``; no answer to the end of data → ``doubt`` (never retried by itself);
  a refused recipient (5.1.x, 5.2.x) → ``bounced``; 4xx and network trouble → queued
  again and the campaign slows down; a refused login or a policy refusal (5.7.x, "too
  many recipients", "daily limit") stops the campaign with one sentence, everything
  left stays queued; any other permanent refusal → ``failed``.

The campaign loop (``CampaignRun``) pauses, resumes and stops at a safe point (between
two messages) and publishes ``CampaignProgress`` with an ETA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.policy
import re
import time
from dataclasses import dataclass, field
from contextlib import asynccontextmanager, contextmanager
from typing import AsyncIterator, Iterator, Protocol

from ..config import Account, Config
from ..context import Accounts, Blocking, to_the_end
from ..errors import AuthError, ConnectError, SwitchoverError, sentence
from ..events import CampaignProgress, EventBus, LogLine, NoticeChanged
from ..net import smtp as smtpnet
from ..people.audience import Recipient
from ..placements import Placements, pid_alive
from ..progress import Meter
from ..transition.sending import SAVES_SENT
from . import sentbox
from .ledger import NoticeLedger, NoticeRow
from .pacing import Pacer

#: temporary failures in a row before a campaign stops (everything stays queued)
MAX_TEMPORARY = 6
#: a refusal that speaks for the whole account, not one person: stop, keep the rest queued
_POLICY = re.compile(r"\b5\.7\.\d+|too many recipients|daily (user )?(sending )?(limit|quota)|"
                     r"sending (limit|quota)|SubmissionQuotaExceeded|rate limit", re.I)
_PERSON = re.compile(r"\b5\.[12]\.\d+\b")


class Composer(Protocol):
    """What core/notify/compose.py's NoticeComposer gives the campaign."""

    def message(self, kind: str, recipient: Recipient, *, message_id: str,
                date: dt.datetime | None = None) -> "email.message.EmailMessage": ...

    def languages(self) -> tuple[str, ...]: ...


class NotMine(SwitchoverError):
    """The row stopped being this process's before the data left: nothing was sent."""


class Stopped(SwitchoverError):
    """The campaign stopped for the whole account (login, policy, too many 4xx);
    nothing more was sent and the rest stays queued."""

    exit_code = 1


def kind_of(campaign: str) -> str:
    return "test" if campaign.startswith("test") else campaign


def render(composer: Composer, row: NoticeRow, when: dt.datetime) -> bytes:
    """The exact bytes of a row's message (CRLF, as SMTP and APPEND take them)."""
    msg = composer.message(kind_of(row.campaign), row.recipient, message_id=row.message_id, date=when)
    return msg.as_bytes(policy=email.policy.SMTP)


@dataclass
class Tally:
    sent: int = 0
    bounced: int = 0
    failed: int = 0
    doubt: int = 0
    retried: int = 0


@dataclass
class RunResult:
    campaign: str
    total: int                        # rows this run meant to send
    tally: Tally = field(default_factory=Tally)
    left: int = 0                     # still queued after the run
    in_doubt: int = 0                 # the campaign's notices in doubt after the run (any run's)
    stopped: str = ""                 # the sentence when the campaign stopped
    exit_code: int = 0
    cancelled: bool = False

    def lines(self) -> list[str]:
        t = self.tally
        out = [f"{self.campaign}: sent {t.sent}, bounced {t.bounced}, failed {t.failed}, "
               f"in doubt {t.doubt} of {self.total}; {self.left} still queued."]
        if self.in_doubt > t.doubt:
            out.append(f"{self.in_doubt} notice(s) of this campaign are in doubt (an earlier run was "
                       f"interrupted while the server had them).")
        if self.in_doubt:
            out.append("A notice in doubt was taken by the server without an answer: check the person's "
                       "mail, then 'switchover notify --settle ADDRESS --delivered' or '--resend'.")
        if self.stopped:
            out.append(self.stopped)
        elif self.cancelled:
            out.append("Stopped at a safe point; run the same command again to go on.")
        return out


class Postman:
    """One claimed row → one SMTP transaction, its outcome, and the copy in Sent."""

    def __init__(self, ledger: NoticeLedger, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config, placements: Placements) -> None:
        self.ledger, self.bus, self.accounts, self.blocking = ledger, bus, accounts, blocking
        self.config, self.placements = config, placements
        #: how long the answer to the end of the data is awaited (tests shorten it)
        self.data_timeout = smtpnet.DATA_TIMEOUT
        #: the rows this process is delivering now (never "abandoned" while here)
        self.busy: set[int] = set()
        #: the SMTP connection kept through one run (``connection()``); None: one each
        self.session: smtpnet.Session | None = None
        #: the new mailbox's IMAP connection for the copies, kept through one run
        self.imap: sentbox.Kept | None = None
        #: the new Sent folder's name, looked up once per run (``connection()``)
        self._sent: tuple[str | None] | None = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator["Postman"]:
        """Keep one SMTP connection (and the Sent folder's name) for the notices sent
        inside: a campaign logs in once, not once per person."""
        if self.session is not None:        # inside a run already: share its connections
            yield self
            return
        self.session = smtpnet.Session(self.accounts.account("new"))
        self.imap = sentbox.Kept(self.accounts.account("new"))
        self._sent = None
        try:
            yield self
        finally:
            session, imap, self.session, self.imap, self._sent = self.session, self.imap, None, None, None
            # after any send a cancelled caller left running in its thread (the locks wait)
            await self.blocking.run_to_end(session.close)
            await self.blocking.run_to_end(imap.close)

    @contextmanager
    def holding(self, row_id: int) -> Iterator[None]:
        """The row is this process's from before its claim to the end of its send (a
        status read meanwhile must not take it for abandoned)."""
        added = row_id not in self.busy
        self.busy.add(row_id)
        try:
            yield
        finally:
            if added:
                self.busy.discard(row_id)

    def changed(self, row: NoticeRow, state: str, detail: str = "") -> None:
        self.bus.publish(NoticeChanged(row.address, kind_of(row.campaign), state, detail, time.time()))

    async def deliver(self, row: NoticeRow, raw: bytes, *, copy: bool = True) -> str:
        """sent | doubt | bounced | failed | retry (back in the queue) | skip (not ours
        any more, nothing sent); raises Stopped."""
        with self.holding(row.id):
            # a cancel (Ctrl-C twice, a quit, a worker replaced) waits for the conversation
            # and its record to end: the outcome is written, and nothing closes the kept
            # connection under a message
            return await to_the_end(self._deliver(row, raw, copy=copy))

    async def _deliver(self, row: NoticeRow, raw: bytes, *, copy: bool) -> str:
        loop = asyncio.get_running_loop()

        def before_data() -> None:   # worker thread: the write commits before data leaves
            fut = asyncio.run_coroutine_threadsafe(self.ledger.data_leaving(row.id), loop)
            if not fut.result(timeout=120):
                raise NotMine(f"The notice to {row.address} changed elsewhere; nothing was sent.")

        account = self.accounts.account("new")
        self.changed(row, "sending")
        session = self.session
        try:
            if session is not None:
                session.account = account       # a secret typed meanwhile serves the next login
                await self.blocking.run(session.send, self.config.identity.new_address, [row.address], raw,
                                        before_data=before_data, data_timeout=self.data_timeout)
            else:
                await self.blocking.run(smtpnet.send, account, self.config.identity.new_address,
                                        [row.address], raw, before_data=before_data,
                                        data_timeout=self.data_timeout)
        except smtpnet.SmtpInDoubt as e:
            return await self._end(row, "doubt", f"{sentence(e)} Not sent again by itself: if it arrived, "
                                                 f"settle it --delivered; if not, --resend (same Message-ID).")
        except AuthError as e:
            await self.ledger.requeue(row.id, sentence(e), counts=False)
            raise Stopped(f"{sentence(e)} The campaign stopped; nothing more was sent and the rest stays "
                          f"queued.", exit_code=3) from None
        except smtpnet.SmtpError as e:
            return await self._refused(row, e)
        except NotMine:
            return "skip"        # another process or a person has it: leave the row alone
        except (ConnectError, OSError) as e:
            await self.ledger.requeue(row.id, sentence(e))
            self.changed(row, "queued", sentence(e))
            return "retry"
        except SwitchoverError as e:
            await self.ledger.requeue(row.id, sentence(e), counts=False)
            raise Stopped(f"{sentence(e)} The campaign stopped; the rest stays queued.", exit_code=e.exit_code) \
                from None
        state = await self._end(row, "sent", "taken by the new account's SMTP server")
        if copy:
            await self.copy(row, raw)
        return state

    async def _end(self, row: NoticeRow, state: str, words: str, bounce: str | None = None) -> str:
        if await self.ledger.finish(row.id, state, words, bounce=bounce):
            self.changed(row, state, bounce or words)
        if state == "doubt":
            self.bus.publish(LogLine("warning", f"The {row.campaign} to {row.address} is in doubt: {words}"))
        return state

    async def _refused(self, row: NoticeRow, e: smtpnet.SmtpError) -> str:
        words = sentence(e)
        permanent = not e.temporary
        person = "recipient" in words and (bool(_PERSON.search(words)) or e.code in (550, 551, 553))
        if permanent and not person and (_POLICY.search(words) or e.throttled):
            await self.ledger.requeue(row.id, words, counts=False)
            raise Stopped(f"{words} The campaign stopped: the server refuses for the whole account; the "
                          f"rest stays queued — run it again once the provider allows it.")
        if not permanent:
            await self.ledger.requeue(row.id, words)
            self.changed(row, "queued", words)
            return "retry"
        if person and not _POLICY.search(words):
            return await self._end(row, "bounced", words, bounce=words)
        return await self._end(row, "failed", words)

    # -- the copy in Sent ---------------------------------------------------------------------
    async def _sent_folder(self, account: Account) -> str | None:
        if self.imap is None:
            return await self.blocking.run(sentbox.sent_name, account)
        if self._sent is None:
            self.imap.account = account
            self._sent = (await self.blocking.run(self.imap.sent_name),)
        return self._sent[0]

    async def copy(self, row: NoticeRow, raw: bytes) -> None:
        """A copy of what went in the new Sent folder, once (core/placements.py decides);
        never a reason to send again, only noted."""
        account = self.accounts.account("new")
        if account.provider in SAVES_SENT:
            await self.ledger.set_copy(row.id, "filed by the server")
            return
        try:
            folder = await self._sent_folder(account)
            if folder is None:
                await self.ledger.set_copy(row.id, "none: the new mailbox has no Sent folder")
                return
            identity = f"n:{row.message_id}"
            pid, held = await self.placements.begin_one(folder, "notice", identity, str(row.id))
            if pid is None and held is not None:
                if held.state == "placed" or (not held.mine and pid_alive(held.pid)):
                    await self.ledger.set_copy(row.id, "placed")
                    return
                # a copy a dead process was appending: look before appending again
                if await self.blocking.run(sentbox.in_folder, account, folder, row.message_id):
                    await self.placements.placed([(held.id, None, None)])
                    await self.ledger.set_copy(row.id, "placed")
                    return
                await self.placements.drop([held.id])
                pid, _ = await self.placements.begin_one(folder, "notice", identity, str(row.id))
                if pid is None:
                    return
            assert pid is not None
            try:
                if self.imap is not None:
                    self.imap.account = account
                    uv, uid = await self.blocking.run(self.imap.append_to, folder, raw)
                else:
                    uv, uid = await self.blocking.run(sentbox.append_to, account, folder, raw)
            except sentbox.Refused:
                await self.placements.drop([pid])
                raise
            await self.placements.placed([(pid, uv, uid)])
            await self.ledger.set_copy(row.id, "placed")
        except Exception as e:  # noqa: BLE001 - the notice went; a missing copy is only noted
            await self.ledger.set_copy(row.id, f"failed: {sentence(e)}")
            self.bus.publish(LogLine("warning", f"No copy of the notice to {row.address} in Sent: {sentence(e)}"))


class CampaignRun:
    """One pass over a campaign's queued rows at the pacer's pace."""

    def __init__(self, ledger: NoticeLedger, bus: EventBus, postman: Postman, composer: Composer,
                 pacer: Pacer, campaign: str) -> None:
        self.ledger, self.bus, self.postman, self.composer = ledger, bus, postman, composer
        self.pacer, self.campaign = pacer, campaign
        self._paused = False
        self._cancelled = False
        #: set when a pause or a stop is asked for: a long pacing wait ends at once
        self.wake = asyncio.Event()
        self.meter = Meter(window=3600.0, clock=pacer.clock)

    @property
    def paused(self) -> bool:
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self._paused = value
        self.wake.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @cancelled.setter
    def cancelled(self, value: bool) -> None:
        self._cancelled = value
        self.wake.set()

    def _progress(self, result: RunResult, left: int, state: str, detail: str = "") -> None:
        # measured over the meter's window, never above the pace (one message sent in a
        # second is not "3,600 an hour" when the pace allows 60)
        rate = min(self.meter.rate().msgs_per_s * 3600, float(self.pacer.pace.per_hour))
        t = result.tally
        self.bus.publish(CampaignProgress(self.campaign, t.sent + t.bounced, result.total, t.failed, t.doubt,
                                          state, rate, self.pacer.eta(left) if left else 0.0, detail))

    async def run(self, rows: list[NoticeRow]) -> RunResult:
        async with self.postman.connection():
            return await self._run(rows)

    async def _run(self, rows: list[NoticeRow]) -> RunResult:
        result = RunResult(self.campaign, len(rows))
        temporary = 0
        i = 0
        self._progress(result, len(rows), "running", self.pacer.pace.words())
        while i < len(rows) and not self.cancelled:
            if self.paused:
                self._progress(result, len(rows) - i, "paused")
                while self.paused and not self.cancelled:
                    self.wake.clear()
                    await self.wake.wait()
                self._progress(result, len(rows) - i, "running")
                continue
            if self.pacer.next_slot() > self.pacer.clock():
                self._progress(result, len(rows) - i, "waiting", "pacing")
                self.wake.clear()
                await self.pacer.wait(self.wake)
                continue
            row = await self.ledger.claim(rows[i].id)
            if row is None:          # another process or task has it
                i += 1
                continue
            raw = render(self.composer, row, dt.datetime.now().astimezone())
            try:
                outcome = await self.postman.deliver(row, raw)
            except Stopped as e:
                result.stopped, result.exit_code = e.message, e.exit_code
                self._progress(result, len(rows) - i, "stopped", e.message)
                break
            if outcome == "retry":
                temporary += 1
                result.tally.retried += 1
                if temporary >= MAX_TEMPORARY:
                    result.stopped = (f"The new account's SMTP server kept answering 'try later' "
                                      f"({(await self.ledger.get(row.id)).reply}); the campaign stopped and "
                                      f"the rest stays queued — run it again later.")
                    result.exit_code = 1
                    break
                wait = self.pacer.slow_down()
                self._progress(result, len(rows) - i, "waiting", f"the server asked to slow down; "
                                                                 f"waiting {wait:.0f} s")
                continue             # the same person, after the wait
            temporary = 0
            if outcome == "skip":
                i += 1
                continue
            setattr(result.tally, outcome, getattr(result.tally, outcome) + 1)
            if outcome != "failed":
                self.pacer.sent()
                self.meter.add()
            i += 1
            self._progress(result, len(rows) - i, "running")
        result.cancelled = self.cancelled
        result.left = len(await self.ledger.rows(self.campaign, ("queued",)))
        result.in_doubt = len(await self.ledger.rows(self.campaign, ("doubt",)))
        final = "stopped" if result.stopped else "paused" if self.cancelled else "done"
        self._progress(result, result.left, final, result.stopped)
        return result
