"""How fast the change notices go: the provider's preset (core/providers.py) or the
user's ``notices.per_hour`` / ``per_day``, the waits between messages, the slow-down on
4xx answers, and the ETA.

A campaign spreads its messages evenly (one every ``3600 / per_hour`` seconds) and never
has more than ``per_minute`` / ``per_hour`` / ``per_day`` messages in the last minute,
hour or day — the day counted from what the ledger says was sent, so a restart does not
start a fresh day. The clock and the sleep are injected: the tests run a day of pacing
on a simulated clock in milliseconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable

from ..config import Account, NoticeSettings
from ..providers import PROVIDERS

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: consumer Gmail accounts may send 500 a day (Workspace: the preset's 2,000)
GMAIL_CONSUMER_PER_DAY = 500
#: the first wait after a 4xx, doubled on each further one up to MAX_BACKOFF
FIRST_BACKOFF = 60.0
MAX_BACKOFF = 3600.0


@dataclass(frozen=True)
class Pace:
    per_minute: int | None
    per_hour: int
    per_day: int
    source: str                       # "the gmail preset" | "notices.per_hour / per_day"

    @property
    def interval(self) -> float:
        """Seconds between two messages when nothing else holds them back."""
        gaps = [3600.0 / self.per_hour]
        if self.per_minute:
            gaps.append(60.0 / self.per_minute)
        return max(gaps)

    def words(self) -> str:
        minute = f"{self.per_minute} a minute, " if self.per_minute else ""
        return f"{minute}{self.per_hour:,} an hour, {self.per_day:,} a day ({self.source})"


def pace_for(account: Account, settings: NoticeSettings) -> Pace:
    """The pace of ``account``: the user's settings over the provider's preset."""
    provider = PROVIDERS.get(account.provider or "custom") or PROVIDERS["custom"]
    per_day = provider.notice_per_day
    if provider.key == "gmail" and account.username.lower().endswith(("@gmail.com", "@googlemail.com")):
        per_day = GMAIL_CONSUMER_PER_DAY
    source = f"the {provider.key} preset"
    if settings.per_hour or settings.per_day:
        source = "notices.per_hour / per_day"
    per_hour = settings.per_hour or provider.notice_per_hour
    per_day = settings.per_day or per_day
    return Pace(provider.notice_per_minute, min(per_hour, per_day), per_day, source)


class Pacer:
    """When the next message may go. ``history``: when earlier messages went (the
    ledger's last day), so the day's limit holds across restarts."""

    def __init__(self, pace: Pace, clock: Clock = time.time, sleep: Sleep = asyncio.sleep,
                 history: Iterable[float] = ()) -> None:
        self.pace, self.clock, self.sleep = pace, clock, sleep
        self._sent: deque[float] = deque(sorted(history))
        self._hold_until = 0.0
        self._backoff = 0.0

    def _trim(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - 86400:
            self._sent.popleft()

    def _in_last(self, span: float, now: float) -> list[float]:
        return [t for t in self._sent if t > now - span]

    def next_slot(self) -> float:
        """The earliest time the next message may go."""
        now = self.clock()
        self._trim(now)
        slot = max(now, self._hold_until)
        if self._sent:
            slot = max(slot, self._sent[-1] + self.pace.interval)
        for span, cap in ((60.0, self.pace.per_minute), (3600.0, self.pace.per_hour),
                          (86400.0, self.pace.per_day)):
            recent = self._in_last(span, now)
            if cap and len(recent) >= cap:
                slot = max(slot, recent[len(recent) - cap] + span)
        return slot

    def sent_today(self) -> int:
        now = self.clock()
        self._trim(now)
        return len(self._sent)

    async def wait(self, wake: asyncio.Event | None = None) -> float:
        """Sleep until the next slot, or until ``wake`` is set (a pause or a stop is
        heard at once, however long the wait); returns the seconds waited."""
        start = self.clock()
        while True:
            left = self.next_slot() - self.clock()
            if left <= 0 or (wake is not None and wake.is_set()):
                break
            if wake is None:
                await self.sleep(left)
                continue
            sleeper = asyncio.ensure_future(self.sleep(left))
            waker = asyncio.ensure_future(wake.wait())
            done, pending = await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if waker in done:
                break
        return self.clock() - start

    def sent(self, when: float | None = None) -> None:
        self._sent.append(self.clock() if when is None else when)
        self._backoff = 0.0

    def slow_down(self) -> float:
        """A 4xx ("try later", "too fast"): hold back, longer each time; the seconds."""
        self._backoff = min(MAX_BACKOFF, self._backoff * 2 if self._backoff else FIRST_BACKOFF)
        self._hold_until = self.clock() + self._backoff
        return self._backoff

    def eta(self, remaining: int) -> float:
        """Seconds until ``remaining`` more messages have gone at this pace."""
        if remaining <= 0:
            return 0.0
        wait = max(0.0, self.next_slot() - self.clock())
        left_today = max(0, self.pace.per_day - self.sent_today())
        if remaining <= left_today:
            return wait + (remaining - 1) * self.pace.interval
        later = remaining - left_today
        days = math.ceil(later / self.pace.per_day)
        last_day = later - (days - 1) * self.pace.per_day
        return days * 86400.0 + (last_day - 1) * self.pace.interval
