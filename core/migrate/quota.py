"""Daily byte caps of the providers (issue 3: "Gmail: 2,500 MB/day download, 500 MB/day
upload, respected and shown in the ETA").

Owns the rolling-window account of bytes moved by the migration. A copy moves the same
bytes out of the old account (download) and into the new one (upload), so one ledger
serves both caps; the smaller cap binds. It starts from the state file (what the
migration's ledger says was copied within the window) so a rerun the same day remembers
what the previous run spent, and grows in memory as batches are reserved.

The window is ``DailyQuota.window`` seconds (24 h); tests shorten it per instance.

ETA model (documented for the dashboards): bytes left that fit in what the window still
allows go at the current rate; if more is left, the ETA adds the time until enough of
the window has expired (whole extra windows when even an empty window is too small),
i.e. ``eta = wait + left / rate`` (the rate part is left out while no rate is known,
e.g. after the lanes have been waiting for a while: the ETA is then the wait alone).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..config import Account
from ..providers import PROVIDERS
from .ledger import Ledger

DAY = 24 * 3600.0


@dataclass(frozen=True)
class Cap:
    side: str          # "old" | "new"
    kind: str          # "download" | "upload"
    limit: int         # bytes per window
    provider: str      # provider key of the account

    def sentence(self, until: float, now: float | None = None) -> str:
        """'Gmail's daily upload limit (500 MB) is reached; copying resumes at 14:05 tomorrow'."""
        if self.provider != "custom" and self.provider in PROVIDERS:
            who = PROVIDERS[self.provider].label.split(" /")[0].split(" (")[0] + "'s"
        else:
            who = f"The {self.side} account's"
        at = dt.datetime.fromtimestamp(until)
        today = dt.datetime.fromtimestamp(now if now is not None else time.time()).date()
        if at.date() == today:
            when = f"{at:%H:%M:%S}" if until - (now or time.time()) < 120 else f"{at:%H:%M} today"
        elif at.date() == today + dt.timedelta(days=1):
            when = f"{at:%H:%M} tomorrow"
        else:
            when = f"{at:%Y-%m-%d %H:%M}"
        return f"{who} daily {self.kind} limit ({_mb(self.limit)}) is reached; copying resumes at {when}"


def _mb(n: int) -> str:
    mb = n / 1e6
    return f"{mb:,.0f} MB" if mb >= 10 else f"{mb:,.2g} MB"


class DailyQuota:
    """Bytes copied in the last ``window`` seconds against the binding daily cap."""

    window: float = DAY

    def __init__(self, caps: list[Cap], window: float | None = None) -> None:
        if not caps:
            raise ValueError("DailyQuota needs at least one cap")
        if window is not None:
            self.window = window
        self.caps = caps
        self.cap = min(caps, key=lambda c: c.limit)    # the one that binds
        self.limit = self.cap.limit
        self.ledger: deque[tuple[float, int]] = deque()  # (time.time(), bytes), oldest first
        self.used = 0
        self.waiting_until: float | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    @classmethod
    def for_accounts(cls, old: Account, new: Account, window: float | None = None) -> "DailyQuota | None":
        """The quota of a copy old → new, or None when neither side has a cap (the copy
        then skips every budget check)."""
        caps = []
        if old.daily_download_bytes:
            caps.append(Cap("old", "download", old.daily_download_bytes, old.provider))
        if new.daily_upload_bytes:
            caps.append(Cap("new", "upload", new.daily_upload_bytes, new.provider))
        return cls(caps, window) if caps else None

    async def load(self, ledger: Ledger) -> None:
        """Start from what the state file says was copied within the window."""
        # rows grouped in short buckets (stamped with their newest row: a bucket expires
        # no earlier than its bytes) keep the ledger small however many messages moved
        bucket = max(0.001, min(60.0, self.window / 200))
        self.ledger = deque(await ledger.copied_since(time.time() - self.window, bucket))
        self.used = sum(n for _, n in self.ledger)

    def _expire(self, now: float) -> None:
        edge = now - self.window
        while self.ledger and self.ledger[0][0] <= edge:
            self.used -= self.ledger.popleft()[1]

    def allowance(self, now: float | None = None) -> int:
        """Bytes that may still be copied in the current window."""
        self._expire(now if now is not None else time.time())
        return max(0, self.limit - self.used)

    def free_at(self, need: int, now: float) -> float:
        """When the window allows ``need`` more bytes (``need`` at most the limit)."""
        need = min(need, self.limit)
        excess = self.used + need - self.limit
        if excess <= 0:
            return now
        freed = 0
        for t, n in self.ledger:
            freed += n
            if freed >= excess:
                return t + self.window
        return now

    async def reserve(self, n: int, stopped: Callable[[], bool],
                      on_wait: Callable[[Cap, float], None]) -> bool:
        """Count ``n`` bytes as copied now, first waiting (no busy loop) until the window
        allows them. A batch bigger than the whole cap goes alone into an empty window.
        ``on_wait`` is called once per wait; returns False when ``stopped()`` (cancel)."""
        async with self._lock:
            while True:
                now = time.time()
                self._expire(now)
                if self.used + n <= self.limit or self.used == 0:
                    self.ledger.append((now, n))
                    self.used += n
                    self.waiting_until = None
                    return True
                if stopped():
                    self.waiting_until = None
                    return False
                until = self.free_at(n, now)
                first = self.waiting_until is None
                self.waiting_until = until      # set first: on_wait publishes "waiting" rows
                if first:
                    on_wait(self.cap, until)
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, until - now))
                except asyncio.TimeoutError:
                    pass

    def refund(self, n: int) -> None:
        """Give back a reservation whose batch moved nothing (newest entry of that size)."""
        for i in range(len(self.ledger) - 1, -1, -1):
            if self.ledger[i][1] == n:
                del self.ledger[i]
                self.used -= n
                return

    def wake(self) -> None:
        """Cut every wait short (cancel)."""
        self._wake.set()

    def eta(self, left: int, bytes_per_s: float, now: float | None = None) -> float | None:
        """Seconds to copy ``left`` bytes under the cap (see the module docstring); None
        when nothing is known (no rate and no wait)."""
        now = now if now is not None else time.time()
        allow = self.allowance(now)
        run = left / bytes_per_s if bytes_per_s > 0 else None
        if left <= allow:
            return run
        rest = left - allow          # bytes that must wait for the window to free
        wait = 0.0
        freed = 0
        for t, n in self.ledger:
            freed += n
            wait = t + self.window - now
            if freed >= rest:
                break
        if freed < rest:             # even a whole empty window is too small: more windows
            wait += math.ceil((rest - freed) / self.limit) * self.window
        return max(0.0, wait) + (run or 0.0)
