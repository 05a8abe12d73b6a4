"""The one job model: migration, backup and import are asyncio jobs that pause, resume
and cancel the same way, hold the same per-kind lock and record their runs alike.

A job's work calls ``await job.checkpoint()`` before each piece it sends or writes
(a batch): while the job is paused it waits there; once cancelled it raises
:class:`Cancelled`. A piece already under way finishes (``async with job.piece():``
marks it), so "paused" means *nothing more goes out* and the state reads ``pausing``
until the pieces in flight end. ``async with job.running(store, state_path):`` takes the
job's lock (core/joblock.py: one job of a kind per state file), records the run in
``runs`` and sets the final state.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

from .joblock import JobLock
from .store import Store

#: states a face may see: idle | planning | running | pausing | paused | cancelling |
#: done | errors | failed | cancelled
ACTIVE = ("planning", "running", "pausing", "paused", "cancelling")


class Cancelled(Exception):
    """The job was cancelled; raised at the next checkpoint."""


class Job:
    """Pause / resume / cancel and the run record of one kind of job."""

    def __init__(self, kind: str, on_change: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self.state = "idle"
        self._gate = asyncio.Event()
        self._gate.set()
        self._cancel = False
        self._in_flight = 0
        self._on_change = on_change
        self.run_id: int | None = None
        #: set by the job's body inside ``running()``: "done" or "errors"
        self.outcome = "done"
        #: what ``runs.summary`` records for this run (JSON-able)
        self.summary: dict[str, Any] = {}

    # -- controls (faces and signal handlers call these) ----------------------------------
    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def cancelled(self) -> bool:
        return self._cancel

    @property
    def in_flight(self) -> int:
        """Pieces under way (a pause reads 'pausing' until they end)."""
        return self._in_flight

    def pause(self) -> None:
        if self.state in ("planning", "running"):
            self._gate.clear()
            self._set("pausing" if self._in_flight else "paused")

    def resume(self) -> None:
        if self.state in ("pausing", "paused"):
            self._gate.set()
            self._set("running")

    def cancel(self) -> bool:
        """Ask the job to stop at its next checkpoint; False when it is not running."""
        if not self.active:
            return False
        self._cancel = True
        self._gate.set()
        self._set("cancelling")
        return True

    def stop(self) -> None:
        self.cancel()

    # -- inside the job -------------------------------------------------------------------
    def started(self) -> None:
        """Planning is over: the job runs (a pause asked while planning stays asked)."""
        if self.state == "planning":
            self._set("running")

    async def checkpoint(self) -> None:
        """Wait while paused; raise Cancelled once cancelled."""
        if self._cancel:
            raise Cancelled()
        if not self._gate.is_set():
            await self._gate.wait()
        if self._cancel:
            raise Cancelled()

    @asynccontextmanager
    async def piece(self) -> AsyncIterator[None]:
        """One unit of work that goes out whole once started (a batch of appends)."""
        await self.checkpoint()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and self.state == "pausing":
                self._set("paused")

    @asynccontextmanager
    async def running(self, store: Store, state_path: Any, *, lock: bool = True,
                      record: bool = True) -> AsyncIterator["Job"]:
        """Hold the job's lock and record the run; the body sets ``self.outcome``
        ("done" / "errors"); cancellation and failures are recorded by this."""
        if self.active:
            from .errors import SwitchoverError
            raise SwitchoverError(f"A {self.kind} is already running.")
        holder = JobLock(state_path, self.kind) if lock else None
        if holder is not None:
            holder.acquire()          # JobBusy (exit 4) names the other process
        self._cancel = False
        self._gate.set()
        self._in_flight = 0
        self.outcome = "done"
        self._set("planning")
        self.run_id = await store.start_run(self.kind) if record else None
        self.summary = {}
        try:
            yield self
        except Cancelled:
            self.outcome = "cancelled"
        except BaseException:
            self.outcome = "failed"
            self._set("failed")
            raise
        finally:
            if self._cancel and self.outcome != "failed":
                self.outcome = "cancelled"
            try:
                if self.run_id is not None:
                    await asyncio.shield(store.end_run(self.run_id, self.outcome, self.summary))
            finally:
                if holder is not None:
                    holder.release()
                if self.state != "failed":
                    self._set("idle" if self.outcome == "cancelled" else self.outcome)

    def _set(self, state: str) -> None:
        self.state = state
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:   # a face's bug must not stop the job
                pass
