"""The event pump between the engine and the screen.

The engine publishes events from its loop or from worker threads, possibly thousands a
second while a migration copies. The pump only *collects* them (thread-safe, coalescing
events that share a ``coalesce_key`` so a flood of folder ticks collapses to the newest
one per folder); the app drains it on a timer a few times a second and hands each pane
a batch. That keeps repaints bounded no matter how fast the engine goes.
"""

from __future__ import annotations

import threading
from collections import deque

from switchover.core.events import Event

#: plain (non-coalescing) events kept between two drains; older ones are dropped so a
#: burst can never grow memory (the panes re-read state from SQLite when they need to)
MAX_PENDING = 5000


class EventPump:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # one ordered stream: coalescing events keep their first position, newest value
        self._order: deque[tuple[str | None, Event]] = deque(maxlen=MAX_PENDING)
        self._latest: dict[str, Event] = {}
        self.dropped = 0

    def push(self, event: Event) -> None:
        key = event.coalesce_key if event.coalesce else None
        with self._lock:
            if key is not None:
                if key in self._latest:
                    self._latest[key] = event
                    return
                self._latest[key] = event
            if len(self._order) == self._order.maxlen:
                self.dropped += 1
                old_key, _ = self._order[0]
                if old_key is not None:
                    self._latest.pop(old_key, None)
            self._order.append((key, event))

    def drain(self) -> list[Event]:
        with self._lock:
            items = list(self._order)
            latest = self._latest
            self._order.clear()
            self._latest = {}
        return [latest.get(key, ev) if key is not None else ev for key, ev in items]
