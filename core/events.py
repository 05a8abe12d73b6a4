"""Typed events the engine publishes, and the bus that carries them to the faces.

Events are small frozen dataclasses. Publishing is thread-safe: worker threads call
:meth:`EventBus.publish` and subscribers run on the engine's asyncio loop (or directly,
when no loop is attached, e.g. in simple scripts). High-rate events set
``coalesce_key`` so a face may keep only the newest of each key.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Awaitable, Callable, ClassVar


@dataclass(frozen=True)
class Event:
    #: events with the same non-empty key replace each other in a face's queue
    coalesce: ClassVar[bool] = False

    @property
    def coalesce_key(self) -> str | None:
        return None


@dataclass(frozen=True)
class ConnectionState(Event):
    side: str            # "old" | "new"
    state: str           # "connecting" | "connected" | "reconnecting" | "auth failed" | "offline" | "idle"
    detail: str = ""


@dataclass(frozen=True)
class FolderProgress(Event):
    """Per-folder statistics of a running migrate / backup / import / verify."""

    coalesce: ClassVar[bool] = True
    job: str                 # "migrate" | "backup" | "import" | "verify"
    source: str
    destination: str
    state: str               # planned | queued | copying | waiting (daily cap) | done | verified | errors | paused | skipped | cancelled
    total_messages: int
    total_bytes: int
    done_messages: int = 0
    done_bytes: int = 0
    already_there: int = 0
    refused: int = 0
    errors: int = 0
    msgs_per_s: float = 0.0
    bytes_per_s: float = 0.0
    eta_s: float | None = None

    @property
    def coalesce_key(self) -> str | None:
        return f"{self.job}:{self.source}"


@dataclass(frozen=True)
class JobProgress(Event):
    """Overall progress of a job (sum over folders)."""

    coalesce: ClassVar[bool] = True
    job: str
    state: str               # running | pausing (batches in flight finishing) | paused | done | errors | failed | cancelled
    total_messages: int
    total_bytes: int
    done_messages: int
    done_bytes: int
    msgs_per_s: float = 0.0
    bytes_per_s: float = 0.0
    eta_s: float | None = None
    detail: str = ""

    @property
    def coalesce_key(self) -> str | None:
        return f"job:{self.job}"


@dataclass(frozen=True)
class LogLine(Event):
    level: str               # info | warning | error
    text: str


@dataclass(frozen=True)
class ArrivalSeen(Event):
    arrival_id: int
    side: str                # "old" | "new"
    sender: str
    subject: str
    badge: str


@dataclass(frozen=True)
class ActionChanged(Event):
    action_id: int
    arrival_id: int | None
    kind: str                # forward | remind | handled | notice
    state: str               # pending | running | done | failed | cancelled | doubt (sent, never confirmed)
    detail: str = ""


@dataclass(frozen=True)
class ChecklistChanged(Event):
    item: str
    state: str
    evidence: str = ""


@dataclass(frozen=True)
class Proven(Event):
    """A facet proved (or disproved) something the checklist tracks; the checklist
    facet subscribes and records it, so no facet calls another to tick an item."""
    item: str                # checklist key, e.g. "migrate", "verify", "backup", "login_old"
    ok: bool
    evidence: str
    #: an explicit check may take a proof back; a background attempt only notes its failure
    explicit: bool = True
    #: what was checked (e.g. a backup directory): a failure takes back only a proof whose
    #: evidence names the same subject; "" = any
    subject: str = ""


Subscriber = Callable[[Event], None]
Handler = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class NoticeChanged(Event):
    """A change notice (or final reminder, or internal notice) to one person changed state.
    core/notify publishes it; the people's owner (core/transition/people.py) subscribes and
    keeps its per-person "notified" / "bounced" marks, so neither calls the other."""
    address: str
    campaign: str            # "notice" | "internal" | "final" | "test"
    state: str               # "queued" | "sending" | "sent" | "doubt" | "failed" | "bounced" | "cancelled"
    detail: str = ""
    at: float = 0.0          # when it happened (time.time()); 0 = now


@dataclass(frozen=True)
class CampaignProgress(Event):
    """A running campaign's counts, for a progress line or pane."""
    campaign: str
    sent: int
    total: int
    failed: int = 0
    doubt: int = 0
    state: str = "running"   # "running" | "waiting" (pacing) | "paused" | "done" | "stopped"
    rate_per_hour: float = 0.0
    eta_seconds: float | None = None
    detail: str = ""


@dataclass
class EventBus:
    """Fan-out of events to subscribers; safe to publish from any thread."""

    _subscribers: list[Subscriber] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tasks: set["asyncio.Task[None]"] = field(default_factory=set)

    def attach(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def subscribe_async(self, types: tuple[type[Event], ...], fn: Handler) -> Callable[[], None]:
        """A coroutine reaction to events of ``types`` (a facet reacting to another's
        event): run as a task on the engine's loop; ``drain()`` waits for them all and a
        failure is published as a LogLine, never lost."""
        def on(event: Event) -> None:
            if isinstance(event, types):
                self._spawn(fn(event))
        return self.subscribe(on)

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - reported, never lost
                from .errors import sentence
                self.publish(LogLine("error", f"{getattr(coro, '__qualname__', 'a reaction')}: {sentence(e)}"))
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        task = loop.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for the reactions under way (the engine does before it closes)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            await asyncio.wait(list(self._tasks), timeout=left)

    def publish(self, event: Event) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self._deliver, event)
                return
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:  # a face's bug must not stop the engine
                pass
