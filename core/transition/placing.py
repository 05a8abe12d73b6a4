"""Forwards by IMAP: the original appended byte for byte into the new INBOX, which the
migration writes too. Each forward records its place in ``placements``
(core/placements.py) before its APPEND, so the migration and a forward never both place
one message; a place another live writer holds is waited for, a dead writer's is
settled by looking at the server, and an APPEND cut off mid-way is looked up before it
is tried again.
"""

from __future__ import annotations

import os
import time

from ..context import Accounts, Blocking
from ..mail.identity import identity_of
from ..placements import Placement, Placements, pid_alive
from .arrivals import Arrival, Arrivals
from .ledger import ActionRow
from .mailbox import Original, Refused, append_inbox, find_in_inbox, find_or_append, require_original
from .sending import Later, Phases, where

#: an APPEND cut off by a dead process is over on the server well within this
SETTLE_SECONDS = 10.0
#: another live process is placing the same message: look again after this
BUSY_RETRY_SECONDS = 5.0


class Placer:
    def __init__(self, accounts: Accounts, blocking: Blocking, arrivals: Arrivals,
                 placements: Placements, phases: Phases) -> None:
        self.accounts, self.blocking = accounts, blocking
        self.arrivals, self.placements, self.phases = arrivals, placements, phases

    async def forward(self, row: ActionRow, arrival: Arrival) -> str:
        """Append the original into the new INBOX unless it is (being) placed there: by
        the migration, another forward, or this action's own earlier attempt."""
        original = await self.blocking.run(require_original, self.accounts.account(arrival.side), where(arrival))
        identity = identity_of(original.raw)
        await self.arrivals.set_identity(arrival.id, identity)
        ref = str(row.id)
        new_id: int | None = None
        for _ in range(3):
            new_id, holder = await self.placements.begin_one("INBOX", "forward", identity, ref)
            if holder is None:
                break
            what = await self._settle_holder(row, arrival, original, holder)
            if what is not None:
                return what
        else:
            raise Later(BUSY_RETRY_SECONDS, "the new INBOX is being written; checking again shortly")
        assert new_id is not None
        appending = [False]
        try:
            # a copy placed before placements existed (or by another tool) counts too
            found, uidvalidity, uid = await self.blocking.run(
                find_or_append, self.accounts.account("new"), arrival.message_id, original, appending)
        except BaseException as e:
            # refused, or cut before the APPEND went out: nothing was placed. Cut during
            # it: it may have landed; the row stays 'sending' and the next attempt looks
            # at the server first
            if isinstance(e, Refused) or not appending[0]:
                await self.placements.drop([new_id])
            raise
        await self.placements.placed([(new_id, uidvalidity, uid)])
        if found:
            return f"already in the new INBOX (UID {uid})"
        what = f"copied into the new INBOX{f' (UID {uid})' if uid else ''}"
        await self.phases.delivered(row.id, what)
        return what

    async def _settle_holder(self, row: ActionRow, arrival: Arrival, original: Original,
                             holder: Placement) -> str | None:
        """Someone holds this message's place in the new INBOX. Returns the outcome when
        the forward is done, None to try placing again (a dead attempt left nothing),
        raises Later while the holder may still be writing."""
        own = holder.owner == "forward" and holder.ref == str(row.id)
        if holder.state == "placed":
            at = f" (UID {holder.uid})" if holder.uid else ""
            if own:
                return f"copied into the new INBOX{at}"
            by = {"migrate": ", copied by the migration", "import": ", placed by an import",
                  "forward": f", forwarded by action {holder.ref}"}.get(holder.owner, "")
            return f"already in the new INBOX{at}{by}"
        writing = (holder.pid != os.getpid() and pid_alive(holder.pid)) or (holder.mine and not own)
        if writing:
            who = "the migration is" if holder.owner == "migrate" else f"another {holder.owner} is"
            raise Later(BUSY_RETRY_SECONDS, f"{who} placing this message in the new INBOX right now; "
                                            f"checking again shortly")
        # a dead process's append, or this action's own earlier one that was cut off
        if time.time() - holder.started < SETTLE_SECONDS:
            raise Later(SETTLE_SECONDS, "an interrupted copy of this message may still be landing; "
                                        "checking again shortly")
        found = await self.blocking.run(find_in_inbox, self.accounts.account("new"), arrival.message_id,
                                        original.raw)
        if found is not None:
            if holder.owner == "forward":
                await self.placements.placed([(holder.id, found[0], found[1])])
            if own or holder.owner == "forward":
                return f"copied into the new INBOX (UID {found[1]}, found after an interruption)"
            return f"already in the new INBOX (UID {found[1]}), copied by an interrupted migration"
        if holder.owner == "forward":
            await self.placements.drop([holder.id])     # that attempt left nothing: place it anew
            return None
        # another owner's dead append left nothing; its own next run checks its row:
        # record ours beside it and append
        (new_id,) = await self.placements.begin("INBOX", "forward", [(holder.identity, str(row.id))],
                                                yield_to=())
        assert new_id is not None
        try:
            uidvalidity, uid = await self.blocking.run(append_inbox, self.accounts.account("new"), original)
        except Refused:
            await self.placements.drop([new_id])
            raise
        await self.placements.placed([(new_id, uidvalidity, uid)])
        what = f"copied into the new INBOX{f' (UID {uid})' if uid else ''}"
        await self.phases.delivered(row.id, what)
        return what

    async def check(self, row: ActionRow, arrival: Arrival) -> str | None:
        """After a crash: is this forward's message in the new INBOX? (Its placement is
        settled when it is.)"""
        raw = None
        if not arrival.message_id:
            raw = (await self.blocking.run(require_original, self.accounts.account(arrival.side),
                                           where(arrival))).raw
        hit = await self.blocking.run(find_in_inbox, self.accounts.account("new"), arrival.message_id, raw)
        if hit is None:
            return None
        if arrival.identity:
            for p in await self.placements.live_for("INBOX", arrival.identity):
                if p.owner == "forward" and p.ref == str(row.id) and p.state == "sending":
                    await self.placements.placed([(p.id, hit[0], hit[1])])
        return f"in the new INBOX (UID {hit[1]})"
