"""Carrying out due actions: claim (one conditional UPDATE: only one process wins a row),
carry out (core/transition/sending.py, placing.py), write the end
(core/transition/outcomes.py). Either now, in the caller's task (``run_due``, ``run_one``),
or in a background loop that also reconciles every minute (the dashboard, ``watch``).

At most ``SLOTS`` actions run at once in one process, so a row says 'running' only while
its work runs, and another process on the same state file takes its share.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from ..config import Config
from ..errors import sentence
from ..events import ActionChanged, EventBus, LogLine
from .arrivals import Arrivals
from .ledger import ActionLedger, ActionRow
from .outcomes import Outcomes
from .placing import Placer
from .sending import Sender

#: actions one process carries out at once
SLOTS = 4
#: how often the background loop reconciles (what a dead process left, unseen arrivals)
RECONCILE_SECONDS = 60.0


class Runner:
    def __init__(self, bus: EventBus, config: Config, arrivals: Arrivals, ledger: ActionLedger,
                 sender: Sender, placer: Placer, outcomes: Outcomes,
                 reconcile: Callable[[float], Awaitable[None]]) -> None:
        self.bus, self.config, self.arrivals, self.ledger = bus, config, arrivals, ledger
        self.sender, self.placer, self.outcomes = sender, placer, outcomes
        self._reconcile = reconcile
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._workers: set[asyncio.Task[None]] = set()
        self._sem = asyncio.Semaphore(SLOTS)
        self._last_reconcile = 0.0

    def poke(self) -> None:
        """Something became due: look now, not at the next tick."""
        if self._wake is not None:
            self._wake.set()

    # -- now, in the caller's task --------------------------------------------------------
    async def run_due(self) -> int:
        """Carry out every due pending action now; returns how many ran."""
        total = 0
        while True:
            rows = await self._claim_due()
            if not rows:
                return total
            total += len(rows)
            await asyncio.gather(*(self._execute(r) for r in rows))

    async def run_one(self, action_id: int) -> bool:
        """Carry out this action now when it is pending and due; False when it is not (or
        another process or task claimed it)."""
        row = await self.ledger.claim(action_id)
        if row is None:
            return False
        self.outcomes.inflight.add(row.id)
        await self._execute(row)
        return True

    async def _claim_due(self, limit: int = SLOTS) -> list[ActionRow]:
        claimed = []
        for r in await self.ledger.due(limit):
            row = await self.ledger.claim(r.id)
            if row is not None:
                self.outcomes.inflight.add(row.id)
                claimed.append(row)
        return claimed

    async def _execute(self, row: ActionRow) -> None:
        self.bus.publish(ActionChanged(row.id, row.arrival_id, row.kind, "running"))
        outcome: str | BaseException
        try:
            async with self._sem:
                outcome = await self._carry_out(row)
        except asyncio.CancelledError:
            self.outcomes.inflight.discard(row.id)
            raise
        except Exception as e:  # noqa: BLE001 - every failure is written as the action's outcome
            outcome = e
        await self.outcomes.ended(row, outcome)

    async def _carry_out(self, row: ActionRow) -> str:
        if row.kind == "handled" or row.arrival_id is None:
            return "marked handled"
        arrival = await self.arrivals.require(row.arrival_id)
        if row.kind == "forward":
            if self.config.transition.forward_method == "smtp":
                return await self.sender.forward(row, arrival)
            return await self.placer.forward(row, arrival)
        return await self.sender.remind(row, arrival)

    # -- in the background ------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._wake = asyncio.Event()
        self._last_reconcile = time.time()
        try:
            await self._reconcile(0.0)
        except Exception as e:  # noqa: BLE001 - the runner starts anyway; said once
            self.bus.publish(LogLine("warning", f"Checking interrupted actions failed: {sentence(e)}"))
        self._task = asyncio.create_task(self._loop(), name="switchover-actions")
        self._task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Every background task's end is looked at: an exception is logged once (never
        'Task exception was never retrieved')."""
        self._workers.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.bus.publish(LogLine("error", f"Action runner ({task.get_name()}): {sentence(exc)}"))

    async def _loop(self) -> None:
        assert self._wake is not None
        failing = False
        while True:
            try:
                if self.outcomes.unsettled:
                    await self.outcomes.retry_unsettled()
                for row in await self._claim_due(SLOTS - len(self._workers)):
                    task = asyncio.create_task(self._execute(row), name=f"switchover-action-{row.id}")
                    self._workers.add(task)
                    task.add_done_callback(self._task_done)
                if time.time() - self._last_reconcile > RECONCILE_SECONDS:
                    self._last_reconcile = time.time()
                    await self._reconcile(300.0)
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a database hiccup must not stop the runner; said once
                if not failing:
                    self.bus.publish(LogLine("error", f"Action runner: {sentence(e)}"))
                failing = True
            try:
                await asyncio.wait_for(self._wake.wait(), 1.0 if failing else 0.25)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._workers:
            # let sends in flight finish (they are short); what is cut stays 'running'
            # with its phase noted, and reconcile settles it on the next start
            await asyncio.wait(list(self._workers), timeout=15)
        if self.outcomes.unsettled:
            await self.outcomes.retry_unsettled()
