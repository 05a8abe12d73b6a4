"""The numbers a change request argues with, derived from measured facts and the config:
capacity (quota use, growth, when the mailbox fills), the migration's size and an
estimate of its duration, and the timeline from the configured dates.

Pure functions, no servers, no language: core/prepare/letter.py words them. A number
that cannot be derived is ``None`` and the letter says why.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from ..config import Account, Config
from .mailfacts import MailboxFacts

#: copy speed switchover measured over a 50 ms link (docs/BENCHMARKS.md, corpus "wan":
#: 6.0 MB/s, 862 msg/s); a real link to a provider is rarely faster, so this is the
#: optimistic end of the estimate and the daily caps usually decide
BENCH_BYTES_PER_S = 6.0e6
BENCH_MESSAGES_PER_S = 862.0
#: days the seed advises to keep watching the old mailbox at least
MIN_WATCH_DAYS = 90


@dataclass(frozen=True)
class Capacity:
    used: int | None
    limit: int | None
    share: float | None                 # used / limit
    last_year: tuple[int, int] | None   # (year, messages) of the last complete year
    before: tuple[int, int] | None      # the year before it
    growth: float | None                # last_year / before - 1
    this_year: tuple[int, int] | None   # (year, messages so far)
    months_left: float | None           # until the quota is full at last year's pace
    average_message: int | None         # bytes


@dataclass(frozen=True)
class CopyPlan:
    folders: int
    messages: int
    size: int | None
    seconds: float | None               # at the benchmark rate
    cap_bytes: int | None               # the binding daily cap (bytes / day), if any
    cap_side: str                       # "old" (download) | "new" (upload) | ""
    cap_provider: str
    days: int | None                    # whole days the caps stretch the copy to


@dataclass(frozen=True)
class Step:
    when: dt.date | None
    what: str                           # key: setup | migrate | notice | watch | final | close
    until: dt.date | None = None
    missing: str = ""                   # the config key that would give the date


def capacity(facts: MailboxFacts, today: dt.date) -> Capacity:
    years = dict(facts.per_year)
    complete = sorted(y for y in years if y < today.year)
    last = (complete[-1], years[complete[-1]]) if complete else None
    before = (complete[-2], years[complete[-2]]) if len(complete) >= 2 else None
    growth = (last[1] / before[1] - 1) if last and before and before[1] else None
    this_year = (today.year, years[today.year]) if today.year in years else None
    size, messages = facts.size, facts.messages
    average = int(size / messages) if size is not None and messages else None
    q = facts.quota
    months_left = None
    if q and average and last and last[1]:
        per_month = last[1] * average / 12
        months_left = max(0.0, (q.limit - q.used) / per_month)
    return Capacity(used=q.used if q else size, limit=q.limit if q else None,
                    share=q.share if q else None, last_year=last, before=before, growth=growth,
                    this_year=this_year, months_left=months_left, average_message=average)


def copy_plan(facts: MailboxFacts, old: Account, new: Account) -> CopyPlan:
    size = facts.size
    seconds = None
    if facts.folders:
        by_bytes = (size or 0) / BENCH_BYTES_PER_S
        seconds = max(by_bytes, facts.messages / BENCH_MESSAGES_PER_S)
    caps = [(c, side, acct.provider) for c, side, acct in
            ((old.daily_download_bytes, "old", old), (new.daily_upload_bytes, "new", new)) if c]
    cap, side, provider = min(caps, key=lambda t: t[0]) if caps else (None, "", "")
    days = math.ceil(size / cap) if cap and size is not None else None
    return CopyPlan(folders=len(facts.folders), messages=facts.messages, size=size,
                    seconds=seconds, cap_bytes=cap, cap_side=side, cap_provider=provider,
                    days=days)


def timeline(config: Config, copy: CopyPlan) -> list[Step]:
    """Setup and tests after approval; the copy done before the switch; the notice and
    the old mailbox's auto-reply on transition.start; watching until close_date (daily,
    later weekly); the final reminder notices.final_reminder_days before; closing."""
    t = config.transition
    start, close = t.start, t.close_date
    copy_days = max(1, copy.days or 1)
    steps = [Step(None, "setup")]
    if start:
        steps.append(Step(start - dt.timedelta(days=copy_days + 2), "migrate",
                          until=start - dt.timedelta(days=1)))
        steps.append(Step(start, "notice"))
    else:
        steps += [Step(None, "migrate", missing="transition.start"),
                  Step(None, "notice", missing="transition.start")]
    if start and close:
        steps.append(Step(start, "watch", until=close))
        final = close - dt.timedelta(days=config.notices.final_reminder_days)
        steps.append(Step(max(final, start), "final"))
    else:
        missing = "transition.close_date" if start else "transition.start"
        steps += [Step(start, "watch", missing=missing), Step(None, "final", missing=missing)]
    steps.append(Step(close, "close", missing="" if close else "transition.close_date"))
    return steps


def watch_days(config: Config) -> int | None:
    t = config.transition
    return (t.close_date - t.start).days if t.start and t.close_date else None
