"""The migration facet: plan, copy, pause / resume / cancel, verify.

How a run works (issue 2 "The copy", issue 3 speed, issue 9 "exactly once"); each part
is one module of core/migrate:

* One migration per state file: ``run`` holds ``JobLock(state, "migrate")`` (through
  core/jobs.Job) from before anything is written until it returns (a second process
  gets ``JobBusy`` naming the first). ``--folder`` names are checked against the old
  mailbox's folders before anything is written (INBOX in any case; unknown names get
  close suggestions). Both logins first (AuthError / ConnectError before anything is
  written); the copy connections open meanwhile (``migration.connections`` or the
  provider's cap, per side) — sides.py.
* copier.py: the rerun fast path (STATUS of every source folder in one round trip), the
  passes, the extra copies, the folders' end states.
* planner.py reads both sides in waves and decides what to copy; destination.py knows
  what the new mailbox holds; lanes.py copies (fetch / append pipelines, placements
  recorded before the bytes leave, the byte budget and adaptive batches of flow.py);
  settler.py settles what a dead run or a broken append left; ledger.py holds every SQL
  statement on the migration's tables; records.py the records; run.py the state one run
  shares (job, summary, progress events).
* Daily byte caps (quota.py; Gmail: 2,500 MB/day download, 500 MB/day upload): when the
  window is full the lanes wait (pause- and cancel-aware), one LogLine says until when,
  the folders with work left show ``waiting`` (the job stays ``running``).
* A refused message (NO) is recorded with the server's words and the run goes on; the
  log says each cause once and the summary groups refusals by cause.
* Pause: nothing new goes out (no FETCH, APPEND or planner read starts); while the
  batches in flight finish the job is ``pausing``, then ``paused``. Cancel: unfinished
  folders end ``cancelled`` with their true counts; a cancel is not an error.
* A complete run with nothing refused proves the checklist's "migrate" item, a run with
  refusals or errors takes it back; ``verify`` proves "verify" — published as
  ``Proven`` events (the checklist subscribes).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from ..config import Config
from ..context import Accounts, Blocking
from ..errors import SwitchoverError, sentence
from ..events import EventBus, FolderProgress, Proven
from ..jobs import Cancelled, Job
from ..joblock import JobLock
from ..placements import Placements
from ..store import Store
from .copier import Copier
from .folders import FolderMapping
from .ledger import Ledger
from .quota import DailyQuota
from .records import FolderPlan, MigrationSummary, Plan, RunInfo
from .run import RunState
from .settler import LANDING_GRACE
from .sides import Sides
from .transfer import Conn, count_sizes, keep_heap_flat
from .verify import VerifyReport, verify

MAX_LANES = 8                    # extra connection pairs at most (+ the planner's pair)


class Migration:
    """The copy from the old mailbox to the new one; see the module docstring."""

    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config, placements: Placements) -> None:
        self.store = store
        self.bus = bus
        self.accounts = accounts
        self.blocking = blocking
        self.config = config
        self.placements = placements
        self.ledger = Ledger(store, placements)
        self.sides = Sides(accounts, blocking, bus, config)
        self.job = Job("migrate", on_change=self._job_changed)
        #: the run under way (None between runs)
        self._run: RunState | None = None
        #: daily caps' window in seconds (None = 24 h; tests use a few seconds)
        self.quota_window: float | None = None
        #: a dead run's append may land this long after the run's start (tests shorten it)
        self.landing_grace = LANDING_GRACE

    # -- controls -------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """idle | planning | running | pausing | paused | cancelling | done | errors | failed"""
        return self.job.state

    def pause(self) -> None:
        """Nothing new goes out; the batches in flight finish ('pausing', then 'paused')."""
        self.job.pause()

    def resume(self) -> None:
        self.job.resume()

    def cancel(self) -> None:
        if self.job.cancel() and self._run is not None and self._run.quota is not None:
            self._run.quota.wake()

    def stop(self) -> None:
        self.cancel()

    def _job_changed(self) -> None:
        """Pause and resume show at once (and 'paused' once the pieces in flight ended)."""
        if self._run is not None and self.job.state in ("pausing", "paused", "running"):
            self._run.publish(force=True)

    # -- plan -----------------------------------------------------------------------------
    async def plan(self, folders: list[str] | None = None) -> Plan:
        """List both sides, count messages and bytes per source folder, record in SQLite.
        ``folders``: only these source folders (unknown ones: SwitchoverError, exit 2,
        before anything is written)."""
        src, dst = await self.sides.open_pair()
        try:
            layout = await self.sides.layout(src, dst)
            mappings = layout.choose(folders) if folders else layout.mappings
            counts = await self.blocking.run(count_sizes, src.wire,
                                              [m.source for m in mappings if m.role != "skip"])
        finally:
            await self.sides.close_all([src, dst])
        plans = [FolderPlan(m.source, m.destination, m.special, m.role, m.reason,
                            *(counts.get(m.source, (0, 0)) if m.role != "skip" else (0, 0)))
                 for m in mappings]
        await self.ledger.record_plan([(m, p.messages, p.bytes) for m, p in zip(mappings, plans)
                                       if m.role != "skip"], mappings)
        copied = [p for p in plans if p.role != "skip"]
        return Plan(plans, sum(p.messages for p in copied), sum(p.bytes for p in copied))

    async def last_run(self) -> RunInfo | None:
        """The last migration run in the state file (a face says from it whether the last
        migration stopped before the end), or None when none ran."""
        row = await self.ledger.last_run()
        if row is None:
            return None
        job, started, ended, outcome, summary = row
        running = ended is None and (
            self.job.active or JobLock(self.config.state, "migrate").holder() is not None)
        return RunInfo(job, started, ended, outcome, summary, running)

    async def snapshot(self, folder: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, UIDNEXT) of an old folder when the migration last read it, or
        None (the watch starts its first look there)."""
        return await self.ledger.snapshot(folder)

    async def folder_rows(self) -> list[FolderProgress]:
        """Per-folder state: the run's own while one runs here, else the last known from
        SQLite (a restarted dashboard shows it at once)."""
        if self._run is not None and self._run.runs and self.job.state in (
                "running", "pausing", "paused", "cancelling"):
            return self._run.rows()
        counts = await self.ledger.folder_counts()
        out = []
        for rec in (await self.ledger.folders()).values():
            s = counts.get(rec.name, {})
            copied, present, refused = (s.get(k, (0, 0)) for k in ("copied", "present", "refused"))
            # "copying" left behind by a killed run is shown as planned (it resumes)
            state = rec.state if rec.state in ("done", "errors", "cancelled", "skipped") else "planned"
            done = rec.messages if rec.state == "done" else copied[0] + present[0] + refused[0]
            done_bytes = rec.bytes if rec.state == "done" else min(rec.bytes, copied[1] + present[1])
            out.append(FolderProgress("migrate", rec.name, rec.mapped_to, state, rec.messages, rec.bytes,
                                      done_messages=done, done_bytes=done_bytes,
                                      already_there=present[0], refused=refused[0]))
        return out

    # -- run ------------------------------------------------------------------------------
    async def run(self, *, dry_run: bool = False, folders: list[str] | None = None) -> MigrationSummary:
        """Copy every planned folder (or only ``folders``); see the module docstring.
        Raises JobBusy (exit 4) when another process migrates with this state file, and
        SwitchoverError (exit 2) for an unknown folder, both before anything is written."""
        if self.job.active:
            raise SwitchoverError("A migration is already running.")
        if dry_run:
            return await self._dry_run(folders)
        keep_heap_flat()
        run = RunState(self.job, self.bus, self.blocking)
        self._run = run
        try:
            # the run is recorded once the logins worked and the folders are chosen
            async with self.job.running(self.store, self.config.state, record=False):
                summary = await self._copy(run, folders)
        finally:
            self._run = None
        self._prove(summary, complete=not folders)
        return summary

    async def _dry_run(self, folders: list[str] | None) -> MigrationSummary:
        t0 = time.monotonic()
        plan = await self.plan(folders)
        rows = [FolderProgress("migrate", p.source, p.destination,
                               "skipped" if p.role == "skip" else "planned", p.messages, p.bytes)
                for p in plan.folders]
        return MigrationSummary(messages=plan.total_messages, elapsed=time.monotonic() - t0,
                                folders=rows, dry_run=True)

    async def _copy(self, run: RunState, folders: list[str] | None) -> MigrationSummary:
        """The body of a run inside the job: open, list, record the run, copy; the
        summary goes into the run record (a failure's too)."""
        conns: list[Conn] = []
        lanes_task: asyncio.Task[list[tuple[Conn, Conn]]] | None = None
        ticker: asyncio.Task[None] | None = None
        old, new = self.accounts.account("old"), self.accounts.account("new")
        try:
            src, dst = await self.sides.open_pair()
            conns += [src, dst]
            run.quota = DailyQuota.for_accounts(old, new, self.quota_window)
            if run.quota is not None:
                await run.quota.load(self.ledger)
            # the copy connections open (logins verified above) while both sides are listed
            n_conn = self.config.migration.connections or min(old.max_connections, new.max_connections)
            n_lanes = min(n_conn - 1, MAX_LANES)   # + the planner's pair, which copies after planning
            lanes_task = asyncio.create_task(self.sides.open_lanes(n_lanes, conns))
            layout = await self.sides.layout(src, dst)
            chosen: list[FolderMapping] | None = layout.choose(folders) if folders else None
            self.job.run_id = await self.store.start_run("migrate")
            self.job.started()
            ticker = asyncio.create_task(run.ticker())
            copier = Copier(run, self.sides, self.ledger, self.placements, self.config.migration,
                            n_lanes=n_lanes, landing_grace=self.landing_grace,
                            max_message=new.max_message_bytes)
            await copier.copy(src, dst, lanes_task, layout, chosen)
        except Cancelled:
            pass      # cancelled before the copy began: nothing to record but the outcome
        except BaseException as e:
            if self.job.run_id is not None:
                run.summary.errors.append(sentence(e))
                self.job.summary = run.finish("failed").record()
            raise
        finally:
            if ticker is not None:
                ticker.cancel()
            if lanes_task is not None:
                await asyncio.gather(lanes_task, return_exceptions=True)
            await self.sides.close_all(conns)
        s = run.summary
        outcome = "cancelled" if run.cancelled else ("done" if not s.errors and not s.refused else "errors")
        run.finish(outcome)
        self.job.outcome = "errors" if outcome == "errors" else "done"
        self.job.summary = s.record()
        return s

    def _prove(self, s: MigrationSummary, *, complete: bool) -> None:
        """A complete run with nothing refused proves the checklist's 'migrate' item; a run
        with refusals or errors takes the proof back."""
        now = f"{dt.datetime.now():%Y-%m-%d %H:%M}"
        if s.ok and complete:
            self.bus.publish(Proven("migrate", True,
                                    f"migration finished {now}: {s.messages:,} messages in "
                                    f"{len(s.folders)} folders, {s.transferred:,} copied, "
                                    f"{s.already_there:,} already there"))
        elif s.refused or (s.errors and not s.cancelled):
            self.bus.publish(Proven("migrate", False,
                                    f"migration {now}: {len(s.refused)} refused, {len(s.errors)} errors"))

    # -- verify ---------------------------------------------------------------------------
    async def verify(self) -> VerifyReport:
        """Compare both mailboxes folder by folder (core/migrate/verify.py); the result
        proves (or takes back) the checklist's 'verify' item."""
        report = await verify(self.sides, self.bus, self.blocking, self.config.migration.batch_bytes)
        now = f"{dt.datetime.now():%Y-%m-%d %H:%M}"
        if report.ok:
            count = sum(f.source_count for f in report.folders)
            self.bus.publish(Proven("verify", True,
                                    f"{count:,} messages in {len(report.folders)} folders verified {now}"))
        else:
            self.bus.publish(Proven("verify", False, f"verify {now}: {report.describe()}"))
        return report
