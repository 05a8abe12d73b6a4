"""One copy run, once both sides are open and listed: the rerun fast path, the passes,
the extra copies, and the state each folder ends in.

* STATUS of every source folder in one round trip: a folder whose UIDVALIDITY + UIDNEXT
  + count equal what the ledger recorded as completely copied is skipped without
  fetching anything (fast rerun), unless an append into its destination is still
  unsettled (a dead run's). Sources merged into one destination are planned together
  or not at all.
* A *pass* plans the groups (core/migrate/planner.py) while the lanes copy
  (core/migrate/lanes.py); the planner's pair joins the lanes after planning. Groups a
  drop, a renumbering or a forward still sending left *dirty*, and groups that wait for
  a dead run's appends, are planned again in the next pass (after the landing grace),
  up to 8 passes.
* Then the extra copies a late landing left are removed (core/migrate/settler.py) and
  every folder's end state is recorded: 'done' only when every message is accounted
  for; a cancelled run's unfinished folders are 'cancelled' (their counts stay true).
"""

from __future__ import annotations

import asyncio

from ..config import MigrationSettings
from ..jobs import Cancelled
from ..net.wire import WireError
from ..placements import Placements
from .destination import Destination
from .flow import MEMORY_BUDGET, BatchSize, ByteBudget, ReadSize
from .folders import FolderMapping
from .lanes import Lanes
from .ledger import FolderRecord, Ledger
from .planner import Planner
from .records import CopyJob, FolderRun, Group
from .run import RunState
from .settler import Settler
from .sides import Layout, Sides
from .transfer import Conn

PASSES = 8                       # plan again what a pass left dirty, at most this often

