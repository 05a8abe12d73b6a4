"""The automatic rules (``transition.auto_forward`` / ``auto_remind``): what they decide
for a new arrival in the old mailbox, and the record of which arrivals they have seen.

The actions facet applies them when an arrival is announced (``ArrivalSeen``), each
arrival exactly once: the "seen" mark, the once-per-N-days check and the inserted actions
share one write transaction (BEGIN IMMEDIATE serializes processes), so two mails from one
sender, seen by two tasks or two processes at once, never both get a reminder. An
arrival whose reaction never ran (the process died right after recording it) is found
by :meth:`AutoRules.unseen` when actions are reconciled, and gets its rules then.

The mark lives in ``settings`` (``actions.rules_seen``): every old arrival up to
``through`` has been seen, plus the ids in ``above``.
"""

from __future__ import annotations

import time
from typing import Any

from ..config import Config
from ..events import EventBus, LogLine
from ..store import Store
from .arrivals import Arrival, Arrivals
from .classify import is_automated, own_addresses, rfc3834_allows_reply
from .drafts import reply_address
from .ledger import ActionLedger
from .people import Correspondents

_SEEN = "actions.rules_seen"


class AutoRules:
    def __init__(self, store: Store, bus: EventBus, config: Config, arrivals: Arrivals,
                 people: Correspondents, ledger: ActionLedger) -> None:
        self.store, self.bus, self.config = store, bus, config
        self.arrivals, self.people, self.ledger = arrivals, people, ledger
        self.own = own_addresses(config)

    @property
    def on(self) -> bool:
        t = self.config.transition
        return bool(t.auto_forward or t.auto_remind)

    # -- deciding -------------------------------------------------------------------------
    async def remind_allowed(self, arrival: Arrival) -> tuple[bool, str]:
        """May an automatic reminder answer this arrival? (False, reason) otherwise."""
        if arrival.side != "old":
            return False, "not an arrival in the old mailbox"
        if arrival.badge in ("spam", "bounce"):
            return False, f"marked {arrival.badge}"
        ok, why = rfc3834_allows_reply(arrival.parsed_headers(), self.own)
        if not ok:
            return False, why
        _, recipient = reply_address(arrival)
        if recipient in self.own:
            return False, "the reply would go to one of our own addresses"
        days = self.config.transition.remind_every_days
        since = time.time() - days * 86400
        known = await self.people.get(recipient)
        if known is not None:
            if known.automated and not known.messages_to:   # same rule as the badge
                return False, "an automated sender"
            if known.switched is not None:
                return False, "already writes to the new address"
            if known.last_reminded and known.last_reminded > since:
                return False, f"reminded less than {days} days ago"
        if await self.ledger.reminded_since(recipient, since):
            return False, f"reminded less than {days} days ago"
        return True, ""

    async def decide(self, arrival: Arrival) -> list[str]:
        """The kinds of action the rules ask for (call it inside the transaction that
        inserts them)."""
        t = self.config.transition
        if arrival.side != "old":
            return []
        kinds: list[str] = []
        if t.auto_forward:
            automated = is_automated(arrival.parsed_headers())[0]
            if arrival.badge not in ("spam", "bounce", "automated") and not automated:
                kinds.append("forward")
        if t.auto_remind:
            ok, why = await self.remind_allowed(arrival)
            if ok:
                kinds.append("remind")
            else:
                self.bus.publish(LogLine("info", f"No automatic reminder to {arrival.sender}: {why}."))
        return kinds

    # -- which arrivals they have seen ------------------------------------------------------
    async def claim(self, arrival_id: int) -> bool:
        """Mark the arrival seen; False when it was already (call it inside the
        transaction that applies the rules)."""
        async with self.store.transaction():
            mark = await self.store.get_setting(_SEEN)
            through = int(mark["through"]) if mark else arrival_id - 1
            above = {int(i) for i in (mark or {}).get("above", [])}
            if arrival_id <= through or arrival_id in above:
                return False
            above.add(arrival_id)
            for old_id in await self.arrivals.old_ids_after(through, limit=len(above) + 1):
                if old_id not in above:
                    break
                through = old_id
            await self._save(through, {i for i in above if i > through})
            return True

    async def unseen(self) -> list[int]:
        """Old arrivals the rules have not seen (their reaction never ran). The first call
        on a state file takes every arrival so far as seen."""
        mark: Any = await self.store.get_setting(_SEEN)
        if mark is None:
            async with self.store.transaction():
                if await self.store.get_setting(_SEEN) is None:
                    await self._save(await self.arrivals.last_old_id(), set())
            return []
        above = {int(i) for i in mark.get("above", [])}
        return [i for i in await self.arrivals.old_ids_after(int(mark["through"])) if i not in above]

    async def _save(self, through: int, above: set[int]) -> None:
        await self.store.set_setting(_SEEN, {"through": through, "above": sorted(above)})
