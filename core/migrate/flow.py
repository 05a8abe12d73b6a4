"""Flow control of the copy: how much the lanes hold and send at once.

* ``ByteBudget`` bounds the message bytes in memory, all lanes together (peak RSS).
* ``BatchSize`` adapts batches to the link: a dropped connection halves what a batch
  holds (bytes and count, at least below what just failed), every batch that goes
  through grows it back by a tenth, so a link that drops more often than one batch
  still makes progress.
* ``FolderGate`` lets appends into one destination folder run side by side, while
  re-reading what a broken append left waits for them and holds new ones back.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, Sequence, TypeVar

T = TypeVar("T")

MEMORY_BUDGET = 48 * 2**20       # message bytes in flight, all lanes together (peak RSS)
MIN_BATCH_BYTES = 32 * 2**10     # the smallest batch a dropping link shrinks to (or 1 message)
MAX_DROPS = 12                   # drops in a row without progress before a batch gives up


class ByteBudget:
    """Bounds the message bytes held in memory by all lanes together."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self.cond = asyncio.Condition()

    async def acquire(self, n: int) -> None:
        n = min(n, self.cap)
        async with self.cond:
            await self.cond.wait_for(lambda: self.used == 0 or self.used + n <= self.cap)
            self.used += n

    def release(self, n: int) -> None:
        self.used = max(0, self.used - min(n, self.cap))

        async def wake() -> None:
            async with self.cond:
                self.cond.notify_all()
        asyncio.get_running_loop().create_task(wake())


class BatchSize:
    """What a batch may hold now: a share (``scale``) of the configured size."""

    def __init__(self, messages: int, nbytes: int) -> None:
        self.messages = messages
        self.nbytes = nbytes
        self.scale = 1.0

    def limits(self) -> tuple[int, int]:
        """(messages, bytes) a batch may hold now."""
        return (max(1, int(self.messages * self.scale)),
                max(MIN_BATCH_BYTES, int(self.nbytes * self.scale)))

    def fits(self, items: Sequence[T], size: Callable[[T], int]) -> int:
        """How many of ``items``, from the first, make one batch now (at least one)."""
        lim_m, lim_b = self.limits()
        n = used = 0
        for item in items:
            if n and (n >= lim_m or used + size(item) > lim_b):
                break
            n += 1
            used += size(item)
        return n

    def shrink(self, failed_bytes: int) -> None:
        """A connection dropped with ``failed_bytes`` in flight: halve what a batch holds
        (at least below what just failed)."""
        self.scale = max(1e-6, min(self.scale / 2, failed_bytes / 2 / max(1, self.nbytes)))

    def grow(self) -> None:
        """A batch went through: grow back slowly (a tenth per batch)."""
        if self.scale < 1.0:
            self.scale = min(1.0, self.scale * 1.1)


class FolderGate:
    """Appends into one destination folder run side by side; re-reading what a broken
    append left waits for them to end and holds new ones back (so every UID it finds
    that no placement claims came from the broken append)."""

    def __init__(self) -> None:
        self.active = 0
        self.closed = False
        self.cond = asyncio.Condition()

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self.cond:
            await self.cond.wait_for(lambda: not self.closed)
            self.active += 1
        try:
            yield
        finally:
            async with self.cond:
                self.active -= 1
                self.cond.notify_all()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self.cond:
            await self.cond.wait_for(lambda: not self.closed)
            self.closed = True
            await self.cond.wait_for(lambda: self.active == 0)
        try:
            yield
        finally:
            async with self.cond:
                self.closed = False
                self.cond.notify_all()


CHUNK = 5000                     # headers read per FETCH while planning a big folder
MIN_CHUNK = 50                   # ... and the least it shrinks to on a link that drops


class ReadSize:
    """Headers read per FETCH while planning (source and destination): CHUNK, halved
    after each drop down to MIN_CHUNK, so a dropping link still makes progress."""

    def __init__(self) -> None:
        self.chunk = CHUNK

    @property
    def whole(self) -> bool:
        """Reads have not shrunk: small folders may be read whole, pipelined."""
        return self.chunk >= CHUNK

    @property
    def small(self) -> int:
        """A folder of at most this many messages is read whole (in one pipelined read)."""
        return min(CHUNK, self.chunk)

    def shrink(self) -> None:
        self.chunk = max(MIN_CHUNK, self.chunk // 2)