class Copier:
    """Copies the planned folders of one run; see the module docstring."""

    def __init__(self, run: RunState, sides: Sides, ledger: Ledger, placements: Placements,
                 settings: MigrationSettings, *, n_lanes: int, landing_grace: float,
                 max_message: int | None) -> None:
        self.run = run
        self.sides = sides
        self.ledger = ledger
        self.placements = placements
        self.settings = settings
        self.n_lanes = n_lanes
        self.max_message = max_message
        self.settler = Settler(run, ledger, placements, landing_grace)
        self.budget = ByteBudget(max(MEMORY_BUDGET, settings.batch_bytes))
        self.size = BatchSize(settings.batch_messages, settings.batch_bytes)
        self.read = ReadSize()

    def _cancelled(self) -> bool:
        return self.run.cancelled

    async def copy(self, src: Conn, dst: Conn, lanes_task: asyncio.Task[list[tuple[Conn, Conn]]],
                   layout: Layout, chosen: list[FolderMapping] | None) -> None:
        """Copy ``chosen`` (every folder the plan copies when None); a cancel ends the
        copy at the next safe point. The folders' end states are recorded either way."""
        try:
            await self._copy(src, dst, lanes_task, layout, chosen if chosen is not None else layout.copied())
        except Cancelled:
            pass
        await self._end_folders()

    async def _copy(self, src: Conn, dst: Conn, lanes_task: asyncio.Task[list[tuple[Conn, Conn]]],
                    layout: Layout, chosen: list[FolderMapping]) -> None:
        run = self.run
        run.runs = [FolderRun(m.source, m.destination, m.role, m.special) for m in chosen]
        await self.ledger.record_skipped(layout.mappings)
        await self.settler.load()
        run.groups = await self._groups(src, await self.ledger.folders())
        pending = list(run.groups)
        if not pending:
            await self.settler.forget_old()
            return
        destination = Destination(run, self.ledger, self.read, set(layout.dst_folders),
                                  layout.dst_delimiter, self.settler.suspects, self.settings.batch_bytes)
        # every lane holds about two jobs at once: keep them inside the memory budget
        job_bytes = min(self.settings.batch_bytes, max(2**20, self.budget.cap // (2 * (self.n_lanes + 1))))
        if run.quota is not None:
            job_bytes = max(1, min(job_bytes, run.quota.limit))   # a job never spans more than the cap
        planner = Planner(run, self.sides, self.ledger, destination, self.settler, self.read, self.settings,
                          batch_bytes=job_bytes, sources=[m.source for m in layout.copied()],
                          max_message=self.max_message)
        lanes = Lanes(run, self.sides, self.ledger, self.placements, destination, self.settler,
                      self.budget, self.size)
        for attempt in range(PASSES):
            if not pending or run.cancelled:
                break
            waiting = [g for g in pending if g.deferred]
            for g in pending:
                g.dirty = g.deferred = False
                for r in g.folders:
                    r.dirty = False
            if attempt:
                if waiting:
                    await self.settler.wait_for_landings()
                pairs = await lanes_task
                await self.sides.alive([src, dst, *(c for pair in pairs for c in pair)], self._cancelled)
            await self._pass(src, dst, lanes_task, planner, lanes, pending)
            pending = [g for g in pending if g.dirty or g.deferred]
            if pending and not run.cancelled:
                if all(g.deferred and not g.dirty for g in pending):
                    run.log("info", f"waiting for appends an interrupted run left in flight, then "
                                    f"re-checking {len(pending)} folder(s)")
                else:
                    run.log("info", f"re-checking {len(pending)} folder(s) after a dropped connection")
        for g in pending:
            for r in g.folders:
                r.errors += 1
                run.summary.errors.append(f"{r.source}: the copy kept failing; run the migration again.")
        if not run.cancelled and run.fatal is None and self.settler.has_risk(run.groups):
            await self.sides.alive([dst], self._cancelled)
            await self.settler.remove_extra(dst, run.groups, destination)
        await self.settler.forget_old()

    async def _groups(self, src: Conn, known: dict[str, FolderRecord]) -> list[Group]:
        """The folders with work, grouped by destination (All Mail last); the others are
        'done' from the ledger (the rerun fast path)."""
        run = self.run
        unsettled = self.settler.unsettled_folders()
        # STATUS of every source folder in one round trip: totals + the rerun fast path
        status = await run.blocking.run(src.wire.status_many, [r.source for r in run.runs])
        work: list[FolderRun] = []
        for r in run.runs:
            st = status.get(r.source)
            if isinstance(st, WireError) or st is None:
                r.state, r.errors = "errors", 1
                run.summary.errors.append(f"{r.source}: the old server refused to open it ({st}).")
                continue
            r.total_messages = st.get("messages", 0)
            rec = known.get(r.source)
            if rec is not None:
                r.total_bytes = rec.bytes
            if (rec is not None and rec.state == "done" and rec.mapped_to == r.destination
                    and rec.uidvalidity == st.get("uidvalidity") and rec.uidnext == st.get("uidnext")
                    and rec.messages == r.total_messages and r.destination not in unsettled):
                r.state, r.skipped = "done", True
                r.present, r.present_bytes = r.total_messages, r.total_bytes
                continue
            work.append(r)
        # sources merged into one destination are planned together or not at all: the
        # multiset of the destination is shared between them
        busy = {r.destination for r in work}
        for r in run.runs:
            if r.skipped and r.destination in busy:
                r.skipped, r.state, r.present, r.present_bytes = False, "planned", 0, 0
                work.append(r)
        groups: dict[str, Group] = {}
        for r in work:
            key = r.destination + ("\0last" if r.role == "all_mail" else "")
            g = groups.setdefault(key, Group(r.destination, [], last=r.role == "all_mail"))
            g.folders.append(r)
        return sorted(groups.values(), key=lambda g: g.last)

    async def _pass(self, src: Conn, dst: Conn, lanes_task: asyncio.Task[list[tuple[Conn, Conn]]],
                    planner: Planner, lanes: Lanes, groups: list[Group]) -> None:
        """Plan ``groups`` (feeding the job queue) while the lanes copy; then the planner's
        own connections join the copy. Returns when every queued job is done."""
        # jobs hold metadata only; with no extra lanes (a 1-connection provider) the
        # planner copies after planning, so the queue must not block it
        jobs: asyncio.Queue[CopyJob | None] = asyncio.Queue(maxsize=0 if self.n_lanes == 0 else 16)

        async def work() -> None:
            pairs = await lanes_task
            await asyncio.gather(*(lanes.lane(pair, jobs) for pair in pairs))

        workers = asyncio.create_task(work())
        planning = asyncio.create_task(planner.plan((src, dst), groups, jobs))
        while not planning.done() and not workers.done():
            await asyncio.wait({workers, planning}, return_when=asyncio.FIRST_COMPLETED)
        failed = workers.exception() if workers.done() and not workers.cancelled() else None
        if failed is not None:
            planning.cancel()     # e.g. the copy connections could not be opened
            await asyncio.gather(planning, return_exceptions=True)
            raise failed
        extra = None
        try:
            await planning
            # planning is over: its connections copy too
            extra = asyncio.create_task(lanes.lane((src, dst), jobs))
        finally:
            try:
                pairs = await lanes_task
            except BaseException:
                pairs = []
            for _ in range(len(pairs) + (1 if extra else 0)):
                await jobs.put(None)
            await asyncio.gather(workers, *([extra] if extra else []))
        if self.run.fatal is not None:
            raise self.run.fatal

    async def _end_folders(self) -> None:
        """Remember complete folders so that the next run skips them without fetching;
        unfinished folders of a cancelled run are 'cancelled' (their counts stay true).
        A folder left short without a recorded reason is an error, never 'done'."""
        run = self.run
        ends: list[tuple[str, str | None, int, int, str, str]] = []
        for r in run.runs:
            if r.skipped:
                continue
            accounted = r.present + r.copied + r.refused >= r.total_messages
            complete = (r.state == "copying" and not r.dirty and not r.deferred and accounted
                        and r.copied_plan >= r.to_copy)
            if r.errors or r.refused:
                state = "errors"
            elif complete:
                state = "done"
            elif run.cancelled:
                state = "cancelled"
            else:
                state = "errors"
                r.errors += 1
                run.summary.errors.append(f"{r.source}: not every message could be copied; "
                                          f"run the migration again.")
            r.state = state
            ends.append((r.source, r.special, r.total_messages, r.total_bytes, r.destination, state))
        await self.ledger.end_folders(ends)
