"""The one progress meter (rate over a sliding window, ETA), the per-folder tally a
job reports as ``FolderProgress``, the one batcher, and the one way sizes, rates and
durations are written for people — used by migrate, backup and import, and by both
faces (the CLI's progress line and the dashboard's tables).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

import humanize

from .events import FolderProgress

T = TypeVar("T")


@dataclass(frozen=True)
class Rate:
    msgs_per_s: float
    bytes_per_s: float


class Meter:
    """Counts done messages and bytes; ``rate()`` over the last ``window`` seconds,
    ``eta(bytes_left)`` from it. Bounded: a job that runs for days keeps a few points."""

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.messages = 0
        self.bytes = 0
        self._points: deque[tuple[float, int, int]] = deque(maxlen=64)

    def add(self, messages: int = 1, nbytes: int = 0) -> None:
        self.messages += messages
        self.bytes += nbytes

    def rate(self) -> Rate:
        now = self.clock()
        self._points.append((now, self.messages, self.bytes))
        while len(self._points) > 2 and now - self._points[0][0] > self.window:
            self._points.popleft()
        t0, m0, b0 = self._points[0]
        span = now - t0
        if span <= 0.05:
            return Rate(0.0, 0.0)
        return Rate((self.messages - m0) / span, (self.bytes - b0) / span)

    @staticmethod
    def eta(bytes_left: int, rate: Rate) -> float | None:
        """Seconds until ``bytes_left`` are done at ``rate``; None while nothing moves."""
        if bytes_left <= 0:
            return 0.0
        return bytes_left / rate.bytes_per_s if rate.bytes_per_s > 0 else None


@dataclass
class Tally:
    """What one folder of a job has done so far: the numbers of its FolderProgress."""

    job: str
    source: str
    destination: str
    total: int = 0
    total_bytes: int = 0
    done: int = 0            # already there included
    done_bytes: int = 0
    already: int = 0
    refused: int = 0
    errors: int = 0

    def add(self, messages: int = 1, nbytes: int = 0) -> None:
        """Messages this run wrote or uploaded."""
        self.done += messages
        self.done_bytes += nbytes

    def found(self, messages: int = 1, nbytes: int = 0) -> None:
        """Messages that were there already."""
        self.already += messages
        self.add(messages, nbytes)

    def event(self, state: str, rate: Rate | None = None) -> FolderProgress:
        rate = rate or Rate(0.0, 0.0)
        left = max(self.total_bytes - self.done_bytes, 0)
        return FolderProgress(
            job=self.job, source=self.source, destination=self.destination, state=state,
            total_messages=self.total, total_bytes=self.total_bytes, done_messages=self.done,
            done_bytes=self.done_bytes, already_there=self.already, refused=self.refused,
            errors=self.errors, msgs_per_s=rate.msgs_per_s, bytes_per_s=rate.bytes_per_s,
            eta_s=Meter.eta(left, rate) if left else None)


def batches(items: Iterable[T], count: int, nbytes: int,
            size: Callable[[T], int]) -> Iterator[list[T]]:
    """Split ``items`` into runs of at most ``count`` items and ``nbytes`` bytes (an item
    bigger than ``nbytes`` goes alone)."""
    cur: list[T] = []
    used = 0
    for item in items:
        n = size(item)
        if cur and (len(cur) >= count or used + n > nbytes):
            yield cur
            cur, used = [], 0
        cur.append(item)
        used += n
    if cur:
        yield cur


def fmt_bytes(n: float) -> str:
    """1,234,567 → '1.2 MB' (decimal units, as providers state quotas); whole bytes
    below 1,000 ('0 B', '999 B'), never humanize's 'Bytes'."""
    if abs(n) < 1000:
        return f"{n:.0f} B"
    return humanize.naturalsize(n, binary=False, format="%.1f")


def fmt_rate(bytes_per_s: float) -> str:
    return f"{bytes_per_s / 1e6:,.1f} MB/s"


def fmt_eta(seconds: float | None) -> str:
    """'42s', '3m05s', '2h07m' (six cells up to 99 hours: the dashboard's ETA column);
    '--:--' when unknown."""
    if seconds is None or seconds < 0:
        return "--:--"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def fmt_duration(seconds: float) -> str:
    """A duration in words: '3 minutes', '2 days'."""
    return humanize.naturaldelta(seconds)
