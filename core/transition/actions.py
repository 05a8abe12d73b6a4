"""What the user (or an automatic rule) does with an arrival in the old mailbox: forward
it to the new address, remind its sender of the new address, or mark it handled.

Every action is a row in ``actions`` (core/transition/ledger.py) written *before*
anything is sent or appended and marked after, so a double key press, a retry or a crash
never sends twice:

* ``request`` inserts the row (state ``pending``, ``not_before`` = now + the undo window)
  in one statement that refuses a second live row for the same arrival and kind;
* a runner claims a due row with ``UPDATE ... WHERE state='pending'`` (only one process
  wins), carries it out (core/transition/sending.py, placing.py), and as soon as the
  server has taken the mail writes a ``delivered`` marker, then ``done`` with the
  server's words, ``failed`` or ``doubt`` (core/transition/outcomes.py);
* ``reconcile`` settles rows left ``running`` by a dead process, and gives the automatic
  rules to arrivals whose reaction never ran.

The automatic rules (core/transition/rules.py) react to ``ArrivalSeen``: this facet
subscribes on the bus; the watch calls nobody. A send in doubt is never retried by
itself; the person decides with :meth:`Actions.settle` (or :meth:`resolve_doubt`).
Faces call :meth:`Actions.perform` to request and carry out one action now.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ..config import Config
from ..context import Accounts, Blocking
from ..errors import StateFileError, SwitchoverError, sentence
from ..events import ActionChanged, ArrivalSeen, Event, EventBus, LogLine
from ..mail.compose import new_message_id
from ..mail.headers import parse_message
from ..mail.text import message_text
from ..placements import Placements
from ..store import Store, while_busy
from .arrivals import Arrivals
from .classify import is_automated, is_bounce
from .drafts import Drafts, reply_address
from .ledger import KINDS, ActionLedger, ActionRow
from .mailbox import require_original
from .outcomes import Outcomes
from .people import Correspondents
from .placing import Placer
from .rules import AutoRules
from .runner import Runner
from .sending import Phases, Sender, where

__all__ = ["ActionRow", "Actions", "NeedsConfirmation", "Preview"]


class NeedsConfirmation(SwitchoverError):
    """A manual reminder would go to a list or a robot; ``warning`` is the one sentence
    to show before asking the person to confirm."""

    exit_code = 1

    def __init__(self, warning: str) -> None:
        super().__init__(f"{warning} Confirm to send it anyway.")
        self.warning = warning


@dataclass(frozen=True)
class Preview:
    """What an action would send, before it goes."""
    kind: str
    to: str
    subject: str
    language: str
    text: str           # the body as the recipient reads it
    raw: bytes          # the MIME message (same Message-ID as the real send; Date is when it goes)


class Actions:
    """``engine.actions``."""

    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config, arrivals: Arrivals, people: Correspondents, placements: Placements) -> None:
        self.store, self.bus, self.accounts, self.blocking = store, bus, accounts, blocking
        self.config, self.arrivals = config, arrivals
        self.ledger = ActionLedger(store)
        self.drafts = Drafts(config, people)
        phases = Phases(self.ledger, bus)
        self.sender = Sender(accounts, blocking, config, arrivals, self.drafts, phases)
        self.placer = Placer(accounts, blocking, arrivals, placements, phases)
        self.outcomes = Outcomes(store, bus, config, arrivals, people, self.ledger, self.sender, self.placer)
        self.rules = AutoRules(store, bus, config, arrivals, people, self.ledger)
        self.runner = Runner(bus, config, arrivals, self.ledger, self.sender, self.placer, self.outcomes,
                             self.reconcile)
        bus.subscribe_async((ArrivalSeen,), self._on_arrival_seen)

    @property
    def data_timeout(self) -> float:
        """How long the reply to the end of SMTP data is awaited (tests shorten it)."""
        return self.sender.data_timeout

    @data_timeout.setter
    def data_timeout(self, seconds: float) -> None:
        self.sender.data_timeout = seconds

    # -- reading ----------------------------------------------------------------------------
    async def get(self, action_id: int) -> ActionRow:
        return await self.ledger.get(action_id)

    async def for_arrival(self, arrival_id: int) -> list[ActionRow]:
        return await self.ledger.for_arrival(arrival_id)

    async def remind_warning(self, arrival_id: int) -> str | None:
        """One sentence when a reminder to this arrival's sender would reach a list or a
        robot (RFC 3834 signals, no-reply addresses, an empty return path, bounces);
        None for a person."""
        arrival = await self.arrivals.require(arrival_id)
        msg = arrival.parsed_headers()
        _, recipient = reply_address(arrival)
        who = recipient or arrival.sender or "the sender"
        if is_bounce(msg):
            return f"Arrival #{arrival_id} is a delivery report: a reminder to {who} would go to a mail robot."
        auto, why = is_automated(msg)
        if auto:
            return (f"Arrival #{arrival_id} comes from a list or an automated sender ({why}): "
                    f"a reminder to {who} would reach a robot or everyone on the list.")
        return None

    async def remind_allowed(self, arrival_id: int) -> tuple[bool, str]:
        """May an automatic reminder answer this arrival? (False, reason) otherwise."""
        return await self.rules.remind_allowed(await self.arrivals.require(arrival_id))

    # -- requesting ---------------------------------------------------------------------------
    async def request(self, arrival_id: int, kind: str, *, delay: float | None = None,
                      auto: bool = False, confirmed: bool = False) -> int:
        """Record an action (pending until now + delay) and return its id; a live one for
        the same arrival and kind is returned instead of a second. A manual reminder to a
        list or automated sender raises :class:`NeedsConfirmation` unless ``confirmed``."""
        return (await self._request(arrival_id, kind, delay=delay, auto=auto, confirmed=confirmed)).id

    async def _request(self, arrival_id: int, kind: str, *, delay: float | None = None,
                       auto: bool = False, confirmed: bool = False) -> ActionRow:
        if kind not in KINDS:
            raise SwitchoverError(f"Unknown action '{kind}' (use forward, remind or handled).")
        arrival = await self.arrivals.require(arrival_id)
        ident, t = self.config.identity, self.config.transition
        wait = t.undo_seconds if delay is None else max(0.0, float(delay))
        recipient: str | None = None
        mid: str | None = None
        # a person may have previewed the message: it goes with the Message-ID shown
        # (an automatic rule acts before anyone could look)
        if kind == "forward":
            recipient = ident.new_address
            if t.forward_method == "smtp":
                mid = await self._message_id(arrival_id, kind, recipient, auto)
        elif kind == "remind":
            recipient = reply_address(arrival)[1]
            if not recipient or "@" not in recipient:
                raise SwitchoverError(f"Arrival {arrival_id} has no sender address to remind.")
            if not auto and not confirmed and await self.ledger.live(arrival_id, kind) is None:
                warning = await self.remind_warning(arrival_id)
                if warning:
                    raise NeedsConfirmation(warning)
            mid = await self._message_id(arrival_id, kind, ident.old_address, auto)
        row = await self.ledger.insert_live(arrival_id, kind, time.time() + wait, recipient, mid, auto)
        if not row.earlier:
            self.bus.publish(ActionChanged(row.id, arrival_id, kind, "pending",
                                           f"in {wait:.0f} s" if wait else ""))
            self.runner.poke()
        return row

    async def _message_id(self, arrival_id: int, kind: str, address: str, auto: bool) -> str:
        if auto:
            return new_message_id(address)
        return await self.ledger.reserved_message_id(arrival_id, kind, address)

    async def cancel(self, action_id: int) -> bool:
        """Undo: only a pending action (nothing has been sent yet)."""
        row = await self.ledger.get(action_id)
        if not await self.ledger.cancel(action_id):
            return False
        self.bus.publish(ActionChanged(action_id, row.arrival_id, row.kind, "cancelled"))
        return True

    async def retry(self, action_id: int) -> int:
        """A failed (or cancelled) action → a new pending attempt, due now."""
        row = await self.ledger.get(action_id)
        if row.state not in ("failed", "cancelled") or row.arrival_id is None:
            raise SwitchoverError(f"Action {action_id} is {row.state}; only a failed or "
                                  f"cancelled action can be retried.")
        # Same guard as request: no second live row; the same Message-ID, so a failure
        # that was in fact delivered reads as one message at the recipient.
        new = await self.ledger.insert_live(row.arrival_id, row.kind, time.time(), row.recipient,
                                            row.sent_message_id, row.auto)
        if not new.earlier:
            self.bus.publish(ActionChanged(new.id, row.arrival_id, row.kind, "pending", "retry"))
            self.runner.poke()
        return new.id

    async def resolve_doubt(self, action_id: int, delivered: bool) -> int:
        """The person settles an action in doubt: ``delivered`` → done ("confirmed by
        you"), returns its id; otherwise a new pending attempt with the same Message-ID,
        due now, and its id."""
        row = await self.ledger.get(action_id)
        if row.state != "doubt" or row.arrival_id is None:
            raise SwitchoverError(f"Action {action_id} is {row.state}, not in doubt; "
                                  f"there is nothing to decide.")
        settled_meanwhile = SwitchoverError(f"Action {action_id} was settled meanwhile; see its state.")
        if delivered:
            note = "confirmed by you" + (f" ({row.outcome})" if row.outcome else "")
            if not await self.outcomes.settle_done(row, note, from_states=("doubt",)):
                raise settled_meanwhile
            return action_id
        async with self.store.transaction():
            if not await self.ledger.finish(action_id, "failed", "not delivered, by your decision; sent again",
                                            from_states=("doubt",)):
                raise settled_meanwhile
            new = await self.ledger.insert_live(row.arrival_id, row.kind, time.time(), row.recipient,
                                                row.sent_message_id, row.auto)
        self.bus.publish(ActionChanged(action_id, row.arrival_id, row.kind, "failed",
                                       "not delivered, by your decision"))
        self.bus.publish(ActionChanged(new.id, row.arrival_id, row.kind, "pending",
                                       "sent again, by your decision"))
        self.runner.poke()
        return new.id

    # -- for the faces: request and carry out now ---------------------------------------------
    async def perform(self, arrival_id: int, kind: str, *, confirmed: bool = False,
                      timeout: float = 120.0) -> ActionRow:
        """Request an action and carry it out now; the row in its final state, or as it
        stands at ``timeout`` (or when a temporary failure put it off). ``earlier`` on the
        row: it had been done (or settled in doubt) before this call; nothing was sent."""
        await self.reconcile()          # settle one left 'running' by a dead process
        row = await self._request(arrival_id, kind, delay=0, confirmed=confirmed)
        if row.earlier and row.final:
            return row
        return await self._carry_out_now(row.id, timeout, until_final=False)

    async def settle(self, action_id: int, delivered: bool, timeout: float = 120.0) -> ActionRow:
        """The person settles an action in doubt: delivered → that action, done;
        otherwise a new attempt (same Message-ID) carried out now, its row as it ends
        (or stands at ``timeout``)."""
        new_id = await self.resolve_doubt(action_id, delivered)
        if delivered:
            return await self.ledger.get(action_id)
        return await self._carry_out_now(new_id, timeout, until_final=True)

    async def _carry_out_now(self, action_id: int, timeout: float, *, until_final: bool) -> ActionRow:
        deadline = time.monotonic() + timeout
        while True:
            await self.runner.run_one(action_id)
            row = await self.ledger.get(action_id)
            if row.final or time.monotonic() > deadline:
                return row
            put_off = row.state == "pending" and row.attempts > 0 and row.not_before > time.time() + 1
            if put_off and not until_final:
                return row
            await asyncio.sleep(0.3)

    # -- preview ------------------------------------------------------------------------------
    async def preview(self, arrival_id: int, kind: str) -> Preview:
        """What a forward or a reminder of this arrival would send (nothing is sent)."""
        if kind not in ("forward", "remind"):
            raise SwitchoverError(f"There is nothing to preview for '{kind}' (forward or remind).")
        arrival = await self.arrivals.require(arrival_id)
        live = await self.ledger.live(arrival_id, kind)
        ident = self.config.identity
        if kind == "remind":
            _, recipient = reply_address(arrival)
            if not recipient or "@" not in recipient:
                raise SwitchoverError(f"Arrival {arrival_id} has no sender address to remind.")
            if live is not None:
                recipient = live.recipient or recipient
                mid, auto = live.sent_message_id, live.auto
            else:
                mid, auto = await self.ledger.reserved_message_id(arrival_id, kind, ident.old_address), False
            draft, raw = await self.drafts.reminder(arrival, recipient, mid, auto)
            return Preview("remind", recipient, draft.subject, draft.language, draft.body, raw)
        original = await self.blocking.run(require_original, self.accounts.account(arrival.side), where(arrival))
        if self.config.transition.forward_method == "smtp":
            mid = (live.sent_message_id if live is not None and live.sent_message_id
                   else await self.ledger.reserved_message_id(arrival_id, kind, ident.new_address))
            raw, subject = self.drafts.forward(arrival, original.raw, mid), "Fwd: " + arrival.subject
        else:
            raw, subject = original.raw, arrival.subject
        text = message_text(parse_message(original.raw), attachments=True)
        return Preview("forward", ident.new_address, subject, arrival.language, text, raw)

    # -- automatic rules ------------------------------------------------------------------------
    async def on_arrival(self, arrival_id: int) -> None:
        """Apply config.transition.auto_forward / auto_remind to a new old-side arrival,
        once: the seen mark, the checks and the inserts share one write transaction."""
        arrival = await self.arrivals.get(arrival_id)
        if arrival is None or arrival.side != "old":
            return
        async with self.store.transaction():
            if not await self.rules.claim(arrival_id):
                return
            for kind in await self.rules.decide(arrival):
                await self.request(arrival_id, kind, delay=0, auto=True)

    async def _on_arrival_seen(self, event: Event) -> None:
        if isinstance(event, ArrivalSeen) and event.side == "old":
            await self._apply_rules(event.arrival_id)

    async def _apply_rules(self, arrival_id: int) -> None:
        """The rules for one arrival; a busy state file is waited out (the arrival stays
        unseen until it lands, so a later reconcile applies them if this process ends),
        any other failure is said once and the arrival taken as seen."""
        def busy(e: StateFileError) -> None:
            self.bus.publish(LogLine("warning", f"Auto rules for arrival #{arrival_id}: the state "
                                                f"file is busy ({sentence(e)}); trying again."))
        try:
            await while_busy(lambda: self.on_arrival(arrival_id), 8, busy)
        except Exception as e:  # noqa: BLE001 - one arrival's trouble stops no other
            self.bus.publish(LogLine("warning", f"Auto rules for arrival #{arrival_id}: {sentence(e)}"))
            await self.rules.claim(arrival_id)

    async def reconcile(self, older_than: float = 0.0) -> None:
        """Settle what a dead process left (core/transition/outcomes.py) and give the
        automatic rules to arrivals whose reaction never ran. Never sends by itself."""
        await self.outcomes.reconcile(older_than)
        for arrival_id in await self.rules.unseen():
            await self._apply_rules(arrival_id)
        self.runner.poke()

    # -- carrying out (core/transition/runner.py) -------------------------------------------
    async def run_due(self) -> int:
        """Carry out every due pending action now; returns how many ran."""
        return await self.runner.run_due()

    async def start(self) -> None:
        """Start the background runner (it reconciles first, then every minute)."""
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()
