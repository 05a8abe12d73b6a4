"""How an action ends, written so that no action stays ``running`` after its work ended
while this process lives, and what a dead process left is settled without sending twice.

* done: one transaction marks the action done, notes the reminder on its recipient, and
  marks the arrival handled (a ``handled`` action, a forward or reminder the person asked
  for when ``transition.handled_on_action``, or the automatic pair forward + remind);
* temporary failures (network, 4xx, throttling) go back to pending, later, a few times;
* an unknown SMTP outcome (core/net/smtp.SmtpInDoubt) becomes ``doubt``: never retried;
* a busy state file is waited out; a final write that keeps failing is kept and retried
  by the runner until it lands.

:meth:`Outcomes.reconcile` settles rows left ``running`` by a process that died and looks
again at doubts the servers can settle. It never sends by itself.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Awaitable, Callable

from ..config import Config
from ..errors import StateFileError, sentence
from ..events import ActionChanged, EventBus, LogLine
from ..net import smtp as smtpnet
from ..placements import pid_alive
from ..store import Store, while_busy
from .arrivals import Arrivals
from .ledger import DELIVERED, SENDING, ActionLedger, ActionRow
from .people import Correspondents
from .placing import Placer
from .sending import Later, Sender

#: temporary failures (network, 4xx, throttling) are retried by themselves this often
AUTO_ATTEMPTS = 3
#: how often a doubt that can be checked is looked up again, and for how long
DOUBT_RECHECK_SECONDS = 300.0
DOUBT_RECHECK_DAYS = 14

Settle = Callable[[], Awaitable[object]]


class Outcomes:
    def __init__(self, store: Store, bus: EventBus, config: Config, arrivals: Arrivals,
                 people: Correspondents, ledger: ActionLedger, sender: Sender, placer: Placer) -> None:
        self.store, self.bus, self.config = store, bus, config
        self.arrivals, self.people, self.ledger = arrivals, people, ledger
        self.sender, self.placer = sender, placer
        #: actions this process is carrying out (reconcile leaves them alone)
        self.inflight: set[int] = set()
        #: final writes that failed (state file busy): retried by the runner until they land
        self.unsettled: dict[int, Settle] = {}
        #: when each doubt was last looked up on the servers
        self.doubt_checked: dict[int, float] = {}

    def _changed(self, row: ActionRow, state: str, detail: str = "") -> None:
        self.bus.publish(ActionChanged(row.id, row.arrival_id, row.kind, state, detail))

    # -- the end of one attempt -------------------------------------------------------------
    async def ended(self, row: ActionRow, outcome: str | BaseException) -> None:
        """Write how the attempt at ``row`` ended: its outcome words, or what it raised."""
        settle: Settle
        if isinstance(outcome, Later):
            settle = functools.partial(self._later, row, outcome)
        elif isinstance(outcome, BaseException):
            settle = functools.partial(self._failed, row, outcome)
        else:
            settle = functools.partial(self.settle_done, row, outcome, from_states=("running",))
        await self._persist(row.id, settle)

    async def _persist(self, aid: int, settle: Settle) -> None:
        """A busy state file is waited out; a write that keeps failing is kept for the
        runner (the row stays in ``inflight``: reconcile leaves it alone)."""
        def busy(e: StateFileError) -> None:
            self.bus.publish(LogLine("warning", f"Action {aid}: the state file is busy "
                                                f"({sentence(e)}); trying again."))
        try:
            landed = await while_busy(settle, 6, busy)
        except Exception:
            self.inflight.discard(aid)
            raise
        if landed:
            self.unsettled.pop(aid, None)
            self.inflight.discard(aid)
        else:
            self.unsettled[aid] = settle

    async def retry_unsettled(self) -> None:
        for aid, settle in list(self.unsettled.items()):
            try:
                await settle()
            except StateFileError:
                continue
            except Exception as e:  # noqa: BLE001 - logged; the row is reconciled later
                self.bus.publish(LogLine("error", f"Action {aid}: {sentence(e)}"))
            self.unsettled.pop(aid, None)
            self.inflight.discard(aid)

    async def settle_done(self, row: ActionRow, outcome: str, *, from_states: tuple[str, ...]) -> bool:
        """Mark done (from one of ``from_states``), note the reminder, maybe mark the
        arrival handled; one transaction. False when the row was in another state."""
        async with self.store.transaction():
            if not await self.ledger.finish(row.id, "done", outcome, from_states=from_states):
                return False
            if row.kind == "remind" and row.recipient:
                await self.people.mark_reminded(row.recipient, time.time())
            if row.arrival_id is not None:
                await self._maybe_handled(row.arrival_id, row.kind, row.auto)
        self.doubt_checked.pop(row.id, None)
        self._changed(row, "done", outcome)
        return True

    async def _maybe_handled(self, arrival_id: int, kind: str, auto: bool) -> None:
        if kind != "handled" and not (self.config.transition.handled_on_action and not auto):
            if not {"forward", "remind"} <= await self.ledger.done_kinds(arrival_id):
                return
        await self.arrivals.mark_handled(arrival_id)

    async def _later(self, row: ActionRow, later: Later) -> None:
        await self.ledger.again(row.id, time.time() + later.seconds, later.why, counts=False)
        self._changed(row, "pending", later.why)

    async def _failed(self, row: ActionRow, exc: BaseException) -> None:
        words = sentence(exc)
        if isinstance(exc, smtpnet.SmtpInDoubt):
            await self.to_doubt(row, words)
            return
        attempts = (await self.ledger.get(row.id)).attempts
        if smtpnet.is_temporary(exc) and attempts < AUTO_ATTEMPTS:
            wait = getattr(exc, "retry_after", None) or 30.0 * 2 ** (attempts - 1)
            text = f"will try again in {wait:.0f} s: {words}"
            await self.ledger.again(row.id, time.time() + wait, text)
            self._changed(row, "pending", text)
            return
        await self.ledger.finish(row.id, "failed", words)
        self._changed(row, "failed", words)
        self.bus.publish(LogLine("error", f"{row.kind} of arrival {row.arrival_id} failed: {words}"))

    async def to_doubt(self, row: ActionRow, words: str) -> None:
        """The send's outcome is unknown: park it where nothing retries it."""
        what = "reminder to " + (row.recipient or "?") if row.kind == "remind" else "forward"
        text = (f"{words} Not sent again by itself: if it arrived, confirm it; if not, "
                f"send it again (same Message-ID).")
        if not await self.ledger.finish(row.id, "doubt", text):
            return          # another process settled it meanwhile
        self.doubt_checked[row.id] = time.time()
        self._changed(row, "doubt", text)
        self.bus.publish(LogLine("warning", f"The {what} of arrival #{row.arrival_id} is in doubt: {words}"))

    # -- after a crash ----------------------------------------------------------------------
    async def reconcile(self, older_than: float = 0.0) -> None:
        """Settle actions left 'running' by a process that died, and look again at doubts
        that can be checked. Never sends by itself:

        * delivered marker → done;
        * 'sending' marker (died inside the in-doubt window) → done if the server shows
          the message, else doubt;
        * neither: nothing left by SMTP; done if the server shows it (an IMAP append, or a
          row of an older switchover), else pending again.
        """
        now = time.time()
        for r in await self.ledger.running():
            if r.id in self.inflight or (r.started or 0) > now - older_than:
                continue
            if r.pid is not None and r.pid != os.getpid() and pid_alive(r.pid):
                continue   # another live process (dashboard / watch) is carrying it out
            outcome = r.outcome or ""
            if DELIVERED in outcome:
                await self.settle_done(r, outcome.split(DELIVERED, 1)[1] + " (confirmed after a restart)",
                                       from_states=("running",))
            elif SENDING in outcome:
                found = await self._check_quietly(r, self.sender.check_doubt)
                if found:
                    await self.settle_done(r, f"{found} (found after a restart)", from_states=("running",))
                else:
                    await self.to_doubt(r, "The process sending it stopped before the server answered; "
                                           "it may or may not have been delivered.")
            else:
                await self._restart(r, now)
        await self._recheck_doubts()

    async def _restart(self, r: ActionRow, now: float) -> None:
        found = await self._check_quietly(r, self.found_on_server)
        if found is False:
            return
        if found:
            await self.settle_done(r, f"{found} (found after a restart)", from_states=("running",))
        elif await self.ledger.again(r.id, now, "interrupted before anything was sent; trying again"):
            self._changed(r, "pending", "interrupted; trying again")

    async def _check_quietly(self, r: ActionRow, check: Callable[[ActionRow], Awaitable[str | None]]
                             ) -> str | None | bool:
        """A check's answer, or False when it could not run (logged; the row waits)."""
        try:
            return await check(r)
        except StateFileError:
            raise
        except Exception as e:  # noqa: BLE001 - a server that cannot be asked now is asked later
            self.bus.publish(LogLine("warning", f"Could not check action {r.id} after a restart: {sentence(e)}"))
            return False

    async def found_on_server(self, r: ActionRow) -> str | None:
        """Where the servers show what this action sends (the new INBOX, the old Sent
        folder), in words; None when they do not."""
        if r.kind == "handled" or r.arrival_id is None:
            return None
        if r.kind == "forward" and not (self.config.transition.forward_method == "smtp" or r.sent_message_id):
            return await self.placer.check(r, await self.arrivals.require(r.arrival_id))
        return await self.sender.check_sent_by_smtp(r)

    async def _recheck_doubts(self) -> None:
        now = time.time()
        for r in await self.ledger.doubts_since(now - DOUBT_RECHECK_DAYS * 86400):
            if now - self.doubt_checked.get(r.id, 0.0) < DOUBT_RECHECK_SECONDS:
                continue
            self.doubt_checked[r.id] = now
            if not self.sender.doubt_checkable(r):
                continue
            found = await self._check_quietly(r, self.sender.check_doubt)
            if found:
                await self.settle_done(r, f"{found} (the doubt is settled)", from_states=("doubt",))
