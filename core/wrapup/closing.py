"""``engine.closing``: is it safe to close the old mailbox? A verdict with its reasons and
the earliest safe closing date.

The seed's rule (终极清理): close or archive the old account only when every important
contact has moved, the old address has had no business mail for a long time, a final
reminder went out, and everything needed is safely backed up — after a transition of at
least three months (并行监控期…至少维持3个月). Each of those is one ``Reason`` with a
verdict word:

* ``ok`` — this one no longer holds closing back;
* ``not yet`` — it does (with the date it stops doing so, when time settles it);
* ``unknown`` — it could not be told (the old inbox was not checked lately, no start
  date): a check that could not run is not a pass;
* ``note`` — worth knowing, never blocking (the share of notified people who switched:
  a customer who simply has not written since is no reason to wait).

The verdict: ``not yet`` when any reason says so, else ``could not tell`` when any is
unknown, else ``ready``. The earliest safe closing date is the latest of: the last
business mail + ``QUIET_DAYS``, the start + ``WATCH_DAYS``, the configured close date,
and today. Everything is read from the state file (no server is asked); ``now`` can be
given (tests, "what if" questions).

Switchover never closes or deletes the old account: it says when it is safe, and the
person asks the provider (or IT) to close or archive it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..backup.backups import Backups
from ..checklist import Checklist
from ..config import Config
from ..transition.arrivals import Arrival, Arrivals
from ..transition.classify import HUMAN_BADGES
from ..transition.people import Correspondents
from .schedule import CATCH_UP, Schedule, ago

#: days without business mail to the old address before it may close
QUIET_DAYS = 30
#: the seed's minimum transition: three months of watching
WATCH_DAYS = 90
#: a quiet old inbox counts only up to its last check; older than this, nobody knows
STALE_CHECK_DAYS = 7
#: arrival badges of people who matter (known correspondents), as the watch gave them
IMPORTANT_BADGES = ("customer", "notified", "switched")
#: names listed among the important people still writing to the old address
LIST_NAMES = 10

VERDICTS = ("ready", "not yet", "could not tell")


@dataclass(frozen=True)
class Reason:
    key: str
    verdict: str                   # ok | not yet | unknown | note
    text: str
    until: dt.date | None = None   # the day time stops this reason holding closing back


@dataclass(frozen=True)
class Readiness:
    verdict: str                   # ready | not yet | could not tell
    reasons: list[Reason]
    earliest: dt.date | None       # the earliest safe closing date
    today: dt.date
    still_writing: list[str] = field(default_factory=list)   # "Name <address>", up to 10

    @property
    def ready(self) -> bool:
        return self.verdict == "ready"

    @property
    def exit_code(self) -> int:
        return 0 if self.ready else 1

    def headline(self) -> str:
        """The verdict in one line: 'not yet — earliest safe closing date 2027-03-31'."""
        if self.ready:
            return f"ready — the old mailbox can be closed (checked {self.today})"
        when = self.earliest_text()
        return f"{self.verdict} — {when}" if when else self.verdict

    def earliest_text(self) -> str:
        if self.earliest is None:
            return ""
        blocking = [r for r in self.reasons if r.verdict in ("not yet", "unknown")]
        untimed = [r for r in blocking if r.until is None or r.until <= self.today]
        text = f"earliest safe closing date {self.earliest}"
        if untimed:
            n = len(untimed)
            text += (f", once {n} point{'s' if n > 1 else ''} that waiting alone does not settle "
                     f"{'are' if n > 1 else 'is'} settled")
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "earliest": self.earliest.isoformat() if self.earliest else None,
                "today": self.today.isoformat(), "still_writing": self.still_writing,
                "reasons": [{**asdict(r), "until": r.until.isoformat() if r.until else None}
                            for r in self.reasons]}


def _day(ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts).date()


def _when(ts: float) -> str:
    return f"{dt.datetime.fromtimestamp(ts):%Y-%m-%d}"


def _person(a: Arrival) -> str:
    return f"{a.sender_name} <{a.sender}>" if a.sender_name else a.sender


class Closing:
    """``engine.closing``: ``readiness(now)``; built from the facets it reads."""

    def __init__(self, config: Config, schedule: Schedule, arrivals: Arrivals, people: Correspondents,
                 checklist: Checklist, backups: Backups) -> None:
        self.config = config
        self.schedule = schedule
        self.arrivals = arrivals
        self.people = people
        self.checklist = checklist
        self.backups = backups

    async def readiness(self, now: dt.datetime | None = None, *, note: bool = True) -> Readiness:
        """The verdict at ``now`` (naive local time). ``note``: show it as the evidence
        hint of the checklist's 'close' item (a person still ticks that one)."""
        now = now or dt.datetime.now()
        today = now.date()
        recent = await self._recent_arrivals(now.timestamp() - QUIET_DAYS * 86400)
        important = [a for a in recent if await self._important(a)]
        names = list(dict.fromkeys(_person(a) for a in important))
        reasons = [
            await self._quiet(now),
            await self._switched(),
            self._still_writing(important, names),
            await self._unhandled(),
            await self._final_reminder(),
            await self._final_backup(),
            self._watched(today),
            self._close_date(today),
        ]
        verdict = ("not yet" if any(r.verdict == "not yet" for r in reasons)
                   else "could not tell" if any(r.verdict == "unknown" for r in reasons) else "ready")
        dates = [r.until for r in reasons if r.until is not None]
        earliest = max([today, *dates])
        result = Readiness(verdict, reasons, earliest, today, names[:LIST_NAMES])
        if note:
            await self.checklist.set_hint("close", f"closing readiness {now:%Y-%m-%d %H:%M}: {result.headline()}")
        return result

    async def _recent_arrivals(self, since: float) -> list[Arrival]:
        """Old-side arrivals from people since ``since``, newest first."""
        out: list[Arrival] = []
        offset = 0
        while True:
            page = await self.arrivals.page(side="old", offset=offset, limit=500)
            out += [a for a in page if a.seen_at >= since and a.badge in HUMAN_BADGES]
            if len(page) < 500 or page[-1].seen_at < since:
                return out
            offset += len(page)

    async def _important(self, a: Arrival) -> bool:
        """A known correspondent: by the arrival's badge, or by what is known of the sender
        now (a customer, notified, switched)."""
        if a.badge in IMPORTANT_BADGES:
            return True
        c = await self.people.get(a.sender) if a.sender else None
        return bool(c and not c.automated and (c.customer or c.notified or c.switched))

    # -- the reasons ------------------------------------------------------------------------
    async def _quiet(self, now: dt.datetime) -> Reason:
        status = await self.schedule.status(now)
        last = await self.arrivals.last_from_a_person()
        if status.last_checked is None:
            return Reason("quiet", "unknown", f"The old inbox has never been checked, so nobody knows what "
                                              f"still reaches it; {CATCH_UP}.")
        stale = (now - status.last_checked).total_seconds() > STALE_CHECK_DAYS * 86400
        if last is None:
            text = "No business mail has reached the old address since the watch began"
            until = None
        else:
            days = int((now.timestamp() - last) // 86400)
            until = _day(last) + dt.timedelta(days=QUIET_DAYS)
            if days < QUIET_DAYS:
                return Reason("quiet", "not yet", f"The last business mail reached the old address "
                                                  f"{ago(now.timestamp() - last)} ago ({_when(last)}); "
                                                  f"{QUIET_DAYS} quiet days are reached on {until}.", until)
            text = f"No business mail for {days} days (the last one {_when(last)})"
        if stale:
            return Reason("quiet", "unknown", f"{text} — but the old inbox was last checked "
                                              f"{ago((now - status.last_checked).total_seconds())} ago; "
                                              f"{CATCH_UP}.", until)
        return Reason("quiet", "ok", f"{text}.", until)

    async def _switched(self) -> Reason:
        notified = [c for c in await self.people.list(filter="notified", limit=1_000_000) if not c.automated]
        if notified:
            moved = sum(1 for c in notified if c.switched)
            share = 100 * moved // len(notified)
            return Reason("switched", "note", f"{moved} of {len(notified)} notified correspondents ({share}%) "
                                              f"have written to the new address since.")
        # no notice recorded: who wrote to the old address and later to the new one
        writers = {a.sender for a in await self._recent_arrivals(0.0) if a.sender}
        if not writers:
            return Reason("switched", "note", "No notice is recorded and nobody has written to the old "
                                              "address yet, so no share of switched people can be told.")
        moved = 0
        for address in writers:
            c = await self.people.get(address)
            moved += bool(c and c.switched)
        return Reason("switched", "note", f"No notice is recorded; {moved} of {len(writers)} people who wrote "
                                          f"to the old address have written to the new one since.")

    def _still_writing(self, important: list[Arrival], names: list[str]) -> Reason:
        if not important:
            return Reason("still_writing", "ok", f"No important correspondent wrote to the old address in "
                                                 f"the last {QUIET_DAYS} days.")
        shown = ", ".join(names[:LIST_NAMES]) + (f" and {len(names) - LIST_NAMES} more"
                                                  if len(names) > LIST_NAMES else "")
        until = _day(max(a.seen_at for a in important)) + dt.timedelta(days=QUIET_DAYS)
        return Reason("still_writing", "not yet", f"{len(names)} important correspondent"
                                                  f"{'s' if len(names) != 1 else ''} still wrote to the old "
                                                  f"address in the last {QUIET_DAYS} days: {shown}; remind them "
                                                  f"(or send the final reminder).", until)

    async def _unhandled(self) -> Reason:
        total, unhandled = await self.arrivals.tally("old")
        if unhandled:
            return Reason("unhandled", "not yet", f"{unhandled} of {total} arrivals on the old address still "
                                                  f"wait for a look: forward, remind or mark them handled.")
        return Reason("unhandled", "ok", f"All {total} arrivals on the old address are handled."
                      if total else "No arrival waits for a look.")

    async def _final_reminder(self) -> Reason:
        item = await self.checklist.item("final_reminder")
        if item.state == "done":
            return Reason("final_reminder", "ok", f"The final reminder was sent ({item.evidence or 'ticked'}).")
        if item.state == "skipped":
            return Reason("final_reminder", "ok", "The final reminder was skipped by a person.")
        how = f": {item.proof_hint}" if item.proof_hint else ""
        return Reason("final_reminder", "not yet", f"The final reminder has not been sent (checklist item "
                                                   f"'final_reminder'{how}).")

    async def _final_backup(self) -> Reason:
        verified = await self.backups.last_verified()
        if verified is None:
            return Reason("final_backup", "not yet", "No backup has been verified yet; run "
                                                     "'switchover archive DIR' for the final one.")
        where = f"{verified.root} (verified {dt.datetime.fromtimestamp(verified.verified_at):%Y-%m-%d %H:%M}, " \
                f"{verified.messages:,} messages)"
        if not Path(verified.root).is_dir():
            return Reason("final_backup", "not yet", f"The last verified backup {where} is no longer there; "
                                                     f"run 'switchover archive DIR' again.")
        newest = await self.arrivals.page(side="old", limit=1)
        if newest and newest[0].seen_at > verified.verified_at:
            return Reason("final_backup", "not yet", f"The last verified backup {where} is older than the last "
                                                     f"arrival ({_when(newest[0].seen_at)}); run "
                                                     f"'switchover archive DIR' again.")
        return Reason("final_backup", "ok", f"Final backup {where}, after the last arrival; keep it 3–6 months "
                                            f"after closing.")

    def _watched(self, today: dt.date) -> Reason:
        start = self.config.transition.start
        if start is None:
            return Reason("watch", "unknown", "transition.start is not set, so how long the old mailbox has "
                                              "been watched cannot be told.")
        days = (today - start).days
        until = start + dt.timedelta(days=WATCH_DAYS)
        if days < WATCH_DAYS:
            return Reason("watch", "not yet", f"The transition is {max(days, 0)} days old (since {start}); the "
                                              f"old mailbox is watched at least {WATCH_DAYS} days, until {until}.",
                          until)
        return Reason("watch", "ok", f"Watched for {days} days since {start}.", until)

    def _close_date(self, today: dt.date) -> Reason:
        close = self.config.transition.close_date
        if close is None:
            return Reason("close_date", "note", "No transition.close_date is set: the notices and the auto-reply "
                                                "named no closing day.")
        if close > today:
            return Reason("close_date", "not yet", f"Correspondents were told the old address works until "
                                                   f"{close}.", close)
        return Reason("close_date", "ok", f"The announced closing date {close} has come.", close)
