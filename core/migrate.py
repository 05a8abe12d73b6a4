"""The migration facet (``engine.migration``): plan, copy, pause / resume / cancel, verify.

How a run works (issue 2 "The copy", issue 3 speed):

* Both logins first (AuthError / ConnectError before anything is written). One pair
  lists both sides and asks STATUS of every source folder in one round trip; a folder
  whose UIDVALIDITY + UIDNEXT + count equal what SQLite recorded as completely copied
  is skipped without fetching anything (fast rerun). The copy connections open
  meanwhile (``migration.connections`` or the provider's cap, per side).
* The *planner* pair reads folders in *waves*, pipelined: CREATE of missing
  destination folders, EXAMINE + UID SEARCH of every destination folder, a header
  FETCH of every destination UID not in ``dest_messages`` yet (this is what makes a
  crash between APPEND and recording harmless: the destination is re-identified, never
  trusted), and EXAMINE + one header FETCH per source folder (big folders in chunks).
  Every source message is recorded in ``messages``; what the destination lacks
  (multiset: an identity is copied as often as the source holds it more) becomes copy
  jobs in a bounded queue (metadata only). Gmail's All Mail goes last and copies only
  identities no other source folder holds.
* *Lanes* (one source + one destination connection each; the planner's pair joins
  after planning) FETCH a batch of bodies while APPENDing the previous one: MULTIAPPEND
  with LITERAL+ where offered, else pipelined single APPENDs; bytes untouched, flags
  (minus \\Recent) and INTERNALDATE as the source gave them; APPENDUID results go to
  SQLite in one transaction per batch. A shared byte budget bounds the bodies in memory.
* Daily byte caps (core/quota.py; Gmail: 2,500 MB/day download, 500 MB/day upload):
  before a batch is fetched it is counted against a rolling window; when the window is
  full the lanes wait (pause- and cancel-aware) until enough of it expires, one LogLine
  says until when, and the folders with work left show the state ``waiting`` (the job
  stays ``running``). The ETA adds the wait (see core/quota.py). Without caps (custom
  provider, or 0 in the config) no check runs at all. A message bigger than the new
  account's ``max_message_bytes`` is recorded as refused without an upload.
* A refused message (NO) is recorded with the server's words and the run goes on. A
  dropped connection reconnects with backoff (the server's hint when throttled); if it
  broke during an APPEND, the destination folder is planned again after the pass.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from . import imap as imapmod
from .errors import AuthError, ConnectError, FolderError, SwitchoverError
from .events import ConnectionState, FolderProgress, JobProgress, LogLine
from .imapwire import ConnectionLost, Selected, Wire, WireError, mailbox, uid_set
from .quota import Cap, DailyQuota
from .transfer import (LOST, Conn, SrcMsg, append_batch, batches, body_into, create_many, dst_side,
                       DstLost, identify, probe_many, read_many, fetch_bodies)

CHUNK = 5000                     # headers read per FETCH while planning a big folder
WAVE = 20000                     # messages of small folders planned together (pipelined)
MEMORY_BUDGET = 48 * 2**20       # message bytes in flight, all lanes together (peak RSS)
TICK = 0.2                       # seconds between progress events (per folder, coalesced)


# -- public records ------------------------------------------------------------------------
@dataclass
class FolderPlan:
    source: str
    destination: str
    special: str | None
    role: str
    reason: str
    messages: int
    bytes: int


@dataclass
class Plan:
    folders: list[FolderPlan]
    total_messages: int
    total_bytes: int


@dataclass
class Refusal:
    folder: str
    uid: int
    subject: str
    size: int
    reason: str


@dataclass
class MigrationSummary:
    transferred: int = 0
    already_there: int = 0
    refused: list[Refusal] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    messages: int = 0            # source messages covered by the run
    bytes: int = 0               # bytes copied by this run
    elapsed: float = 0.0
    msgs_per_s: float = 0.0
    bytes_per_s: float = 0.0
    ok: bool = True
    folders: list[FolderProgress] = field(default_factory=list)
    cancelled: bool = False
    dry_run: bool = False

    def describe(self) -> str:
        """One sentence for a person (dashboard message, log line)."""
        head = "cancelled — " if self.cancelled else ""
        return (f"{head}{self.transferred:,} copied, {self.already_there:,} already there, "
                f"{len(self.refused):,} refused, {len(self.errors):,} errors in {self.elapsed:,.1f} s "
                f"({self.msgs_per_s:,.0f} msg/s, {self.bytes_per_s / 1e6:,.1f} MB/s)")


# -- internal records -----------------------------------------------------------------------
@dataclass
class FolderRun:
    source: str
    destination: str
    role: str
    special: str | None
    total_messages: int = 0
    total_bytes: int = 0
    uidvalidity: int = 0
    uidnext: int = 0
    present: int = 0
    copied: int = 0
    copied_bytes: int = 0
    present_bytes: int = 0
    refused: int = 0
    errors: int = 0
    to_copy: int = 0
    copied_plan: int = 0          # copied since the last planning of this folder
    copied_uids: set = field(default_factory=set)
    state: str = "planned"
    skipped: bool = False
    dirty: bool = False
    window: deque = field(default_factory=lambda: deque(maxlen=40))
    published: tuple = ()

    def progress(self, paused: bool = False, quota: DailyQuota | None = None) -> FolderProgress:
        now = time.monotonic()
        self.window.append((now, self.copied, self.copied_bytes))
        while len(self.window) > 2 and now - self.window[0][0] > 5.0:
            self.window.popleft()
        t0, m0, b0 = self.window[0]
        dt = now - t0
        mps = (self.copied - m0) / dt if dt > 0.05 else 0.0
        bps = (self.copied_bytes - b0) / dt if dt > 0.05 else 0.0
        done = self.present + self.copied + self.refused
        eta = None
        left_b = max(0, self.total_bytes - self.present_bytes - self.copied_bytes)
        if self.state == "copying" and quota is not None:
            eta = quota.eta(left_b, bps)
        elif self.state == "copying" and bps > 0:
            eta = left_b / bps
        state = "paused" if paused and self.state == "copying" else self.state
        if state == "copying" and done == 0 and self.total_messages:
            state = "queued"   # planned, waiting for a connection: nothing copied yet
        elif state == "copying" and done >= self.total_messages:
            # every message accounted for; the run records the final state when it ends
            state = "errors" if (self.refused or self.errors) else "done"
        if state in ("copying", "queued") and quota is not None and quota.waiting_until:
            state = "waiting"  # the daily cap is reached: copying resumes when the window frees
        return FolderProgress(job="migrate", source=self.source, destination=self.destination,
                              state=state, total_messages=self.total_messages,
                              total_bytes=self.total_bytes, done_messages=done,
                              done_bytes=self.present_bytes + self.copied_bytes,
                              already_there=self.present, refused=self.refused,
                              errors=self.errors, msgs_per_s=mps, bytes_per_s=bps, eta_s=eta)


@dataclass
class Group:
    """Source folders that land in one destination folder (planned together)."""
    destination: str
    folders: list[FolderRun]
    last: bool = False   # Gmail All Mail: after every other folder is planned
    dirty: bool = False
    failed: bool = False
    queued: int = 0      # copy jobs queued in this pass


@dataclass
class CopyJob:
    group: Group
    run: FolderRun
    uidvalidity: int
    items: list[SrcMsg]
    nbytes: int


class Cancelled(Exception):
    pass


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


class Migration:
    """The copy from the old mailbox to the new one; see the module docstring."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.store = engine.store
        self.state = "idle"
        self._gate = asyncio.Event()
        self._gate.set()
        self._cancel = False
        self._runs: list[FolderRun] = []
        self._db_lock = asyncio.Lock()
        self._summary: MigrationSummary | None = None
        self._t0 = 0.0
        self._fatal: BaseException | None = None
        self._n_lanes = 1
        self._budget = ByteBudget(MEMORY_BUDGET)
        #: daily caps of the run (None: no cap, no check); window length in seconds
        #: (None = 24 h; tests use a few seconds)
        self._quota: DailyQuota | None = None
        self.quota_window: float | None = None
        self._max_message: int | None = None

    # -- controls -------------------------------------------------------------------------
    def pause(self) -> None:
        if self.state == "running":
            self._gate.clear()
            self.state = "paused"
            self._publish_progress(force=True)

    def resume(self) -> None:
        if self.state == "paused":
            self.state = "running"
            self._gate.set()
            self._publish_progress(force=True)

    def cancel(self) -> None:
        if self.state in ("planning", "running", "paused"):
            self._cancel = True
            self.state = "cancelling"
            self._gate.set()
            if self._quota is not None:
                self._quota.wake()

    def stop(self) -> None:
        self.cancel()

    # -- helpers --------------------------------------------------------------------------
    def _log(self, level: str, text: str) -> None:
        self.engine.publish(LogLine(level, text))

    def _conn_state(self, side: str, state: str, detail: str = "") -> None:
        self.engine.publish(ConnectionState(side, state, detail))

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        return await self.engine.run_blocking(fn, *args)

    async def _open(self, side: str) -> Conn:
        conn = Conn(self.engine, side)
        self._conn_state(side, "connecting")
        try:
            await self._blocking(conn.open)
        except AuthError:
            self._conn_state(side, "auth failed")
            raise
        except ConnectError as e:
            self._conn_state(side, "offline", str(e))
            raise
        self._conn_state(side, "connected")
        return conn

    async def open_pair(self) -> tuple[Conn, Conn]:
        """Both sides at once; AuthError / ConnectError before anything is written."""
        res = await asyncio.gather(self._open("old"), self._open("new"), return_exceptions=True)
        errors = [r for r in res if isinstance(r, BaseException)]
        if errors:
            await self._close_all([r for r in res if isinstance(r, Conn)])
            raise errors[0]
        return res[0], res[1]

    async def _reconnect(self, conn: Conn, exc: BaseException) -> None:
        """Reopen ``conn`` with backoff (the server's retry hint when throttled)."""
        self._conn_state(conn.side, "reconnecting", str(exc)[:200])
        self._log("warning", f"{conn.side} mailbox: connection lost ({str(exc)[:200]}); reconnecting")
        await self._blocking(conn.close)
        backoff = imapmod.Backoff(first=0.2, cap=30.0)
        delay = imapmod.retry_after(exc, 5.0) if imapmod.is_throttle(exc) else 0.05
        last: BaseException = exc
        for _ in range(10):
            if self._cancel:
                raise Cancelled()
            await asyncio.sleep(delay)
            try:
                await self._blocking(conn.open)
                self._conn_state(conn.side, "connected")
                return
            except AuthError:
                self._conn_state(conn.side, "auth failed")
                raise
            except ConnectError as e:
                last = e
                delay = backoff.next()
        raise ConnectError(f"The {conn.side} mailbox kept dropping the connection ({last}).")

    async def _close_all(self, conns: list[Conn]) -> None:
        await asyncio.gather(*(self._blocking(c.close) for c in conns), return_exceptions=True)

    async def _mappings(self, src: Conn, dst: Conn) -> tuple[list[Any], dict[str, Any], str]:
        from . import folders as F

        def side(conn: Conn) -> tuple[list[Any], tuple[str, str]]:
            return F.list_folders(conn.client), F.namespace_of(conn.client)

        (src_list, (sprefix, sdelim)), (dst_list, (dprefix, ddelim)) = await asyncio.gather(
            self._blocking(side, src), self._blocking(side, dst))
        cfg = self.engine.config
        mappings = F.plan_folders(src_list, dst_list, settings=cfg.migration,
                                  src_provider=cfg.old.provider, dst_provider=cfg.new.provider,
                                  dst_prefix=dprefix, dst_delimiter=ddelim,
                                  src_prefix=sprefix, src_delimiter=sdelim)
        return mappings, {f.name: f for f in dst_list}, ddelim

    # -- plan -----------------------------------------------------------------------------
    async def plan(self) -> Plan:
        """List both sides, count messages and bytes per source folder, record in SQLite."""
        src, dst = await self.open_pair()
        try:
            mappings, _, _ = await self._mappings(src, dst)
            names = [m.source for m in mappings if m.role != "skip"]
            counts = await self._blocking(self._count_sizes, src.wire, names)
        finally:
            await self._close_all([c for c in (src, dst) if c])
        plans = []
        for m in mappings:
            n, b = counts.get(m.source, (0, 0)) if m.role != "skip" else (0, 0)
            plans.append(FolderPlan(m.source, m.destination, m.special, m.role, m.reason, n, b))
        async with self._db_lock, self.store.transaction() as db:
            await db.executemany(
                "INSERT INTO folders(side, name, special, messages, bytes, mapped_to, state, updated) "
                "VALUES('old', ?, ?, ?, ?, ?, 'planned', ?) ON CONFLICT(side, name) DO UPDATE SET "
                "special=excluded.special, messages=excluded.messages, bytes=excluded.bytes, "
                "mapped_to=excluded.mapped_to, updated=excluded.updated, "
                "state=CASE WHEN mapped_to IS excluded.mapped_to THEN state ELSE 'planned' END",
                [(p.source, p.special, p.messages, p.bytes, p.destination, time.time())
                 for p in plans])
        return Plan(plans, sum(p.messages for p in plans if p.role != "skip"),
                    sum(p.bytes for p in plans if p.role != "skip"))

    @staticmethod
    def _count_sizes(wire: Wire, names: list[str]) -> dict[str, tuple[int, int]]:
        """EXAMINE + FETCH 1:* (RFC822.SIZE) for every folder, all pipelined."""
        out: dict[str, tuple[int, int]] = {}
        tags = []
        for name in names:
            t1 = wire.start(b"EXAMINE " + mailbox(name))
            t2 = wire.start(b"FETCH 1:* (RFC822.SIZE)")
            tags.append((name, t1, t2))
        for name, t1, t2 in tags:
            acc = [0, 0]

            def each(parts: list[bytes], acc: list[int] = acc) -> None:
                head = parts[0]
                i = head.find(b"RFC822.SIZE ")
                if i >= 0:
                    acc[0] += 1
                    acc[1] += int(head[i + 12:].split(b")")[0].split()[0])

            try:
                wire.finish(t1)
            except WireError:
                pass
            try:
                wire.finish(t2, each)
            except WireError:
                pass   # empty folder ("1:*" is invalid there) or not selectable
            out[name] = (acc[0], acc[1])
        return out

    # -- run ------------------------------------------------------------------------------
    async def run(self, *, dry_run: bool = False, folders: list[str] | None = None) -> MigrationSummary:
        if self.state in ("planning", "running", "paused", "cancelling"):
            raise SwitchoverError("A migration is already running.")
        self._cancel = False
        self._fatal = None
        self._budget = ByteBudget(max(MEMORY_BUDGET, self.engine.config.migration.batch_bytes))
        self._gate.set()
        self._t0 = time.monotonic()
        self.state = "planning"
        if dry_run:
            try:
                plan = await self.plan()
            except BaseException:
                self.state = "failed"
                raise
            self.state = "idle"
            chosen = [p for p in plan.folders if not folders or p.source in folders]
            rows = [FolderProgress("migrate", p.source, p.destination,
                                   "skipped" if p.role == "skip" else "planned", p.messages, p.bytes)
                    for p in chosen]
            return MigrationSummary(messages=sum(p.messages for p in chosen if p.role != "skip"),
                                    elapsed=time.monotonic() - self._t0, folders=rows, dry_run=True)
        conns: list[Conn] = []
        lanes_task: asyncio.Task | None = None
        run_id = None
        summary = MigrationSummary()
        ticker = None
        try:
            src, dst = await self.open_pair()
            conns += [src, dst]
            self._quota = DailyQuota.for_accounts(self.engine.account("old"),
                                                  self.engine.account("new"), self.quota_window)
            if self._quota is not None:
                await self._quota.load(self.store)
            self._max_message = self.engine.account("new").max_message_bytes
            # the copy connections open (logins verified above) while both sides are listed
            n_conn = self.engine.config.migration.connections or min(
                self.engine.account("old").max_connections, self.engine.account("new").max_connections)
            self._n_lanes = min(n_conn - 1, 8)   # + the planner's pair, which copies after planning
            lanes_task = asyncio.create_task(self._open_lanes(self._n_lanes, conns))
            mappings, dst_existing, ddelim = await self._mappings(src, dst)
            run_id = await self.store.start_run("migrate")
            self.state = "running"
            ticker = asyncio.create_task(self._ticker())
            try:
                await self._run(src, dst, lanes_task, mappings, dst_existing, ddelim, folders, summary)
            except Cancelled:
                pass
            await self._record_folders()
        except BaseException as e:
            self.state = "failed"
            if run_id is not None:
                summary.errors.append(str(e) if isinstance(e, SwitchoverError) else repr(e))
                await self._finish(run_id, summary, "failed")
            raise
        finally:
            if ticker:
                ticker.cancel()
            if lanes_task is not None:
                await asyncio.gather(lanes_task, return_exceptions=True)
            await self._close_all(conns)
        summary.cancelled = self._cancel
        if self._cancel:
            summary.errors.append("The migration was cancelled; run it again to continue.")
        outcome = "cancelled" if self._cancel else ("done" if not summary.errors else "errors")
        await self._finish(run_id, summary, outcome)
        self.state = "idle" if self._cancel else "done"
        if not dry_run:
            await self._record_proof(summary, complete=not folders)
        return summary

    async def _record_proof(self, s: MigrationSummary, *, complete: bool) -> None:
        """A complete run with nothing refused proves the checklist's 'migrate' item; a run
        with refusals or errors takes the proof back."""
        now = f"{dt.datetime.now():%Y-%m-%d %H:%M}"
        if s.ok and complete:
            await self.engine.checklist.prove(
                "migrate", True, f"migration finished {now}: {s.messages:,} messages in "
                                 f"{len(s.folders)} folders, {s.transferred:,} copied, "
                                 f"{s.already_there:,} already there")
        elif s.refused or (s.errors and not s.cancelled):
            await self.engine.checklist.prove(
                "migrate", False, f"migration {now}: {len(s.refused)} refused, {len(s.errors)} errors")

    async def _finish(self, run_id: int | None, s: MigrationSummary, outcome: str) -> None:
        s.elapsed = time.monotonic() - self._t0
        s.transferred = sum(r.copied for r in self._runs)
        s.bytes = sum(r.copied_bytes for r in self._runs)
        s.already_there = sum(r.present for r in self._runs)
        s.messages = sum(r.total_messages for r in self._runs)
        s.msgs_per_s = s.transferred / s.elapsed if s.elapsed > 0 else 0.0
        s.bytes_per_s = s.bytes / s.elapsed if s.elapsed > 0 else 0.0
        for r in self._runs:
            if r.state == "copying":
                r.state = "errors" if (r.errors or r.refused or r.dirty) else "done"
        s.folders = [r.progress() for r in self._runs]
        seen: dict[tuple[str, int], Refusal] = {}
        for ref in s.refused:
            seen[(ref.folder, ref.uid)] = ref
        s.refused = list(seen.values())
        s.ok = not s.errors and not s.refused and not self._cancel
        self._publish_progress(force=True, final=outcome)
        if run_id is not None:
            await self.store.end_run(run_id, outcome, {
                "transferred": s.transferred, "already_there": s.already_there,
                "refused": len(s.refused), "errors": s.errors[:20], "bytes": s.bytes,
                "elapsed": round(s.elapsed, 3)})

    async def _run(self, src: Conn, dst: Conn, lanes_task: "asyncio.Task[list[tuple[Conn, Conn]]]", mappings: list[Any],
                   dst_existing: dict[str, Any], ddelim: str, only: list[str] | None,
                   summary: MigrationSummary) -> None:
        chosen = [m for m in mappings if m.role != "skip" and (not only or m.source in only)]
        self._runs = [FolderRun(m.source, m.destination, m.role, m.special) for m in chosen]
        self._dst_existing = set(dst_existing)
        self._ddelim = ddelim
        self._summary = summary
        self._all_sources = [m.source for m in mappings if m.role != "skip"]
        # STATUS of every source folder in one round trip: totals + the rerun fast path.
        status = await self._blocking(src.wire.status_many, [r.source for r in self._runs])
        known = {row["name"]: row for row in await self.store.fetchall(
            "SELECT name, uidvalidity, uidnext, messages, bytes, mapped_to, state FROM folders "
            "WHERE side='old'")}
        work: list[FolderRun] = []
        for r in self._runs:
            st = status.get(r.source)
            if isinstance(st, WireError) or st is None:
                r.state, r.errors = "errors", 1
                summary.errors.append(f"{r.source}: the old server refused to open it ({st}).")
                continue
            r.total_messages = st.get("messages", 0)
            row = known.get(r.source)
            if row is not None:
                r.total_bytes = row["bytes"] or 0
            if (row is not None and row["state"] == "done" and row["mapped_to"] == r.destination
                    and row["uidvalidity"] == st.get("uidvalidity")
                    and row["uidnext"] == st.get("uidnext") and row["messages"] == r.total_messages):
                r.state, r.skipped = "done", True
                r.present, r.present_bytes = r.total_messages, r.total_bytes
                continue
            work.append(r)
        # sources merged into one destination are planned together or not at all: the
        # multiset of the destination is shared between them
        busy = {r.destination for r in work}
        for r in self._runs:
            if r.skipped and r.destination in busy:
                r.skipped, r.state, r.present, r.present_bytes = False, "planned", 0, 0
                work.append(r)
        groups: dict[str, Group] = {}
        for r in work:
            key = r.destination + ("\0last" if r.role == "all_mail" else "")
            g = groups.setdefault(key, Group(r.destination, [], last=r.role == "all_mail"))
            g.folders.append(r)
        pending = sorted(groups.values(), key=lambda g: g.last)
        if not pending:
            return
        for attempt in range(6):
            if not pending or self._cancel:
                break
            for g in pending:
                g.dirty = False
                for r in g.folders:
                    r.dirty = False
            if attempt:
                lanes = await lanes_task
                await self._alive([src, dst, *(c for pair in lanes for c in pair)])
            await self._pass(src, dst, lanes_task, pending)
            pending = [g for g in pending if g.dirty]
            if pending:
                self._log("info", f"re-checking {len(pending)} folder(s) after a dropped connection")
        for g in pending:
            for r in g.folders:
                r.errors += 1
                summary.errors.append(f"{r.source}: the copy kept failing; run the migration again.")

    async def _open_lanes(self, n: int, conns: list[Conn]) -> list[tuple[Conn, Conn]]:
        """Open ``n`` connection pairs in parallel; keep those the servers accept."""
        if n <= 0:
            return []
        pairs = [(Conn(self.engine, "old"), Conn(self.engine, "new")) for _ in range(n)]
        for pair in pairs:
            conns.extend(pair)
        results = await asyncio.gather(*(self._blocking(c.open) for pair in pairs for c in pair),
                                       return_exceptions=True)
        for res in results:
            if isinstance(res, AuthError):
                raise res
        lanes = [p for p in pairs if p[0].wire is not None and p[1].wire is not None]
        if not lanes:
            bad = next(r for r in results if isinstance(r, BaseException))
            raise bad
        if len(lanes) < n:
            self._log("warning", f"the servers accepted {len(lanes)} of {n} extra connections")
        return lanes

    async def _pass(self, src: Conn, dst: Conn, lanes_task: "asyncio.Task[list[tuple[Conn, Conn]]]",
                    groups: list[Group]) -> None:
        """Plan ``groups`` (feeding the job queue) while the lanes copy; then the planner's
        own connections join the copy. Returns when every queued job is done."""
        # jobs hold metadata only; with no extra lanes (a 1-connection provider) the
        # planner copies after planning, so the queue must not block it
        jobs: asyncio.Queue = asyncio.Queue(maxsize=0 if self._n_lanes == 0 else 16)

        async def work() -> None:
            lanes = await lanes_task
            await asyncio.gather(*(self._lane(pair, jobs) for pair in lanes))

        async def plan_all() -> None:
            planner = {"src": src, "dst": dst}
            for wave in self._waves(groups):
                if self._stop_work():
                    break
                await self._plan_wave(planner, wave, jobs)

        workers = asyncio.create_task(work())
        planning = asyncio.create_task(plan_all())
        while not planning.done() and not workers.done():
            await asyncio.wait({workers, planning}, return_when=asyncio.FIRST_COMPLETED)
        if workers.done() and workers.exception() is not None:
            planning.cancel()     # e.g. the copy connections could not be opened
            await asyncio.gather(planning, return_exceptions=True)
            raise workers.exception()  # type: ignore[misc]
        extra = None
        try:
            await planning
            # planning is over: its connections copy too
            extra = asyncio.create_task(self._lane((src, dst), jobs))
        finally:
            try:
                lanes = await lanes_task
            except BaseException:
                lanes = []
            for _ in range(len(lanes) + (1 if extra else 0)):
                await jobs.put(None)
            await asyncio.gather(workers, *([extra] if extra else []))
        if self._fatal is not None:
            raise self._fatal

    @staticmethod
    def _waves(groups: list[Group]) -> list[list[Group]]:
        """Groups planned together (pipelined), bounded by message count; All Mail last."""
        waves: list[list[Group]] = []
        cur: list[Group] = []
        n = 0
        for g in groups:
            size = sum(r.total_messages for r in g.folders)
            if cur and (n + size > WAVE or g.last != cur[-1].last):
                waves.append(cur)
                cur, n = [], 0
            cur.append(g)
            n += size
        if cur:
            waves.append(cur)
        return waves

    # -- planning ---------------------------------------------------------------------------
    def _group_error(self, g: Group, text: str) -> None:
        g.failed = True
        for r in g.folders:
            r.state, r.errors = "errors", r.errors + 1
        self._summary.errors.append(f"{g.destination}: {text}")
        self._log("error", f"{g.destination}: {text}")

    async def _plan_wave(self, planner: dict[str, Conn], wave: list[Group], jobs: asyncio.Queue) -> None:
        for g in wave:
            g.queued = 0
            g.failed = False
        for attempt in range(4):
            try:
                await self._plan_wave_once(planner, wave, jobs)
                return
            except LOST as e:
                await self._reconnect(planner["dst" if isinstance(e, DstLost) else "src"], e)
                if any(g.queued for g in wave):
                    break   # jobs of these groups may be in flight: plan them again after the pass
        for g in wave:
            if not g.failed:
                g.dirty = True

    async def _plan_wave_once(self, planner: dict[str, Conn], wave: list[Group],
                              jobs: asyncio.Queue) -> None:
        bb = self.engine.config.migration.batch_bytes
        small = [r for g in wave for r in g.folders if r.total_messages <= CHUNK]
        # destination and source are read at the same time, each pipelined over the wave
        res = await asyncio.gather(
            self._dest_many(planner["dst"], wave),
            self._blocking(read_many, planner["src"].wire, [(r.source, b"1:*") for r in small], bb),
            return_exceptions=True)
        for x in res:
            if isinstance(x, BaseException):
                raise x
        budgets, srcdata = res
        for g in wave:
            if g.failed or self._cancel:
                continue
            budget = budgets[g.destination]
            for r in g.folders:
                if self._cancel:
                    return
                got = srcdata.get(r.source)
                if isinstance(got, WireError):
                    r.state, r.errors = "errors", r.errors + 1
                    self._summary.errors.append(f"{r.source}: the old server refused to read it ({got.text}).")
                    continue
                if got is not None:
                    sel, msgs = got
                    await self._begin_folder(r, sel, len(msgs))
                    await self._decide(g, r, sel.uidvalidity, msgs, budget, jobs)
                    continue
                # a big folder: UIDs first, then the headers chunk by chunk
                try:
                    sel, uids = await self._blocking(planner["src"].wire.select_and_search, r.source)
                except WireError as e:
                    r.state, r.errors = "errors", r.errors + 1
                    self._summary.errors.append(f"{r.source}: the old server refused to open it ({e.text}).")
                    continue
                await self._begin_folder(r, sel, len(uids))
                for i in range(0, len(uids), CHUNK):
                    if self._cancel:
                        return
                    msgs = await self._blocking(identify, planner["src"].wire, uids[i:i + CHUNK], bb)
                    await self._decide(g, r, sel.uidvalidity, msgs, budget, jobs)

    async def _dest_many(self, conn: Conn, wave: list[Group]) -> dict[str, Counter]:
        """What each destination folder of the wave holds, by identity (creating missing
        folders); learns every UID not cached yet — this is what makes a crash between
        APPEND and recording harmless."""
        bb = self.engine.config.migration.batch_bytes
        missing = [g.destination for g in wave if g.destination not in self._dst_existing]
        if missing:
            errs = await self._blocking(dst_side(create_many), conn.wire, missing, self._ddelim,
                                        self._dst_existing)
            for g in wave:
                if g.destination in errs:
                    self._group_error(g, f"the new server refused to create the folder ({errs[g.destination]}).")
                elif g.destination in missing:
                    self._dst_existing.add(g.destination)
        names = sorted({g.destination for g in wave if not g.failed})
        probes = await self._blocking(dst_side(probe_many), conn.wire, names)
        marks = ",".join("?" * len(names))
        cached: dict[str, list[Any]] = {}
        if names:
            for row in await self.store.fetchall(
                    f"SELECT folder, uidvalidity, uid, identity FROM dest_messages WHERE folder IN ({marks})",
                    names):
                cached.setdefault(row[0], []).append(row)
        out: dict[str, Counter] = {}
        fetch_small: list[tuple[str, bytes]] = []
        todo: dict[str, tuple[Any, dict[int, str], set[int], list[int]]] = {}
        for name in names:
            p = probes[name]
            if isinstance(p, WireError):
                for g in wave:
                    if g.destination == name:
                        self._group_error(g, f"the new server refused to open the folder ({p.text}).")
                continue
            sel, uids = p
            rows = cached.get(name, [])
            known = {row[2]: row[3] for row in rows if row[1] == sel.uidvalidity}
            live = set(uids)
            unknown = [u for u in uids if u not in known]
            todo[name] = (sel, known, live, unknown)
            if unknown and len(unknown) <= CHUNK:
                fetch_small.append((name, uid_set(unknown)))
        learned: dict[str, list[tuple[int, str]]] = {n: [] for n in todo}
        if fetch_small:
            got = await self._blocking(dst_side(read_many), conn.wire, fetch_small, bb)
            for name, res in got.items():
                if isinstance(res, WireError):
                    raise FolderError(f"the new server refused to read {name} ({res.text})")
                learned[name] = [(m.uid, m.identity) for m in res[1]]
        for name, (sel, known, live, unknown) in todo.items():
            if len(unknown) > CHUNK:
                def read(part: list[int], name: str = name) -> list[SrcMsg]:
                    conn.wire.select(name)
                    return identify(conn.wire, part, bb)
                for i in range(0, len(unknown), CHUNK):
                    msgs = await self._blocking(dst_side(read), unknown[i:i + CHUNK])
                    learned[name].extend((m.uid, m.identity) for m in msgs)
            vanished = [u for u in known if u not in live]
            stale_uv = len(known) != len(cached.get(name, []))
            new = learned[name]
            if stale_uv or vanished or new:
                async with self._db_lock, self.store.transaction() as db:
                    if stale_uv:
                        await db.execute("DELETE FROM dest_messages WHERE folder=? AND uidvalidity!=?",
                                         (name, sel.uidvalidity))
                    if vanished:
                        await db.executemany("DELETE FROM dest_messages WHERE folder=? AND uidvalidity=? "
                                             "AND uid=?", [(name, sel.uidvalidity, u) for u in vanished])
                    await db.executemany("INSERT OR REPLACE INTO dest_messages(folder, uidvalidity, uid, "
                                         "identity) VALUES(?, ?, ?, ?)",
                                         [(name, sel.uidvalidity, u, i) for u, i in new])
            counts: Counter = Counter(i for u, i in known.items() if u in live)
            counts.update(i for _, i in new)
            out[name] = counts
        return out

    async def _begin_folder(self, r: FolderRun, sel: Any, count: int) -> None:
        r.uidvalidity, r.uidnext, r.total_messages = sel.uidvalidity, sel.uidnext, count
        r.state = "copying"
        # copies of an earlier pass of this run stay counted as copies, not as "already there"
        r.present = r.refused = r.to_copy = r.copied_plan = 0
        r.present_bytes = r.total_bytes = 0
        async with self._db_lock, self.store.transaction() as db:
            # A new UIDVALIDITY makes the old rows meaningless; identities decide, not UIDs.
            await db.execute("DELETE FROM messages WHERE src_folder=? AND src_uidvalidity!=?",
                             (r.source, sel.uidvalidity))
            await db.execute(
                "INSERT INTO folders(side, name, special, uidvalidity, uidnext, messages, mapped_to, "
                "state, updated) VALUES('old', ?, ?, ?, ?, ?, ?, 'copying', ?) "
                "ON CONFLICT(side, name) DO UPDATE SET special=excluded.special, "
                "uidvalidity=excluded.uidvalidity, uidnext=excluded.uidnext, "
                "messages=excluded.messages, mapped_to=excluded.mapped_to, state='copying', "
                "updated=excluded.updated",
                (r.source, r.special, sel.uidvalidity, sel.uidnext, count, r.destination, time.time()))

    async def _decide(self, g: Group, r: FolderRun, uidvalidity: int, msgs: list[SrcMsg],
                      budget: Counter, jobs: asyncio.Queue) -> None:
        """Record a chunk of source messages and queue what the destination lacks
        (multiset: an identity is copied as often as the source holds it more)."""
        # every lane holds about two batches at once: keep them inside the memory budget
        bb = min(self.engine.config.migration.batch_bytes,
                 max(2**20, self._budget.cap // (2 * (self._n_lanes + 1))))
        if self._quota is not None:
            bb = max(1, min(bb, self._quota.limit))   # a batch never spans more than the cap
        bm = self.engine.config.migration.batch_messages
        r.total_bytes += sum(m.size for m in msgs)
        now = time.time()
        elsewhere: set[str] = set()
        others = [s for s in self._all_sources if s != r.source]
        if r.role == "all_mail" and others:
            elsewhere = await self._held_elsewhere([m.identity for m in msgs], others)
        present, copy = [], []
        for m in msgs:
            if m.identity in elsewhere:
                present.append((m, "in another folder"))
            elif budget.get(m.identity, 0) > 0:
                budget[m.identity] -= 1
                present.append((m, None))
            else:
                copy.append(m)
        too_big: list[tuple[SrcMsg, str]] = []
        if self._max_message and copy:
            limit = self._max_message
            too_big = [(m, f"it is {m.size / 1e6:,.1f} MB, more than the {limit / 1e6:,.1f} MB the "
                           f"new account accepts per message; it was not sent")
                       for m in copy if m.size > limit]
            if too_big:
                copy = [m for m in copy if m.size <= limit]
        async with self._db_lock, self.store.transaction() as db:
            await db.executemany(
                "INSERT INTO messages(identity, message_id, src_folder, src_uidvalidity, src_uid, "
                "size, flags, internaldate, dst_folder, state, updated) "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?) "
                "ON CONFLICT(src_folder, src_uidvalidity, src_uid) DO UPDATE SET "
                "identity=excluded.identity, size=excluded.size, flags=excluded.flags, "
                "internaldate=excluded.internaldate, dst_folder=excluded.dst_folder, "
                # a copied row keeps the time of its copy: the daily caps count by it
                "updated=CASE WHEN messages.state='copied' THEN messages.updated "
                "ELSE excluded.updated END",
                [(m.identity, m.message_id, r.source, uidvalidity, m.uid, m.size,
                  m.flags.decode("utf-8", "replace"), (m.date or b"").decode("ascii", "replace"),
                  r.destination, now) for m in msgs])
            await db.executemany(
                "UPDATE messages SET state=CASE WHEN state='copied' THEN 'copied' ELSE 'present' END, "
                "reason=? WHERE src_folder=? AND src_uidvalidity=? AND src_uid=?",
                [(why, r.source, uidvalidity, m.uid) for m, why in present])
            if too_big:
                await db.executemany(
                    "UPDATE messages SET state='refused', reason=?, updated=? "
                    "WHERE src_folder=? AND src_uidvalidity=? AND src_uid=?",
                    [(why, now, r.source, uidvalidity, m.uid) for m, why in too_big])
        for m, why in too_big:
            r.refused += 1
            self._summary.refused.append(Refusal(r.source, m.uid, m.subject, m.size, why))
            if len(self._summary.refused) <= 20:
                self._log("warning", f"{r.source}: message {m.uid} ({m.subject[:60]!r}) is too big "
                                     f"for the new account: {why}")
        counted = [m for m, _ in present if m.uid not in r.copied_uids]
        r.present += len(counted)
        r.present_bytes += sum(m.size for m in counted)
        r.to_copy += len(copy)
        # even batches (240 -> 120 + 120, not 200 + 40) keep the lanes equally busy
        per = -(-len(copy) // max(1, -(-len(copy) // bm))) if copy else bm
        for batch in batches(copy, per, bb):
            if self._stop_work():
                return
            g.queued += 1
            await jobs.put(CopyJob(g, r, uidvalidity, batch, sum(m.size for m in batch)))

    async def _alive(self, conns: list[Conn]) -> None:
        """NOOP every connection (in parallel); reopen the ones that died meanwhile."""
        def noop(c: Conn) -> bool:
            try:
                if c.wire is None:
                    return False
                c.wire.command(b"NOOP")
                return True
            except Exception:
                return False
        alive = await asyncio.gather(*(self._blocking(noop, c) for c in conns))
        await asyncio.gather(*(self._reconnect(c, ConnectionLost("the connection was closed"))
                               for c, ok in zip(conns, alive) if not ok))

    async def _held_elsewhere(self, identities: list[str], others: list[str]) -> set[str]:
        found: set[str] = set()
        marks = ",".join("?" * len(others))
        for i in range(0, len(identities), 500):
            part = identities[i:i + 500]
            rows = await self.store.fetchall(
                f"SELECT DISTINCT identity FROM messages WHERE identity IN ({','.join('?' * len(part))}) "
                f"AND src_folder IN ({marks})", (*part, *others))
            found.update(row[0] for row in rows)
        return found

    # -- copying ----------------------------------------------------------------------------
    async def _lane(self, pair: tuple[Conn, Conn], jobs: asyncio.Queue) -> None:
        """One source + one destination connection: the FETCH of batch k+1 overlaps the
        APPEND of batch k; bodies in flight are bounded by the shared byte budget."""
        src, dst = pair
        handoff: asyncio.Queue = asyncio.Queue(maxsize=1)

        async def fetcher() -> None:
            try:
                while True:
                    job = await jobs.get()
                    if job is None:
                        return
                    await self._gate.wait()
                    if self._stop_work() or job.group.dirty:
                        continue
                    if self._quota is not None:
                        if not await self._quota.reserve(job.nbytes, self._stop_work, self._quota_wait):
                            continue
                        await self._gate.wait()    # paused while waiting: stay paused
                        if self._stop_work() or job.group.dirty:
                            self._quota.refund(job.nbytes)
                            continue
                    await self._budget.acquire(job.nbytes)
                    got = None
                    try:
                        got = await self._fetch(src, job)
                    except Cancelled:
                        pass
                    except BaseException as e:
                        self._fatal = self._fatal or e
                    if got is None:
                        self._budget.release(job.nbytes)
                        if self._quota is not None:
                            self._quota.refund(job.nbytes)
                        continue
                    await handoff.put((job, got))
                    got = None    # the appender owns the bodies now
            finally:
                await handoff.put(None)

        async def appender() -> None:
            while True:
                item = await handoff.get()
                if item is None:
                    return
                job, (items, msgs) = item
                try:
                    if not self._stop_work() and not job.group.dirty:
                        await self._append_job(dst, job, items, msgs)
                except Cancelled:
                    pass
                except BaseException as e:
                    self._fatal = self._fatal or e
                finally:
                    del item, msgs
                    self._budget.release(job.nbytes)

        await asyncio.gather(fetcher(), appender())

    def _quota_wait(self, cap: Cap, until: float) -> None:
        self._log("warning", cap.sentence(until))
        self._publish_progress(force=True)

    def _stop_work(self) -> bool:
        return self._cancel or self._fatal is not None

    async def _fetch(self, src: Conn, job: CopyJob) -> tuple[list[SrcMsg], list[Any]] | None:
        r = job.run
        uids = [m.uid for m in job.items]

        def fetch() -> tuple[int, dict[int, bytes]]:
            w = src.wire
            if w.selected is not None and w.selected.name == r.source:
                return w.selected.uidvalidity, fetch_bodies(w, uids)
            # EXAMINE and FETCH in one round trip
            info = {"exists": 0, "uidvalidity": 0, "uidnext": 0}
            bodies: dict[int, bytes] = {}
            t1 = w.start(b"EXAMINE " + mailbox(r.source))
            t2 = w.start_fetch(uid_set(uids), b"UID BODY.PEEK[]")
            err = None
            try:
                w.finish(t1, Wire._select_handler(info))
            except WireError as e:
                err = e
            try:
                w.finish(t2, Wire.fetch_handler(body_into(bodies)))
            except WireError as e:
                err = err or e
            if err:
                raise err
            w.selected = Selected(r.source, info["exists"], info["uidvalidity"], info["uidnext"])
            return info["uidvalidity"], bodies

        for attempt in range(8):
            try:
                uv, bodies = await self._blocking(fetch)
                break
            except LOST as e:
                await self._reconnect(src, e)
            except WireError as e:
                r.errors += 1
                job.group.dirty = True
                self._log("error", f"{r.source}: the old server refused a FETCH ({e.text})")
                return None
        else:
            job.group.dirty = True
            return None
        if uv != job.uidvalidity:
            job.group.dirty = True     # the source was renumbered: plan it again by identity
            return None
        items = [m for m in job.items if m.uid in bodies]
        if not items:
            return None
        return items, [(m.flags, m.date, bodies[m.uid]) for m in items]

    async def _append_job(self, dst: Conn, job: CopyJob, items: list[SrcMsg], msgs: list[Any]) -> None:
        r = job.run
        try:
            results = await self._blocking(append_batch, dst.wire, r.destination, msgs)
        except LOST as e:
            # Some of the batch may have landed: the destination is re-identified later.
            job.group.dirty = True
            r.dirty = True
            await self._reconnect(dst, e)
            return
        await self._record(job, items, results)

    async def _record(self, job: CopyJob, items: list[SrcMsg], results: list[Any]) -> None:
        r = job.run
        now = time.time()
        copied, refused, dest_rows = [], [], []
        for m, res in zip(items, results):
            if res.ok:
                copied.append((r.destination, res.uidvalidity, res.uid, now, r.source,
                               job.uidvalidity, m.uid))
                if res.uid is not None:
                    dest_rows.append((r.destination, res.uidvalidity, res.uid, m.identity))
                r.copied += 1
                r.copied_plan += 1
                r.copied_uids.add(m.uid)
                r.copied_bytes += m.size
            else:
                refused.append((res.text, now, r.source, job.uidvalidity, m.uid))
                r.refused += 1
                self._summary.refused.append(Refusal(r.source, m.uid, m.subject, m.size, res.text))
                if len(self._summary.refused) <= 20:
                    self._log("warning", f"{r.source}: the new server refused message {m.uid} "
                                         f"({m.subject[:60]!r}): {res.text}")
        async with self._db_lock, self.store.transaction() as db:
            if copied:
                await db.executemany(
                    "UPDATE messages SET state='copied', reason=NULL, dst_folder=?, dst_uidvalidity=?, "
                    "dst_uid=?, updated=? WHERE src_folder=? AND src_uidvalidity=? AND src_uid=?",
                    copied)
            if dest_rows:
                await db.executemany("INSERT OR REPLACE INTO dest_messages(folder, uidvalidity, uid, "
                                     "identity) VALUES(?, ?, ?, ?)", dest_rows)
            if refused:
                await db.executemany(
                    "UPDATE messages SET state='refused', reason=?, updated=? "
                    "WHERE src_folder=? AND src_uidvalidity=? AND src_uid=?", refused)

    async def _record_folders(self) -> None:
        """Remember complete folders so that the next run skips them without fetching."""
        async with self._db_lock, self.store.transaction() as db:
            for r in self._runs:
                if r.skipped:
                    continue
                complete = (r.state == "copying" and not r.dirty and not r.errors and not r.refused
                            and r.copied_plan >= r.to_copy and not self._cancel)
                r.state = "done" if complete else ("errors" if (r.errors or r.refused or r.dirty)
                                                   else r.state)
                state = "done" if complete else ("errors" if (r.errors or r.refused) else "partial")
                await db.execute("UPDATE folders SET state=?, bytes=?, updated=? "
                                 "WHERE side='old' AND name=?",
                                 (state, r.total_bytes, time.time(), r.source))

    # -- progress ---------------------------------------------------------------------------
    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self._publish_progress()

    def _publish_progress(self, force: bool = False, final: str | None = None) -> None:
        paused = self.state == "paused"
        tot_m = tot_b = done_m = done_b = 0
        mps = bps = 0.0
        for r in self._runs:
            ev = r.progress(paused, self._quota)
            key = (ev.state, ev.done_messages, ev.done_bytes, ev.total_messages, ev.refused, ev.errors)
            if force or key != r.published:
                r.published = key
                self.engine.publish(ev)
            tot_m += ev.total_messages
            tot_b += ev.total_bytes
            done_m += ev.done_messages
            done_b += ev.done_bytes
            mps += ev.msgs_per_s
            bps += ev.bytes_per_s
        state = final or {"paused": "paused", "cancelling": "cancelled"}.get(self.state, "running")
        if final:
            eta = None
        elif self._quota is not None:
            eta = self._quota.eta(max(0, tot_b - done_b), bps)
        else:
            eta = (max(0, tot_b - done_b) / bps) if bps > 0 else None
        self.engine.publish(JobProgress("migrate", state, tot_m, tot_b, done_m, done_b, mps, bps, eta))

    async def folder_rows(self) -> list[FolderProgress]:
        """Last known per-folder state from SQLite (a restarted dashboard shows it at once)."""
        if self.state in ("running", "paused", "cancelling") and self._runs:
            return [r.progress(self.state == "paused", self._quota) for r in self._runs]
        stats: dict[str, dict[str, tuple[int, int]]] = {}
        for row in await self.store.fetchall(
                "SELECT src_folder, state, COUNT(*), COALESCE(SUM(size), 0) FROM messages "
                "GROUP BY src_folder, state"):
            stats.setdefault(row[0], {})[row[1]] = (row[2], row[3])
        out = []
        for row in await self.store.fetchall(
                "SELECT name, mapped_to, messages, bytes, state FROM folders WHERE side='old' ORDER BY id"):
            s = stats.get(row["name"], {})
            copied, present, refused = (s.get(k, (0, 0)) for k in ("copied", "present", "refused"))
            # "copying" left behind by a killed run is shown as planned (it resumes)
            state = {"done": "done", "errors": "errors"}.get(row["state"], "planned")
            total = row["messages"] or 0
            done = copied[0] + present[0] + refused[0]
            if row["state"] == "done":
                done = total
            out.append(FolderProgress("migrate", row["name"], row["mapped_to"] or "", state,
                                      total, row["bytes"] or 0, done_messages=done,
                                      done_bytes=min(row["bytes"] or 0, copied[1] + present[1])
                                      if row["state"] != "done" else row["bytes"] or 0,
                                      already_there=present[0], refused=refused[0]))
        return out

    async def verify(self) -> Any:
        from .verify import verify
        report = await verify(self.engine)
        now = f"{dt.datetime.now():%Y-%m-%d %H:%M}"
        if report.ok:
            count = sum(f.source_count for f in report.folders)
            await self.engine.checklist.prove(
                "verify", True, f"{count:,} messages in {len(report.folders)} folders verified {now}")
        else:
            await self.engine.checklist.prove(
                "verify", False, f"verify {now}: {report.missing} missing")
        return report
