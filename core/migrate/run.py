"""One migration run as its parts share it: the job (pause / resume / cancel, pieces in
flight), the folder runs and their groups, the summary (errors, refusals with each
cause logged once), the daily caps, and the progress events the faces see (per folder,
coalesced, and the job's total with rate and ETA).

Every blocking read, fetch or append goes through :meth:`RunState.io`: it waits while
the job is paused (nothing new goes out) and counts as a piece in flight, so the job
reads ``pausing`` until the pieces under way end.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, TypeVar

from ..context import Blocking
from ..events import EventBus, FolderProgress, JobProgress, LogLine
from ..jobs import Job
from ..progress import Meter, Rate
from .quota import Cap, DailyQuota
from .records import FolderRun, Group, MigrationSummary, Refusal, refusal_cause
from .transfer import SrcMsg

T = TypeVar("T")

TICK = 0.2                       # seconds between progress events (per folder, coalesced)


class RunState:
    """The shared state of one run; see the module docstring."""

    def __init__(self, job: Job, bus: EventBus, blocking: Blocking,
                 quota: DailyQuota | None = None) -> None:
        self.job = job
        self.bus = bus
        self.blocking = blocking
        self.quota = quota
        self.summary = MigrationSummary()
        self.runs: list[FolderRun] = []
        self.groups: list[Group] = []
        #: the first error that stops the copy (a lane could not go on)
        self.fatal: BaseException | None = None
        self.t0 = time.monotonic()
        self._causes: dict[str, int] = {}

    # -- the job ----------------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self.job.cancelled

    def stopping(self) -> bool:
        """Nothing more should start: cancelled, or a lane failed."""
        return self.job.cancelled or self.fatal is not None

    def fail(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking read, fetch or append in a worker thread, as a piece of the job."""
        async with self.job.piece():
            return await self.blocking.run(fn, *args)

    async def sleep_until(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic), cut short by a cancel."""
        while not self.cancelled and time.monotonic() < deadline:
            await asyncio.sleep(min(0.1, deadline - time.monotonic()))

    # -- words -------------------------------------------------------------------------------
    def log(self, level: str, text: str) -> None:
        self.bus.publish(LogLine(level, text))

    def folder_error(self, r: FolderRun, text: str) -> None:
        r.state, r.errors = "errors", r.errors + 1
        self.summary.errors.append(f"{r.source}: {text}")
        self.log("error", f"{r.source}: {text}")

    def group_error(self, g: Group, text: str) -> None:
        g.failed = True
        for r in g.folders:
            r.state, r.errors = "errors", r.errors + 1
        self.summary.errors.append(f"{g.destination}: {text}")
        self.log("error", f"{g.destination}: {text}")

    def refuse(self, r: FolderRun, m: SrcMsg, why: str) -> None:
        """Count a refusal; the first of each cause goes to the log with the server's words."""
        r.refused += 1
        self.summary.refused.append(Refusal(r.source, m.uid, m.subject, m.size, why))
        key, _ = refusal_cause(why)
        self._causes[key] = self._causes.get(key, 0) + 1
        if self._causes[key] == 1:
            self.log("warning", f"{r.source}: the new server refused message {m.uid} "
                                f"({m.subject[:60]!r}): {why}")

    def quota_wait(self, cap: Cap, until: float) -> None:
        """The daily cap is reached: say until when (once per wait), show 'waiting'."""
        self.log("warning", cap.sentence(until))
        self.publish(force=True)

    # -- progress ----------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self.job.state in ("pausing", "paused")

    def rows(self) -> list[FolderProgress]:
        return [r.progress(self.paused, self.quota) for r in self.runs]

    async def ticker(self) -> None:
        """Progress events every TICK seconds while the run lasts (cancel the task)."""
        while True:
            await asyncio.sleep(TICK)
            self.publish()

    def publish(self, force: bool = False, final: str | None = None) -> None:
        """Folder rows that changed (all with ``force``) and the job's total."""
        tot_m = tot_b = done_m = done_b = 0
        mps = bps = 0.0
        for r in self.runs:
            ev = r.progress(self.paused, self.quota)
            key = (ev.state, ev.done_messages, ev.done_bytes, ev.total_messages, ev.refused, ev.errors)
            if force or key != r.published:
                r.published = key
                self.bus.publish(ev)
            tot_m += ev.total_messages
            tot_b += ev.total_bytes
            done_m += ev.done_messages
            done_b += ev.done_bytes
            mps += ev.msgs_per_s
            bps += ev.bytes_per_s
        if final:
            state = final
        elif self.paused:
            state = self.job.state
        else:
            state = "cancelled" if self.job.state == "cancelling" else "running"
        left = max(0, tot_b - done_b)
        if final:
            eta = None
        elif self.quota is not None:
            eta = self.quota.eta(left, bps)
        else:
            eta = Meter.eta(left, Rate(mps, bps)) if bps > 0 else None
        detail = "the batches in flight are finishing" if state == "pausing" else ""
        self.bus.publish(JobProgress("migrate", state, tot_m, tot_b, done_m, done_b, mps, bps, eta,
                                     detail=detail))

    def finish(self, outcome: str) -> MigrationSummary:
        """The summary of the run as it ends with ``outcome``; the final events go out."""
        s = self.summary
        s.elapsed = time.monotonic() - self.t0
        s.transferred = sum(r.copied for r in self.runs)
        s.bytes = sum(r.copied_bytes for r in self.runs)
        s.already_there = sum(r.present for r in self.runs)
        s.messages = sum(r.total_messages for r in self.runs)
        s.msgs_per_s = s.transferred / s.elapsed if s.elapsed > 0 else 0.0
        s.bytes_per_s = s.bytes / s.elapsed if s.elapsed > 0 else 0.0
        for r in self.runs:
            if outcome == "failed" and r.state in ("copying", "planned", "queued"):
                r.state = "errors"     # the run broke off: unfinished, never "done"
        s.folders = [r.progress() for r in self.runs]
        s.refused = list({(ref.folder, ref.uid): ref for ref in s.refused}.values())
        s.cancelled = self.cancelled
        s.ok = not s.errors and not s.refused and not s.cancelled
        for label, n in s.refusal_groups():
            self.log("error", f"{n:,} message{'s' if n != 1 else ''} not copied: {label}")
        self.publish(force=True, final=outcome)
        return s
