"""``engine.schedule``: the rhythm of checking the old inbox during the transition, when
it was last checked and what is overdue.

The seed asks for regular checks of the old mailbox, "from once a day gradually down to
once a week" (频率可以从每天一次逐渐降低到每周一次), for at least three months. The rhythm
is counted from ``transition.start`` (day 1):

* days 1–28: every day (the weeks right after the notice bring most stray mail),
* days 29–60: every 3 days,
* day 61 on: every week, until the old account is closed (also after the close date:
  mail still reaching the old address is what decides whether it can close).

The rhythm is fixed (``RHYTHM``, documented in the README) rather than configured: the
closing rules lean on it and one well-chosen rhythm beats a setting nobody changes.

"Last checked" is when a watch last caught up on the old inbox — a running watch (its
marks move at each wakeup, at least every ~10 minutes), ``switchover watch --once`` or
the dashboard, in any process on this state file (``Monitor.last_checked``). A check is
due one interval after the last one; past that it is overdue, and the faces say so with
the command that catches up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Awaitable, Callable

from ..config import Config

#: (last day of the stretch or None for "until closed", days between checks)
RHYTHM: tuple[tuple[int | None, int], ...] = ((28, 1), (60, 3), (None, 7))

#: what catches up when a check is due (both faces name it)
CATCH_UP = "run 'switchover watch --once' or open the dashboard"

#: a last check younger than this is what a running watch leaves (its marks move at each
#: IDLE restart, every 9 minutes, or at each poll)
LIVE_SECONDS = 15 * 60


def every_days(day: int) -> int:
    """Days between checks on transition day ``day`` (1 = the start)."""
    for last, every in RHYTHM:
        if last is None or day <= last:
            return every
    return RHYTHM[-1][1]


def rhythm_lines(start: dt.date | None, close: dt.date | None) -> list[str]:
    """The rhythm in words, with dates when the start is known."""
    lines = []
    first = 1
    for last, every in RHYTHM:
        how = "every day" if every == 1 else f"every {every} days" if every < 7 else "every week"
        if last is None:
            until = f"until the old account is closed{f' (planned {close})' if close else ''}"
            span = f"day {first} on"
            if start:
                span += f" ({start + dt.timedelta(days=first - 1)} on)"
        else:
            span = f"days {first}–{last}"
            if start:
                span += (f" ({start + dt.timedelta(days=first - 1)} to "
                         f"{start + dt.timedelta(days=last - 1)})")
            until = ""
        lines.append(f"{span}: {how}" + (f", {until}" if until else ""))
        first = (last or 0) + 1
    return lines


def ago(seconds: float) -> str:
    """'just now', '12 min', '5 h', '3 days' (whole units, rounded down)."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return "less than a minute"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days != 1 else ''}"


@dataclass(frozen=True)
class ScheduleStatus:
    """Where the transition stands against its check rhythm at ``now``."""
    now: dt.datetime
    start: dt.date | None
    close: dt.date | None
    day: int | None                  # transition day (1 = start), None without a start
    every_days: int                  # days between checks now
    last_checked: dt.datetime | None
    next_due: dt.datetime | None     # None before the first check (due at once)

    @property
    def started(self) -> bool:
        return self.start is None or self.now.date() >= self.start

    @property
    def overdue_seconds(self) -> float:
        """How long a due check has waited (0 when none is due)."""
        if not self.started:
            return 0.0
        if self.next_due is None:
            return 1.0 if self.last_checked is None else 0.0
        return max(0.0, (self.now - self.next_due).total_seconds())

    @property
    def overdue(self) -> bool:
        return self.overdue_seconds > 0

    @property
    def watching(self) -> bool:
        """The last check is as fresh as a running watch keeps it."""
        return (self.last_checked is not None
                and (self.now - self.last_checked).total_seconds() < LIVE_SECONDS)

    def rhythm_now(self) -> str:
        if self.every_days == 1:
            return "a check every day"
        if self.every_days < 7:
            return f"a check every {self.every_days} days"
        return "a check every week"

    def short(self) -> str:
        """The status line's words: 'checked 2 h ago', 'check overdue (3 days)'."""
        if self.last_checked is None:
            return "old inbox never checked" if self.started else "checks start with the transition"
        if self.overdue:
            return f"check overdue ({ago(self.overdue_seconds)})"
        return f"checked {ago((self.now - self.last_checked).total_seconds())} ago"

    def sentence(self) -> str:
        """The whole story in one sentence (the CLI and the dashboard say it alike)."""
        if not self.started:
            return (f"The transition starts on {self.start}; from then on the schedule wants "
                    f"a check every day.")
        if self.last_checked is None:
            return f"The old inbox has never been checked; {CATCH_UP}."
        since = ago((self.now - self.last_checked).total_seconds())
        text = f"Last checked {since} ago ({self.last_checked:%Y-%m-%d %H:%M})"
        if self.overdue:
            return f"{text}; the schedule wants {self.rhythm_now()} — {CATCH_UP}."
        assert self.next_due is not None
        return f"{text}; the schedule wants {self.rhythm_now()}, next by {self.next_due:%Y-%m-%d %H:%M}."


def schedule_status(start: dt.date | None, close: dt.date | None, last_checked: float | None,
                    now: dt.datetime) -> ScheduleStatus:
    """The status at ``now`` (naive local time) from the transition's dates and the last
    check's timestamp. Without a start date the first stretch's rhythm (daily) applies."""
    day = (now.date() - start).days + 1 if start else None
    every = every_days(day) if day and day > 0 else RHYTHM[0][1]
    last = dt.datetime.fromtimestamp(last_checked) if last_checked else None
    next_due = last + dt.timedelta(days=every) if last else None
    if next_due is not None and start and next_due.date() < start:
        next_due = dt.datetime.combine(start, dt.time())   # nothing is due before day 1
    return ScheduleStatus(now=now, start=start, close=close, day=day, every_days=every,
                          last_checked=last, next_due=next_due)


class Schedule:
    """``engine.schedule``: built from the config and the watch's ``last_checked``."""

    def __init__(self, config: Config, last_checked: Callable[[], Awaitable[float | None]]) -> None:
        self.config = config
        self._last_checked = last_checked

    async def status(self, now: dt.datetime | None = None) -> ScheduleStatus:
        t = self.config.transition
        return schedule_status(t.start, t.close_date, await self._last_checked(), now or dt.datetime.now())

    def rhythm(self) -> list[str]:
        t = self.config.transition
        return rhythm_lines(t.start, t.close_date)
