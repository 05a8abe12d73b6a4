"""The migration facet (``engine.migration``): plan, copy, pause / resume / cancel, verify.

How a run works (issue 2 "The copy", issue 3 speed, issue 9 "exactly once"):

* One migration per state file: ``run`` holds ``JobLock(state, "migrate")`` from before
  anything is written until it returns (a second process gets ``JobBusy`` naming the
  first). ``--folder`` names are checked against the old mailbox's folders before
  anything is written (INBOX in any case; unknown names get close suggestions).
* Both logins first (AuthError / ConnectError before anything is written). One pair
  lists both sides and asks STATUS of every source folder in one round trip; a folder
  whose UIDVALIDITY + UIDNEXT + count equal what SQLite recorded as completely copied
  is skipped without fetching anything (fast rerun), unless an append into its
  destination is still unsettled (below). The copy connections open meanwhile
  (``migration.connections`` or the provider's cap, per side).
* The *planner* pair reads folders in *waves*, pipelined: CREATE of missing
  destination folders, EXAMINE + UID SEARCH of every destination folder, a header
  FETCH of every destination UID not in ``dest_messages`` yet (a crash between APPEND
  and recording is harmless: the destination is re-identified, never trusted), and
  EXAMINE + one header FETCH per source folder (big folders in chunks). Every listing
  is checked against the server's own count (EXISTS): a folder listed short is an
  error, never "done". Every source message is recorded in ``messages``; what the
  destination lacks (multiset: an identity is copied as often as the source holds it
  more) becomes copy jobs in a bounded queue (metadata only). Gmail's All Mail goes
  last and copies only identities no other source folder holds. A dropped connection
  while planning resumes where it was (learned destination UIDs are committed as they
  come, source chunks already decided are not read again) with smaller chunks.
* *Lanes* (one source + one destination connection each; the planner's pair joins
  after planning) FETCH a batch of bodies while APPENDing the previous one: MULTIAPPEND
  with LITERAL+ where offered, else pipelined single APPENDs; bytes untouched, flags
  (minus \\Recent) and INTERNALDATE as the source gave them. A shared byte budget
  bounds the bodies in memory. Batches adapt to the link: a dropped connection halves
  the batch size (bytes and count), every batch that goes through grows it back by a
  tenth, so a link that drops more often than one batch still makes progress.
* **Placements** (core/placements.py): every batch is recorded in ``placements``
  before its bytes leave and settled after (APPENDUIDs, or dropped when refused), in
  the transaction that records the copy. A message a forward already placed there is
  counted as already there (the forward and the copy never both append it). When an
  APPEND breaks, the lane reconnects, re-reads what landed in that folder (appends to
  it wait meanwhile) and sends again only what did not land. Appends a dead process
  left unsettled (kill -9) may still reach the server after the rerun has looked: the
  rerun defers those identities, copies everything else, waits out the landing grace,
  reads the destination again and copies only what is still missing. Finally, an
  identity that a late landing left more often in a destination than the source holds
  loses its extra copies — only copies this program placed (UID STORE \\Deleted + UID
  EXPUNGE, UIDPLUS only) — and the summary says so.
* Daily byte caps (core/quota.py; Gmail: 2,500 MB/day download, 500 MB/day upload):
  before a batch is fetched it is counted against a rolling window; when the window is
  full the lanes wait (pause- and cancel-aware) until enough of it expires, one LogLine
  says until when, and the folders with work left show the state ``waiting`` (the job
  stays ``running``). Without caps no check runs at all. A message bigger than the new
  account's ``max_message_bytes`` is recorded as refused without an upload.
* A refused message (NO) is recorded with the server's words and the run goes on; the
  log says each cause once and the summary groups refusals by cause (a full mailbox is
  one headline, not a thousand lines).
* Pause: nothing new goes out (no FETCH, APPEND or planner read starts); while the
  batches in flight finish the job is ``pausing``, then ``paused``. Cancel: unfinished
  folders end ``cancelled`` with their true counts; a cancel is not an error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import json
import os
import re
import time
from collections import Counter, defaultdict, deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from ..net import imap as imapmod
from ..errors import AuthError, ConnectError, FolderError, SwitchoverError
from ..events import ConnectionState, FolderProgress, JobProgress, LogLine
from ..net.wire import (ConnectionLost, Incomplete, Selected, Wire, WireError, mailbox, uid_set)
from ..joblock import JobLock
from .quota import Cap, DailyQuota
from .transfer import (LOST, Conn, SrcMsg, append_batch, batches, body_into, create_many, dst_side,
                       DstLost, identify, keep_heap_flat, probe_many, read_many, fetch_bodies)

CHUNK = 5000                     # headers read per FETCH while planning a big folder
MIN_CHUNK = 50                   # ... and the least it shrinks to on a link that drops
WAVE = 20000                     # messages of small folders planned together (pipelined)
MEMORY_BUDGET = 48 * 2**20       # message bytes in flight, all lanes together (peak RSS)
TICK = 0.2                       # seconds between progress events (per folder, coalesced)
MIN_BATCH_BYTES = 32 * 2**10     # the smallest batch a dropping link shrinks to (or 1 message)
MAX_DROPS = 12                   # drops in a row without progress before a batch gives up
LANDING_GRACE = 5.0              # seconds after the run's start a dead run's append may land
DEFER_WINDOW = 120.0             # placements younger than this (seconds) are waited for
BUSY_WAIT = 30.0                 # seconds a batch waits for a forward sending the same message
LATE_MAX = 600.0                 # unsettled placements older than this are forgotten
RUNNING = ("planning", "running", "paused", "cancelling")


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


_FULL = ("overquota", "over quota", "quota exceeded", "mailbox is full", "mailbox full",
         "exceeded storage", "storage quota", "insufficient storage", "not enough space")
_BIG = ("toobig", "too big", "too large", "message size", "size limit", "exceeds the maximum",
        "accepts per message")


def refusal_cause(reason: str) -> tuple[str, str]:
    """(key, label) of a refusal's cause, from the server's words: a full mailbox and a
    message too big are recognised (response codes or common wordings); any other
    cause is its words with numbers left out, so one cause is one group."""
    text = reason.strip()
    low = text.lower()
    if any(w in low for w in _FULL):
        return "full", "the new mailbox is full"
    if any(w in low for w in _BIG) or low.startswith("[limit]"):
        return "too big", "too big for the new account"
    key = re.sub(r"\(\d[\d.]* \+ \d[\d.]* secs\)|\d+(?:[.,]\d+)*", "#", low)
    return key[:160], text[:200]


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
    #: extra copies a late landing (an interrupted earlier append) left, removed by this run
    duplicates_removed: int = 0

    def refusal_groups(self) -> list[tuple[str, int]]:
        """Refusals grouped by cause, most first: [(cause with the server's words, n)]."""
        groups: dict[str, list[Any]] = {}
        for ref in self.refused:
            key, label = refusal_cause(ref.reason)
            g = groups.setdefault(key, [label, ref.reason, 0])
            g[2] += 1
        out = []
        for key, (label, words, n) in groups.items():
            if key in ("full", "too big"):
                label = f"{label} (the server said: {words.strip()[:160]})"
            out.append((label, n))
        return sorted(out, key=lambda g: -g[1])

    def headline(self) -> str | None:
        """The one thing to say first about this run, or None when nothing stands out."""
        full = sum(1 for r in self.refused if refusal_cause(r.reason)[0] == "full")
        if full:
            return f"the new mailbox is full: {full:,} messages not copied"
        if self.cancelled:
            return (f"cancelled after copying {self.transferred:,} messages; "
                    f"run the migration again to continue")
        if self.refused:
            groups = self.refusal_groups()
            label, _ = groups[0]
            more = f" and {len(groups) - 1} other causes" if len(groups) > 1 else ""
            return f"{len(self.refused):,} messages not copied: {label}{more}"
        if self.errors:
            return f"{len(self.errors):,} errors: {self.errors[0]}"
        if self.duplicates_removed:
            return (f"removed {self.duplicates_removed:,} extra copies an interrupted earlier "
                    f"run had left")
        return None

    def describe(self) -> str:
        """One sentence for a person (dashboard message, log line)."""
        head = self.headline()
        counts = (f"{self.transferred:,} copied, {self.already_there:,} already there, "
                  f"{len(self.refused):,} refused, {len(self.errors):,} errors")
        if self.duplicates_removed:
            counts += f", {self.duplicates_removed:,} extra copies removed"
        return (f"{head + ' — ' if head else ''}{counts} in {self.elapsed:,.1f} s "
                f"({self.msgs_per_s:,.0f} msg/s, {self.bytes_per_s / 1e6:,.1f} MB/s)")


@dataclass
class RunInfo:
    """The last migration run recorded in the state file (``runs``)."""
    job: str
    started: float
    ended: float | None
    outcome: str | None          # done | errors | cancelled | failed | None (never ended)
    summary: dict[str, Any]
    running: bool = False        # a live process (this one or another) is running it now

    @property
    def stopped_early(self) -> bool:
        """True when the run ended before its end: cancelled, failed, or killed (never
        ended and nobody runs it)."""
        if self.running:
            return False
        return self.ended is None or self.outcome not in ("done", "errors")


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
    deferred: int = 0             # waiting for a dead run's append to settle
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
        span = now - t0
        mps = (self.copied - m0) / span if span > 0.05 else 0.0
        bps = (self.copied_bytes - b0) / span if span > 0.05 else 0.0
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
        elif state == "copying" and done >= self.total_messages and not self.deferred:
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
    deferred: bool = False   # holds identities a dead run may still be appending
    planned: bool = False    # planned completely in this run (its ``want`` is whole)
    queued: int = 0      # copy jobs queued in this pass
    want: Counter = field(default_factory=Counter)   # identities the destination should hold


@dataclass
class CopyJob:
    group: Group
    run: FolderRun
    uidvalidity: int
    items: list[SrcMsg]
    nbytes: int


@dataclass
class WaveState:
    """What a wave's planning already did, so a dropped connection resumes it."""
    dest: dict[str, tuple[Counter, Counter]] | None = None
    small: dict[str, Any] | None = None
    small_tried: bool = False
    listed: dict[str, tuple[Any, list[int]]] = field(default_factory=dict)
    next: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    progressed: bool = False


class Cancelled(Exception):
    pass


_RETRY = object()    # a batch whose connection dropped: split smaller and send again


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


def _ref(uidvalidity: int, uid: int, folder: str) -> str:
    """A placement's ref for a source message: 'uidvalidity/uid/folder'."""
    return f"{uidvalidity}/{uid}/{folder}"


def _unref(ref: str | None) -> tuple[int, int, str] | None:
    try:
        uv, uid, folder = (ref or "").split("/", 2)
        return int(uv), int(uid), folder
    except ValueError:
        return None


def choose_folders(mappings: list[Any], wanted: list[str]) -> list[Any]:
    """The mappings of the source folders named in ``wanted`` (INBOX in any case), in
    plan order; an unknown name, a folder that holds no mail or one the config leaves
    out is a SwitchoverError (exit 2) with one sentence, before anything is written."""
    by_name = {m.source: m for m in mappings}
    names = list(by_name)
    chosen: set[str] = set()
    unknown: list[str] = []
    refused: list[str] = []
    for w in wanted:
        m = by_name.get(w) or (by_name.get("INBOX") if w.strip().casefold() == "inbox" else None)
        if m is None:
            unknown.append(w)
        elif m.role == "skip":
            if m.reason.startswith("not selectable"):
                kids = [n for n in names if n != m.source and n.startswith(m.source)
                        and by_name[n].role != "skip"]
                hint = (f"; choose its subfolders ({', '.join(repr(k) for k in kids[:4])}"
                        f"{', …' if len(kids) > 4 else ''})" if kids else "")
                refused.append(f"'{m.source}' holds no mail (the server marks it not selectable){hint}")
            else:
                refused.append(f"'{m.source}' is not copied ({m.reason})")
        else:
            chosen.add(m.source)
    if unknown:
        hints: list[str] = []
        for w in unknown:
            low = {n.casefold(): n for n in names}
            close = difflib.get_close_matches(w, names, n=3, cutoff=0.6)
            # "Sent" for "INBOX.Sent" (a Courier-style prefix), any case
            leaf = [n for n in names if n.casefold().endswith(("." + w.casefold(), "/" + w.casefold()))]
            ci = low.get(w.casefold())
            for c in ([ci] if ci else []) + leaf:
                if c not in close:
                    close.insert(0, c)
            hints += [c for c in close if c not in hints]
        what = " or ".join(f"'{w}'" for w in unknown)
        sugg = f" (did you mean {', '.join(repr(h) for h in hints[:3])}?)" if hints else ""
        raise SwitchoverError(f"The old mailbox has no folder {what}{sugg}; "
                              f"'switchover migrate --dry-run' lists its folders.", exit_code=2)
    if refused:
        raise SwitchoverError("; ".join(refused) + ".", exit_code=2)
    return [m for m in mappings if m.source in chosen]


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
        self._groups: list[Group] = []
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
        #: batches adapt to the link: a share of the configured size (see _shrink/_grow)
        self._scale = 1.0
        self._chunk = CHUNK
        self._busy = 0                  # blocking reads / appends in flight (pause: "pausing")
        self._gates: dict[str, FolderGate] = {}
        #: appends a dead run left unsettled (placements), not resolved yet
        self._dead: dict[int, Any] = {}
        #: destination UIDs learned by this run's reads: {folder: {uid: identity}} (current UIDVALIDITY)
        self._learned: dict[str, dict[int, str]] = {}
        self._learned_uv: dict[str, int] = {}
        self._floor: dict[str, int] = {}     # UIDNEXT of a destination folder at its first read
        #: identities whose copies a late landing may have doubled: checked at the end
        self._risky: dict[str, set[str]] = {}
        self._causes: dict[str, list[Any]] = {}    # refusal cause -> [label, first words, n]
        #: landing grace is measured from here (the start of the run)
        self.landing_grace = LANDING_GRACE

    # -- controls -------------------------------------------------------------------------
    def pause(self) -> None:
        """Nothing new goes out; the batches in flight finish (JobProgress 'pausing',
        then 'paused')."""
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

    async def _io(self, fn: Any, *args: Any, gated: bool = True) -> Any:
        """A blocking read or append: waits while paused (nothing new goes out), and
        counts as in flight (the job is 'pausing' until it ends)."""
        if gated:
            await self._gate.wait()
        self._busy += 1
        try:
            return await self._blocking(fn, *args)
        finally:
            self._busy -= 1
            if self._busy == 0 and self.state == "paused":
                self._publish_progress(force=True)

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
        from ..net.mailboxes import list_folders, namespace_of
        from . import folders as F

        def side(conn: Conn) -> tuple[list[Any], tuple[str, str]]:
            return list_folders(conn.client), namespace_of(conn.client)

        (src_list, (sprefix, sdelim)), (dst_list, (dprefix, ddelim)) = await asyncio.gather(
            self._blocking(side, src), self._blocking(side, dst))
        cfg = self.engine.config
        mappings = F.plan_folders(src_list, dst_list, settings=cfg.migration,
                                  src_provider=cfg.old.provider, dst_provider=cfg.new.provider,
                                  dst_prefix=dprefix, dst_delimiter=ddelim,
                                  src_prefix=sprefix, src_delimiter=sdelim)
        return mappings, {f.name: f for f in dst_list}, ddelim

    # adaptive batch size ------------------------------------------------------------------
    def _limits(self) -> tuple[int, int]:
        """(messages, bytes) a batch may hold now."""
        mig = self.engine.config.migration
        return (max(1, int(mig.batch_messages * self._scale)),
                max(MIN_BATCH_BYTES, int(mig.batch_bytes * self._scale)))

    def _shrink(self, failed_bytes: int) -> None:
        """A connection dropped with ``failed_bytes`` in flight: halve what a batch holds
        (at least below what just failed)."""
        bb = max(1, self.engine.config.migration.batch_bytes)
        self._scale = max(1e-6, min(self._scale / 2, failed_bytes / 2 / bb))

    def _grow(self) -> None:
        """A batch went through: grow back slowly (a tenth per batch)."""
        if self._scale < 1.0:
            self._scale = min(1.0, self._scale * 1.1)

    def _split(self, job: CopyJob) -> tuple[CopyJob, CopyJob | None]:
        """The part of ``job`` that fits the current batch limits, and the rest."""
        lim_m, lim_b = self._limits()
        n = size = 0
        for m in job.items:
            if n and (n >= lim_m or size + m.size > lim_b):
                break
            n += 1
            size += m.size
        if n >= len(job.items):
            return job, None
        return (CopyJob(job.group, job.run, job.uidvalidity, job.items[:n], size),
                CopyJob(job.group, job.run, job.uidvalidity, job.items[n:], job.nbytes - size))

    def _gate_of(self, folder: str) -> FolderGate:
        gate = self._gates.get(folder)
        if gate is None:
            gate = self._gates[folder] = FolderGate()
        return gate

    # -- plan -----------------------------------------------------------------------------
    async def plan(self, folders: list[str] | None = None) -> Plan:
        """List both sides, count messages and bytes per source folder, record in SQLite.
        ``folders``: only these source folders (unknown ones: SwitchoverError, exit 2,
        before anything is written)."""
        src, dst = await self.open_pair()
        try:
            mappings, _, _ = await self._mappings(src, dst)
            if folders:
                mappings = choose_folders(mappings, folders)
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
                "state=CASE WHEN state='skipped' THEN 'planned' "
                "WHEN mapped_to IS excluded.mapped_to THEN state ELSE 'planned' END",
                [(p.source, p.special, p.messages, p.bytes, p.destination, time.time())
                 for p in plans if p.role != "skip"])
            await self._record_skipped(db, mappings)
        return Plan(plans, sum(p.messages for p in plans if p.role != "skip"),
                    sum(p.bytes for p in plans if p.role != "skip"))

    @staticmethod
    async def _record_skipped(db: Any, mappings: list[Any]) -> None:
        """Folders the plan leaves out (not selectable, excluded, virtual) are 'skipped'
        with their reason: never 'planned' forever."""
        await db.executemany(
            "INSERT INTO folders(side, name, special, messages, bytes, mapped_to, state, updated) "
            "VALUES('old', ?, ?, 0, 0, '', 'skipped', ?) ON CONFLICT(side, name) DO UPDATE SET "
            "special=excluded.special, mapped_to='', state='skipped', updated=excluded.updated",
            [(m.source, m.special, time.time()) for m in mappings if m.role == "skip"])

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
            info = {"exists": 0, "uidvalidity": 0, "uidnext": 0}

            def each(parts: list[bytes], acc: list[int] = acc) -> None:
                head = parts[0]
                i = head.find(b"RFC822.SIZE ")
                if i >= 0:
                    acc[0] += 1
                    acc[1] += int(head[i + 12:].split(b")")[0].split()[0])

            try:
                wire.finish(t1, Wire._select_handler(info))
            except WireError:
                pass
            try:
                wire.finish(t2, each)
            except WireError:
                pass   # empty folder ("1:*" is invalid there) or not selectable
            # the count shown is the server's own (EXISTS), never a short listing's
            out[name] = (max(acc[0], info["exists"]), acc[1])
        return out

    async def last_run(self) -> RunInfo | None:
        """The last migration run in the state file (a face says from it whether the last
        migration stopped before the end), or None when none ran."""
        row = await self.store.fetchone(
            "SELECT job, started, ended, outcome, summary FROM runs WHERE job='migrate' "
            "ORDER BY id DESC LIMIT 1")
        if row is None:
            return None
        try:
            summary = json.loads(row["summary"]) if row["summary"] else {}
        except ValueError:
            summary = {}
        running = False
        if row["ended"] is None:
            running = self.state in RUNNING or (
                JobLock(self.engine.config.state, "migrate").holder() is not None)
        return RunInfo(row["job"], row["started"], row["ended"], row["outcome"], summary, running)

    # -- run ------------------------------------------------------------------------------
    async def run(self, *, dry_run: bool = False, folders: list[str] | None = None) -> MigrationSummary:
        """Copy every planned folder (or only ``folders``); see the module docstring.
        Raises JobBusy (exit 4) when another process migrates with this state file, and
        SwitchoverError (exit 2) for an unknown folder, both before anything is written."""
        if self.state in RUNNING:
            raise SwitchoverError("A migration is already running.")
        if dry_run:
            return await self._dry_run(folders)
        lock = JobLock(self.engine.config.state, "migrate")
        lock.acquire()      # JobBusy (one sentence naming the holder) propagates
        try:
            return await self._run_locked(folders)
        finally:
            lock.release()

    async def _dry_run(self, folders: list[str] | None) -> MigrationSummary:
        t0 = time.monotonic()
        self.state = "planning"
        try:
            plan = await self.plan(folders)
        except BaseException:
            self.state = "failed"
            raise
        self.state = "idle"
        rows = [FolderProgress("migrate", p.source, p.destination,
                               "skipped" if p.role == "skip" else "planned", p.messages, p.bytes)
                for p in plan.folders]
        return MigrationSummary(messages=sum(p.messages for p in plan.folders if p.role != "skip"),
                                elapsed=time.monotonic() - t0, folders=rows, dry_run=True)

    def _reset(self) -> None:
        keep_heap_flat()
        self._cancel = False
        self._fatal = None
        self._budget = ByteBudget(max(MEMORY_BUDGET, self.engine.config.migration.batch_bytes))
        self._gate.set()
        self._t0 = time.monotonic()
        self._scale = 1.0
        self._chunk = CHUNK
        self._busy = 0
        self._gates = {}
        self._dead = {}
        self._learned = {}
        self._learned_uv = {}
        self._floor = {}
        self._risky = {}
        self._causes = {}
        self._runs = []
        self._groups = []

    async def _run_locked(self, folders: list[str] | None) -> MigrationSummary:
        self._reset()
        self.state = "planning"
        conns: list[Conn] = []
        lanes_task: asyncio.Task | None = None
        run_id = None
        summary = MigrationSummary()
        self._summary = summary
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
            chosen = choose_folders(mappings, folders) if folders else None
            run_id = await self.store.start_run("migrate")
            self.state = "running"
            ticker = asyncio.create_task(self._ticker())
            try:
                await self._run(src, dst, lanes_task, mappings, dst_existing, ddelim, chosen, summary)
            except Cancelled:
                pass
            await self._record_folders()
        except BaseException as e:
            self.state = "failed"
            if run_id is not None:
                summary.errors.append(str(e) if isinstance(e, SwitchoverError) else repr(e))
                await asyncio.shield(self._finish(run_id, summary, "failed"))
            raise
        finally:
            if ticker:
                ticker.cancel()
            if lanes_task is not None:
                await asyncio.gather(lanes_task, return_exceptions=True)
            await self._close_all(conns)
        summary.cancelled = self._cancel
        outcome = "cancelled" if self._cancel else ("done" if not summary.errors and not summary.refused
                                                    else "errors")
        await self._finish(run_id, summary, outcome)
        self.state = "idle" if self._cancel else "done"
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
            if outcome == "failed" and r.state in ("copying", "planned", "queued"):
                r.state = "errors"     # the run broke off: unfinished, never "done"
        s.folders = [r.progress() for r in self._runs]
        seen: dict[tuple[str, int], Refusal] = {}
        for ref in s.refused:
            seen[(ref.folder, ref.uid)] = ref
        s.refused = list(seen.values())
        s.ok = not s.errors and not s.refused and not self._cancel
        for label, n in s.refusal_groups():
            self._log("error", f"{n:,} message{'s' if n != 1 else ''} not copied: {label}")
        self._publish_progress(force=True, final=outcome)
        if run_id is not None:
            await self.store.end_run(run_id, outcome, {
                "transferred": s.transferred, "already_there": s.already_there,
                "refused": len(s.refused), "errors": s.errors[:20], "bytes": s.bytes,
                "duplicates_removed": s.duplicates_removed, "cancelled": s.cancelled,
                "headline": s.headline(), "elapsed": round(s.elapsed, 3)})

    async def _run(self, src: Conn, dst: Conn, lanes_task: "asyncio.Task[list[tuple[Conn, Conn]]]",
                   mappings: list[Any], dst_existing: dict[str, Any], ddelim: str,
                   chosen: list[Any] | None, summary: MigrationSummary) -> None:
        chosen = chosen if chosen is not None else [m for m in mappings if m.role != "skip"]
        self._runs = [FolderRun(m.source, m.destination, m.role, m.special) for m in chosen]
        self._dst_existing = set(dst_existing)
        self._ddelim = ddelim
        self._all_sources = [m.source for m in mappings if m.role != "skip"]
        async with self._db_lock, self.store.transaction() as db:
            await self._record_skipped(db, mappings)
        await self._load_unsettled()
        unsettled = {p.folder for p in self._dead.values()}
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
                    and row["uidnext"] == st.get("uidnext") and row["messages"] == r.total_messages
                    and r.destination not in unsettled):
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
        self._groups = sorted(groups.values(), key=lambda g: g.last)
        pending = list(self._groups)
        if not pending:
            await self._forget_old_placements()
            return
        for attempt in range(8):
            if not pending or self._cancel:
                break
            waiting = [g for g in pending if g.deferred]
            for g in pending:
                g.dirty = g.deferred = False
                for r in g.folders:
                    r.dirty = False
            if attempt:
                if waiting:
                    await self._sleep_until(self._t0 + self.landing_grace)
                lanes = await lanes_task
                await self._alive([src, dst, *(c for pair in lanes for c in pair)])
            await self._pass(src, dst, lanes_task, pending)
            pending = [g for g in pending if g.dirty or g.deferred]
            if pending and not self._cancel:
                if all(g.deferred and not g.dirty for g in pending):
                    self._log("info", f"waiting for appends an interrupted run left in flight, then "
                                      f"re-checking {len(pending)} folder(s)")
                else:
                    self._log("info", f"re-checking {len(pending)} folder(s) after a dropped connection")
        for g in pending:
            for r in g.folders:
                r.errors += 1
                summary.errors.append(f"{r.source}: the copy kept failing; run the migration again.")
        if not self._cancel and self._fatal is None:
            await self._dedupe(dst)
        await self._forget_old_placements()

    async def _sleep_until(self, deadline: float) -> None:
        while not self._cancel and time.monotonic() < deadline:
            await asyncio.sleep(min(0.1, deadline - time.monotonic()))

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

    def _folder_error(self, r: FolderRun, text: str) -> None:
        r.state, r.errors = "errors", r.errors + 1
        self._summary.errors.append(f"{r.source}: {text}")
        self._log("error", f"{r.source}: {text}")

    async def _plan_wave(self, planner: dict[str, Conn], wave: list[Group], jobs: asyncio.Queue) -> None:
        """Plan a wave; a dropped connection resumes where it was (smaller chunks), up to
        MAX_DROPS drops in a row without progress."""
        for g in wave:
            g.queued = 0
            g.failed = False
            g.planned = False
            g.want = Counter()
        st = WaveState()
        drops = 0
        while True:
            try:
                await self._plan_wave_once(planner, wave, jobs, st)
                for g in wave:
                    g.planned = not g.failed and not self._stop_work()
                return
            except LOST as e:
                drops = 1 if st.progressed else drops + 1
                st.progressed = False
                if drops > MAX_DROPS // 2:
                    break
                self._chunk = max(MIN_CHUNK, self._chunk // 2)
                await self._reconnect(planner["dst" if isinstance(e, DstLost) else "src"], e)
        for g in wave:
            if not g.failed:
                g.dirty = True

    async def _plan_wave_once(self, planner: dict[str, Conn], wave: list[Group],
                              jobs: asyncio.Queue, st: WaveState) -> None:
        bb = self.engine.config.migration.batch_bytes
        # small folders: one pipelined read of all of them (until a drop: then in chunks)
        small = [] if st.small_tried else [
            r for g in wave for r in g.folders if r.total_messages <= min(CHUNK, self._chunk)]
        reads: list[Any] = []
        if st.dest is None:
            reads.append(self._dest_many(planner["dst"], wave))
        if small:
            st.small_tried = True
            reads.append(self._io(read_many, planner["src"].wire, [(r.source, b"1:*") for r in small], bb))
        res = await asyncio.gather(*reads, return_exceptions=True)
        if st.dest is None:
            if not isinstance(res[0], BaseException):
                st.dest = res[0]
                st.progressed = True
            res = res[1:]
        if small and not isinstance(res[0], BaseException):
            st.small = res[0]
        for x in res:
            if isinstance(x, BaseException):
                raise x
        if st.dest is None:
            return
        for g in wave:
            if g.failed or self._cancel:
                continue
            budget, deferred = st.dest.get(g.destination, (Counter(), Counter()))
            for r in g.folders:
                if self._cancel:
                    return
                if r.source in st.done:
                    continue
                got = (st.small or {}).pop(r.source, None)
                if isinstance(got, WireError):
                    st.done.add(r.source)
                    why = got.text if isinstance(got, Incomplete) else \
                        f"the old server refused to read it ({got.text})"
                    self._folder_error(r, why + ".")
                    continue
                if got is not None:
                    sel, msgs = got
                    await self._begin_folder(r, sel, len(msgs))
                    await self._decide(g, r, sel.uidvalidity, msgs, budget, deferred, jobs)
                    st.done.add(r.source)
                    st.progressed = True
                    continue
                await self._plan_big(planner["src"], g, r, budget, deferred, jobs, st)

    async def _plan_big(self, src: Conn, g: Group, r: FolderRun, budget: Counter, deferred: Counter,
                        jobs: asyncio.Queue, st: WaveState) -> None:
        """A folder read in chunks: UIDs first (checked against EXISTS), then the headers
        chunk by chunk; after a drop it goes on with the first chunk not decided yet."""
        bb = self.engine.config.migration.batch_bytes
        if r.source not in st.listed:
            try:
                sel, uids = await self._io(src.wire.select_and_search, r.source)
            except WireError as e:
                st.done.add(r.source)
                self._folder_error(r, e.text + "." if isinstance(e, Incomplete)
                                   else f"the old server refused to open it ({e.text}).")
                return
            st.listed[r.source] = (sel, uids)
            st.next[r.source] = 0
            st.progressed = True
            await self._begin_folder(r, sel, len(uids))
        sel, uids = st.listed[r.source]

        def read(part: list[int]) -> tuple[int, list[SrcMsg]]:
            w = src.wire
            uv = w.selected.uidvalidity if (w.selected and w.selected.name == r.source) else \
                w.select(r.source).uidvalidity
            return uv, identify(w, part, bb)

        while st.next[r.source] < len(uids):
            if self._cancel:
                return
            i = st.next[r.source]
            part = uids[i:i + self._chunk]
            uv, msgs = await self._io(read, part)
            if uv != sel.uidvalidity:
                st.done.add(r.source)
                g.dirty = True        # renumbered while read: planned again by identity
                return
            if len(msgs) != len(part):
                self._folder_error(r, f"{len(part) - len(msgs):,} messages the old server listed "
                                      f"could not be read (deleted meanwhile?); run the migration again.")
            await self._decide(g, r, sel.uidvalidity, msgs, budget, deferred, jobs)
            st.next[r.source] = i + len(part)
            st.progressed = True
        st.done.add(r.source)

    async def _learn(self, conn: Conn, names: list[str], probes: dict[str, Any]
                     ) -> dict[str, tuple[Any, dict[int, str]]]:
        """For probed destination folders: the identities of every live UID, fetching the
        headers of UIDs not in ``dest_messages`` yet (committed per read, so a retry after
        a drop goes on from there). {name: (Selected, {uid: identity})}. What may be a
        landing of an unsettled append is kept in ``_learned``: UIDs from the folder's
        first UIDNEXT of this run on, and older ones holding an identity a dead run left
        unsettled there."""
        bb = self.engine.config.migration.batch_bytes
        out: dict[str, tuple[Any, dict[int, str]]] = {}
        cached: dict[str, list[Any]] = {}
        if names:
            marks = ",".join("?" * len(names))
            for row in await self.store.fetchall(
                    f"SELECT folder, uidvalidity, uid, identity FROM dest_messages WHERE folder IN ({marks})",
                    names):
                cached.setdefault(row[0], []).append(row)
        todo: dict[str, tuple[Any, dict[int, str], list[int]]] = {}
        fetch_small: list[tuple[str, bytes]] = []
        for name in names:
            sel, uids = probes[name]
            rows = cached.get(name, [])
            if any(row[1] != sel.uidvalidity for row in rows):
                async with self._db_lock, self.store.transaction() as db:
                    await db.execute("DELETE FROM dest_messages WHERE folder=? AND uidvalidity!=?",
                                     (name, sel.uidvalidity))
            known = {row[2]: row[3] for row in rows if row[1] == sel.uidvalidity}
            live = set(uids)
            vanished = [u for u in known if u not in live]
            if vanished:
                async with self._db_lock, self.store.transaction() as db:
                    await db.executemany("DELETE FROM dest_messages WHERE folder=? AND uidvalidity=? "
                                         "AND uid=?", [(name, sel.uidvalidity, u) for u in vanished])
            idents = {u: known[u] for u in uids if u in known}
            unknown = [u for u in uids if u not in known]
            todo[name] = (sel, idents, unknown)
            if self._learned_uv.get(name) != sel.uidvalidity:
                self._learned[name] = {}
                self._learned_uv[name] = sel.uidvalidity
                self._floor[name] = sel.uidnext    # what this run appends lands from here
            if unknown and len(unknown) <= self._chunk and self._chunk >= CHUNK:
                fetch_small.append((name, uid_set(unknown)))
        async def keep(name: str, msgs: list[SrcMsg]) -> None:
            sel, idents, _ = todo[name]
            pairs = [(m.uid, m.identity) for m in msgs]
            async with self._db_lock, self.store.transaction() as db:
                await db.executemany("INSERT OR REPLACE INTO dest_messages(folder, uidvalidity, uid, "
                                     "identity) VALUES(?, ?, ?, ?)",
                                     [(name, sel.uidvalidity, u, i) for u, i in pairs])
            idents.update(pairs)
            floor = self._floor.get(name, 0)
            dead = {p.identity for p in self._dead.values() if p.folder == name}
            self._learned[name].update((u, i) for u, i in pairs if u >= floor or i in dead)

        if fetch_small:
            got = await self._io(dst_side(read_many), conn.wire, fetch_small, bb)
            for name, res in got.items():
                if isinstance(res, WireError):
                    raise FolderError(f"the new server refused to read {name} ({res.text})")
                await keep(name, res[1])
        for name, (sel, idents, unknown) in todo.items():
            rest = [u for u in unknown if u not in idents]

            def read(part: list[int], name: str = name) -> list[SrcMsg]:
                w = conn.wire
                if not (w.selected and w.selected.name == name):
                    w.select(name)
                return identify(w, part, bb)

            while rest:
                part, rest = rest[:self._chunk], rest[self._chunk:]
                await keep(name, await self._io(dst_side(read), part))
            out[name] = (sel, idents)
        return out

    async def _dest_many(self, conn: Conn, wave: list[Group]) -> dict[str, tuple[Counter, Counter]]:
        """What each destination folder of the wave holds, by identity (creating missing
        folders), and what a dead run may still be appending there:
        {name: (holds, deferred)}."""
        missing = [g.destination for g in wave if g.destination not in self._dst_existing]
        if missing:
            errs = await self._io(dst_side(create_many), conn.wire, missing, self._ddelim,
                                  self._dst_existing)
            for g in wave:
                if g.destination in errs:
                    self._group_error(g, f"the new server refused to create the folder ({errs[g.destination]}).")
                elif g.destination in missing:
                    self._dst_existing.add(g.destination)
        names = sorted({g.destination for g in wave if not g.failed})
        probes = await self._io(dst_side(probe_many), conn.wire, names)
        ok: list[str] = []
        for name in names:
            p = probes[name]
            if isinstance(p, WireError):
                why = p.text if isinstance(p, Incomplete) else \
                    f"the new server refused to open the folder ({p.text})"
                for g in wave:
                    if g.destination == name:
                        self._group_error(g, why + ".")
                continue
            ok.append(name)
        known = await self._learn(conn, ok, probes)
        out: dict[str, tuple[Counter, Counter]] = {}
        for name, (sel, idents) in known.items():
            await self._resolve_dead(name, sel.uidvalidity, idents)
            out[name] = (Counter(idents.values()), self._deferred_for(name))
        return out

    # -- appends a dead run left unsettled ------------------------------------------------
    async def _load_unsettled(self) -> None:
        """Placements of the migration left 'sending' by a process that is gone: their
        bytes may still land. Older than LATE_MAX: forgotten. The job lock is held and
        nothing of this run is in flight yet, so every such row is a dead run's (even one
        whose pid a new, unrelated process has taken since)."""
        now = time.time()
        rows = await self.engine.placements.unsettled("migrate", include_live=True)
        old = [p.id for p in rows if now - p.started > LATE_MAX]
        if old:
            await self.engine.placements.drop(old)
        self._dead = {p.id: p for p in rows if now - p.started <= LATE_MAX}
        for p in self._dead.values():
            self._risky.setdefault(p.folder, set()).add(p.identity)

    def _deferred_for(self, folder: str) -> Counter:
        """Identities of ``folder`` to wait for: unsettled appends of a dead run that are
        recent, while the landing grace of this run lasts."""
        if time.monotonic() - self._t0 >= self.landing_grace:
            return Counter()
        now = time.time()
        return Counter(p.identity for p in self._dead.values()
                       if p.folder == folder and now - p.started < DEFER_WINDOW)

    async def _claimed(self, folder: str, uidvalidity: int, uids: list[int]) -> set[int]:
        """Which of ``uids`` a placement (any writer) already accounts for."""
        return await self.engine.placements.uids_claimed(folder, uidvalidity, uids)

    async def _resolve_dead(self, folder: str, uidvalidity: int, live: dict[int, str]) -> None:
        """Match a dead run's unsettled appends into ``folder`` with the UIDs this run
        learned there that no placement claims: those copies landed (settled 'placed';
        their source message is recorded as copied by that run)."""
        rows = sorted((p for p in self._dead.values() if p.folder == folder), key=lambda p: p.id)
        learned = self._learned.get(folder, {})
        if not rows or not learned:
            return
        cands = [u for u in sorted(learned) if u in live]
        free = set(cands) - await self._claimed(folder, uidvalidity, cands)
        by_ident: dict[str, list[int]] = defaultdict(list)
        for u in sorted(free):
            by_ident[learned[u]].append(u)
        settled: list[tuple[Any, int]] = []
        for p in rows:
            lst = by_ident.get(p.identity)
            if lst:
                settled.append((p, lst.pop(0)))
        if not settled:
            return
        async with self._db_lock, self.store.transaction() as db:
            await self.engine.placements.placed([(p.id, uidvalidity, uid) for p, uid in settled])
            for p, uid in settled:
                key = _unref(p.ref)
                if key is not None:
                    await db.execute(
                        "UPDATE messages SET state='copied', reason=NULL, dst_folder=?, "
                        "dst_uidvalidity=?, dst_uid=? WHERE src_folder=? AND src_uidvalidity=? "
                        "AND src_uid=? AND state!='copied'", (folder, uidvalidity, uid, key[2], key[0], key[1]))
        for p, _ in settled:
            self._dead.pop(p.id, None)

    async def _forget_old_placements(self) -> None:
        """Unsettled placements older than LATE_MAX can no longer land: forgotten."""
        now = time.time()
        old = [p.id for p in self._dead.values() if now - p.started > LATE_MAX]
        if old:
            await self.engine.placements.drop(old)

    async def _begin_folder(self, r: FolderRun, sel: Any, count: int) -> None:
        r.uidvalidity, r.uidnext, r.total_messages = sel.uidvalidity, sel.uidnext, count
        r.state = "copying"
        # copies of an earlier pass of this run stay counted as copies, not as "already there"
        r.present = r.refused = r.to_copy = r.copied_plan = r.deferred = 0
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
                      budget: Counter, deferred: Counter, jobs: asyncio.Queue) -> None:
        """Record a chunk of source messages and queue what the destination lacks
        (multiset: an identity is copied as often as the source holds it more); what a
        dead run may still be appending waits (``deferred``)."""
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
                continue
            g.want[m.identity] += 1
            if budget.get(m.identity, 0) > 0:
                budget[m.identity] -= 1
                present.append((m, None))
            elif deferred.get(m.identity, 0) > 0:
                deferred[m.identity] -= 1     # a dead run's append of it may still land
                r.deferred += 1
                g.deferred = True
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
            self._refuse(r, m, why)
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

    def _refuse(self, r: FolderRun, m: SrcMsg, why: str) -> None:
        """Count a refusal; the first of each cause goes to the log with the server's words."""
        r.refused += 1
        self._summary.refused.append(Refusal(r.source, m.uid, m.subject, m.size, why))
        key, label = refusal_cause(why)
        seen = self._causes.setdefault(key, [label, why, 0])
        seen[2] += 1
        if seen[2] == 1:
            self._log("warning", f"{r.source}: the new server refused message {m.uid} "
                                 f"({m.subject[:60]!r}): {why}")

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
        APPEND of batch k; bodies in flight are bounded by the shared byte budget. A job
        is cut to the current batch limits as it goes (they shrink after a drop)."""
        src, dst = pair
        handoff: asyncio.Queue = asyncio.Queue(maxsize=1)

        async def fetcher() -> None:
            try:
                while True:
                    job = await jobs.get()
                    if job is None:
                        return
                    await self._fetch_job(src, job, handoff)
            finally:
                await handoff.put(None)

        async def appender() -> None:
            while True:
                item = await handoff.get()
                if item is None:
                    return
                job, (items, msgs, ids) = item
                try:
                    await self._append_job(dst, job, items, msgs, ids)
                except Cancelled:
                    pass
                except BaseException as e:
                    self._fatal = self._fatal or e
                finally:
                    del item, msgs, items
                    self._budget.release(job.nbytes)

        await asyncio.gather(fetcher(), appender())

    async def _fetch_job(self, src: Conn, job: CopyJob, handoff: asyncio.Queue) -> None:
        """Fetch ``job`` in parts that fit the batch limits; hand each to the appender."""
        rest: CopyJob | None = job
        drops = 0
        while rest is not None:
            await self._gate.wait()
            if self._stop_work() or rest.group.dirty:
                return
            part, rest = self._split(rest)
            if self._quota is not None:
                if not await self._quota.reserve(part.nbytes, self._stop_work, self._quota_wait):
                    return
                await self._gate.wait()    # paused while waiting: stay paused
                if self._stop_work() or part.group.dirty:
                    self._quota.refund(part.nbytes)
                    return
            await self._budget.acquire(part.nbytes)
            got: Any = None
            try:
                got = await self._fetch(src, part)
            except Cancelled:
                pass
            except BaseException as e:
                self._fatal = self._fatal or e
            if got is None or got is _RETRY:
                self._budget.release(part.nbytes)
                if self._quota is not None:
                    self._quota.refund(part.nbytes)
                if got is _RETRY:
                    drops += 1
                    if drops > MAX_DROPS:
                        part.group.dirty = part.run.dirty = True
                        return
                    rest = part if rest is None else CopyJob(
                        part.group, part.run, part.uidvalidity, part.items + rest.items,
                        part.nbytes + rest.nbytes)
                    continue
                if self._stop_work():
                    return
                continue
            drops = 0
            items, msgs, ids = await self._placed_before_sending(part, *got)
            got = None
            if not items:          # a forward placed all of it already
                self._budget.release(part.nbytes)
                if self._quota is not None:
                    self._quota.refund(part.nbytes)
                continue
            await handoff.put((part, (items, msgs, ids)))
            del items, msgs    # the appender owns the bodies now

    def _quota_wait(self, cap: Cap, until: float) -> None:
        self._log("warning", cap.sentence(until))
        self._publish_progress(force=True)

    def _stop_work(self) -> bool:
        return self._cancel or self._fatal is not None

    async def _fetch(self, src: Conn, job: CopyJob) -> Any:
        """Bodies of ``job``: (items, [(flags, date, raw)]), None (nothing to send), or
        _RETRY after a drop (reconnected; the batch limits are smaller now)."""
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

        try:
            uv, bodies = await self._io(fetch)
        except LOST as e:
            self._shrink(job.nbytes)
            await self._reconnect(src, e)
            return _RETRY
        except WireError as e:
            r.errors += 1
            job.group.dirty = True
            self._log("error", f"{r.source}: the old server refused a FETCH ({e.text})")
            return None
        if uv != job.uidvalidity:
            job.group.dirty = True     # the source was renumbered: plan it again by identity
            return None
        self._grow()
        items = [m for m in job.items if m.uid in bodies]
        if len(items) != len(job.items):
            gone = len(job.items) - len(items)
            self._folder_error(r, f"{gone:,} messages the old server listed could not be fetched "
                                  f"(deleted meanwhile?); run the migration again.")
        if not items:
            return None
        return items, [(m.flags, m.date, bodies.pop(m.uid)) for m in items]

    async def _placed_before_sending(self, job: CopyJob, items: list[SrcMsg], msgs: list[Any]
                                     ) -> tuple[list[SrcMsg], list[Any], list[int]]:
        """Record a fetched batch in ``placements`` (state 'sending') before any of it
        leaves — in the fetcher, so the appender's APPEND of the batch before overlaps
        it. A message a forward already placed there is already there: left out."""
        r = job.run
        ids = await self._begin(r.destination, [(m.identity, _ref(job.uidvalidity, m.uid, r.source))
                                                for m in items])
        busy = [k for k, pid in enumerate(ids) if pid == self.engine.placements.BUSY]
        if busy:
            # a forward kept sending these: what it placed is seen when the folder is read again
            job.group.dirty = r.dirty = True
            keep = [k for k, pid in enumerate(ids) if pid != self.engine.placements.BUSY]
            items, msgs, ids = [items[k] for k in keep], [msgs[k] for k in keep], [ids[k] for k in keep]
        yielded = [m for m, pid in zip(items, ids) if pid is None]
        if yielded:
            await self._record_yielded(job, yielded)
            keep = [k for k, pid in enumerate(ids) if pid is not None]
            items, msgs, ids = [items[k] for k in keep], [msgs[k] for k in keep], [ids[k] for k in keep]
        return items, msgs, ids   # type: ignore[return-value]

    async def _append_job(self, dst: Conn, job: CopyJob, items: list[SrcMsg], msgs: list[Any],
                          ids: list[int]) -> None:
        """APPEND a fetched batch (its placements recorded). After a drop: reconnect, find
        what landed, send the rest again in smaller batches under the same placements.
        Whatever is not sent in the end has its placements dropped."""
        r = job.run
        pending = list(zip(items, msgs, ids))
        del items, msgs
        drops = 0
        try:
            while pending:
                await self._gate.wait()          # paused: nothing new goes out
                if self._stop_work() or job.group.dirty:
                    return
                lim_m, lim_b = self._limits()
                n = size = 0
                for m, _, _ in pending:
                    if n and (n >= lim_m or size + m.size > lim_b):
                        break
                    n += 1
                    size += m.size
                send, pending = pending[:n], pending[n:]
                try:
                    async with self._gate_of(r.destination).shared():
                        results = await self._io(append_batch, dst.wire, r.destination,
                                                 [body for _, body, _ in send], gated=False)
                        await self._record(job, send, results)
                    self._grow()
                    drops = 0
                    continue
                except LOST as e:
                    err: BaseException = e
                drops += 1
                self._shrink(sum(m.size for m, _, _ in send))
                self._risky.setdefault(r.destination, set()).update(m.identity for m, _, _ in send)
                pending = send + pending          # nothing of it is settled yet
                await self._reconnect(dst, err)
                if drops > MAX_DROPS or not dst.wire.uidplus:
                    # without APPENDUID what landed cannot be told apart: plan it again
                    job.group.dirty = r.dirty = True
                    return
                try:
                    landed, missing = await self._reconcile(dst, r.destination, send)
                except LOST as e:
                    job.group.dirty = r.dirty = True
                    await self._reconnect(dst, e)
                    return
                if landed:
                    await self._record_landed(job, landed)
                    done = {pid for _, pid, _, _ in landed}
                    pending = [x for x in pending if x[2] not in done]
        finally:
            if pending:    # never sent (stopped, or planned again): nothing was placed
                await asyncio.shield(self.engine.placements.drop([pid for *_, pid in pending]))

    async def _begin(self, folder: str, items: list[tuple[str, str]]) -> list[int | None]:
        """Record a batch in ``placements`` before it leaves: an id per item, None where a
        forward's placed copy stands in for it, BUSY while a forward is sending it (asked
        again shortly; after BUSY_WAIT seconds the folder is planned again instead)."""
        pl = self.engine.placements
        out = await pl.begin_many(folder, "migrate", items, yield_to=("forward",))
        deadline = time.monotonic() + BUSY_WAIT
        while any(x == pl.BUSY for x in out) and time.monotonic() < deadline and not self._stop_work():
            await asyncio.sleep(0.25)
            busy = [k for k, x in enumerate(out) if x == pl.BUSY]
            again = await pl.begin_many(folder, "migrate", [items[k] for k in busy], yield_to=("forward",))
            for k, x in zip(busy, again):
                out[k] = x
        return out

    async def _reconcile(self, dst: Conn, folder: str, send: list[tuple[SrcMsg, bytes, int]]
                         ) -> tuple[list[tuple[SrcMsg, int, int, int]], list[tuple[SrcMsg, Any, int]]]:
        """After a broken APPEND into ``folder``: which of ``send`` landed? Appends into the
        folder wait meanwhile, so a UID no placement claims came from the broken one.
        Returns (landed [(msg, placement id, uidvalidity, uid)], missing [(msg, body, id)])."""
        async with self._gate_of(folder).exclusive():
            probes = await self._io(dst_side(probe_many), dst.wire, [folder], gated=False)
            p = probes[folder]
            if isinstance(p, WireError):
                raise DstLost(f"the new server could not list {folder} ({p.text})")
            known = await self._learn(dst, [folder], probes)
            sel, live = known[folder]
            # UIDs this run learned there above the first UIDNEXT it saw (older ones were
            # there before the run) that no placement claims: another broken append's
            # landing counts too (its own reconcile may have learned it first)
            floor = self._floor.get(folder, 0)
            free = {u: i for u, i in self._learned.get(folder, {}).items()
                    if u >= floor and u in live}
            for u in await self._claimed(folder, sel.uidvalidity, list(free)):
                free.pop(u, None)
            by_ident: dict[str, list[int]] = defaultdict(list)
            for u in sorted(free):
                by_ident[free[u]].append(u)
            landed, missing = [], []
            for m, body, pid in send:
                lst = by_ident.get(m.identity)
                if lst:
                    landed.append((m, pid, sel.uidvalidity, lst.pop(0)))
                else:
                    missing.append((m, body, pid))
            return landed, missing

    async def _record(self, job: CopyJob, send: list[tuple[SrcMsg, bytes, int]],
                      results: list[Any]) -> None:
        r = job.run
        now = time.time()
        copied, refused, dest_rows, placed, dropped = [], [], [], [], []
        for (m, _, pid), res in zip(send, results):
            if res.ok:
                copied.append((r.destination, res.uidvalidity, res.uid, now, r.source,
                               job.uidvalidity, m.uid))
                if res.uid is not None:
                    dest_rows.append((r.destination, res.uidvalidity, res.uid, m.identity))
                placed.append((pid, res.uidvalidity, res.uid))
                r.copied += 1
                r.copied_plan += 1
                r.copied_uids.add(m.uid)
                r.copied_bytes += m.size
            else:
                refused.append((res.text, now, r.source, job.uidvalidity, m.uid))
                dropped.append(pid)
                self._refuse(r, m, res.text)
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
            if placed:
                await self.engine.placements.placed(placed)
            if dropped:
                await self.engine.placements.drop(dropped)

    async def _record_landed(self, job: CopyJob, landed: list[tuple[SrcMsg, int, int, int]]) -> None:
        """Copies of this run that landed although their APPEND broke: copied by this run."""
        r = job.run
        now = time.time()
        async with self._db_lock, self.store.transaction() as db:
            await db.executemany(
                "UPDATE messages SET state='copied', reason=NULL, dst_folder=?, dst_uidvalidity=?, "
                "dst_uid=?, updated=? WHERE src_folder=? AND src_uidvalidity=? AND src_uid=?",
                [(r.destination, uv, uid, now, r.source, job.uidvalidity, m.uid)
                 for m, _, uv, uid in landed])
            await self.engine.placements.placed([(pid, uv, uid) for _, pid, uv, uid in landed])
        for m, *_ in landed:
            r.copied += 1
            r.copied_plan += 1
            r.copied_uids.add(m.uid)
            r.copied_bytes += m.size

    async def _record_yielded(self, job: CopyJob, items: list[SrcMsg]) -> None:
        """A forward already placed these there: already there, not copied again."""
        r = job.run
        await self.store.executemany(
            "UPDATE messages SET state='present', reason='placed by a forward' "
            "WHERE src_folder=? AND src_uidvalidity=? AND src_uid=? AND state!='copied'",
            [(r.source, job.uidvalidity, m.uid) for m in items])
        r.present += len(items)
        r.present_bytes += sum(m.size for m in items)
        r.to_copy -= len(items)

    # -- late landings --------------------------------------------------------------------
    async def _dedupe(self, conn: Conn) -> None:
        """Where a late landing may have doubled a copy (an append broke, or a dead run
        left one unsettled): read the destination again and, for an identity it holds
        more often than the source, remove the extra copies this program placed (never
        one it did not place). UIDPLUS only (UID EXPUNGE touches nothing else)."""
        if not any(self._risky.get(g.destination) for g in self._groups):
            return
        await self._alive([conn])
        for g in self._groups:
            idents = self._risky.get(g.destination)
            if not idents or not g.planned or g.dirty or g.deferred or any(
                    r.errors or r.dirty for r in g.folders):
                continue
            try:
                await self._dedupe_folder(conn, g, idents)
            except LOST as e:
                self._log("warning", f"{g.destination}: could not check for extra copies ({e}); "
                                     f"'switchover verify' reports any")
            except (WireError, FolderError) as e:
                self._log("warning", f"{g.destination}: could not check for extra copies "
                                     f"({getattr(e, 'text', None) or e}); 'switchover verify' "
                                     f"reports any")

    async def _dedupe_folder(self, conn: Conn, g: Group, idents: set[str]) -> None:
        folder = g.destination
        async with self._gate_of(folder).exclusive():
            probes = await self._io(dst_side(probe_many), conn.wire, [folder], gated=False)
            if isinstance(probes[folder], WireError):
                raise probes[folder]
            sel, live = (await self._learn(conn, [folder], probes))[folder]
            await self._resolve_dead(folder, sel.uidvalidity, live)
            holds = Counter(i for i in live.values() if i in idents)
            excess = {i: n - g.want.get(i, 0) for i, n in holds.items() if n > g.want.get(i, 0)}
            if not excess:
                return
            remove: list[int] = []
            for ident, n in excess.items():
                rows = await self.store.fetchall(
                    "SELECT uid FROM placements WHERE folder=? AND uidvalidity=? AND identity=? "
                    "AND owner='migrate' AND state='placed' AND uid IS NOT NULL ORDER BY uid DESC",
                    (folder, sel.uidvalidity, ident))
                ours = [row[0] for row in rows if row[0] in live]
                remove += ours[:n]
            if not remove:
                return
            if not conn.wire.uidplus:
                self._summary.errors.append(
                    f"{folder}: {len(remove):,} messages are there twice (an interrupted append "
                    f"landed late) and the server cannot remove single messages; delete the "
                    f"newer copies by hand ('switchover verify' lists them).")
                return
            await self._io(dst_side(conn.wire.expunge_uids), folder, remove, gated=False)
            marks = ",".join("?" * len(remove))
            async with self._db_lock, self.store.transaction() as db:
                await db.execute(f"DELETE FROM placements WHERE folder=? AND uidvalidity=? AND "
                                 f"uid IN ({marks})", (folder, sel.uidvalidity, *remove))
                await db.execute(f"DELETE FROM dest_messages WHERE folder=? AND uidvalidity=? AND "
                                 f"uid IN ({marks})", (folder, sel.uidvalidity, *remove))
                await db.execute(f"UPDATE messages SET dst_uid=NULL WHERE dst_folder=? AND "
                                 f"dst_uidvalidity=? AND dst_uid IN ({marks})",
                                 (folder, sel.uidvalidity, *remove))
            self._summary.duplicates_removed += len(remove)
            self._log("warning", f"{folder}: removed {len(remove):,} extra "
                                 f"cop{'ies' if len(remove) != 1 else 'y'} that an interrupted "
                                 f"append left (it landed after the destination was read)")

    async def _record_folders(self) -> None:
        """Remember complete folders so that the next run skips them without fetching;
        unfinished folders of a cancelled run are 'cancelled' (their counts stay true).
        A folder left short without a recorded reason is an error, never 'done'."""
        async with self._db_lock, self.store.transaction() as db:
            for r in self._runs:
                if r.skipped:
                    continue
                accounted = r.present + r.copied + r.refused >= r.total_messages
                complete = (r.state == "copying" and not r.dirty and not r.deferred and accounted
                            and r.copied_plan >= r.to_copy)
                if r.errors or r.refused:
                    state = "errors"
                elif complete:
                    state = "done"
                elif self._cancel:
                    state = "cancelled"
                else:
                    state = "errors"
                    r.errors += 1
                    self._summary.errors.append(f"{r.source}: not every message could be copied; "
                                                f"run the migration again.")
                r.state = state
                await db.execute(
                    "INSERT INTO folders(side, name, special, messages, bytes, mapped_to, state, updated) "
                    "VALUES('old', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(side, name) DO UPDATE SET "
                    "state=excluded.state, bytes=excluded.bytes, updated=excluded.updated",
                    (r.source, r.special, r.total_messages, r.total_bytes, r.destination, state,
                     time.time()))

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
        if final:
            state = final
        elif paused:
            state = "pausing" if self._busy else "paused"
        else:
            state = {"cancelling": "cancelled"}.get(self.state, "running")
        if final:
            eta = None
        elif self._quota is not None:
            eta = self._quota.eta(max(0, tot_b - done_b), bps)
        else:
            eta = (max(0, tot_b - done_b) / bps) if bps > 0 else None
        detail = "the batches in flight are finishing" if state == "pausing" else ""
        self.engine.publish(JobProgress("migrate", state, tot_m, tot_b, done_m, done_b, mps, bps, eta,
                                        detail=detail))

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
            state = {"done": "done", "errors": "errors", "cancelled": "cancelled",
                     "skipped": "skipped"}.get(row["state"], "planned")
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
                "verify", False, f"verify {now}: {report.describe()}")
        return report
