"""The migration's records: what a face gets back (the plan, a run's summary with its
statistics block, the last run in the state file) and what one run keeps per folder
while it copies (``FolderRun``, ``Group``, ``CopyJob``).

Refusals are grouped by cause here (``refusal_cause``): a full mailbox is one headline,
not a thousand lines.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..events import FolderProgress
from ..progress import Meter
from .quota import DailyQuota
from .transfer import SrcMsg


# -- what a face gets back -------------------------------------------------------------------
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


#: refusals listed one by one up to this many; beyond, one line per cause
LIST_REFUSALS = 20
#: errors listed in the statistics block
LIST_ERRORS = 20


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
        groups: dict[str, tuple[str, str]] = {}
        counts: Counter[str] = Counter()
        for ref in self.refused:
            key, label = refusal_cause(ref.reason)
            groups.setdefault(key, (label, ref.reason))
            counts[key] += 1
        out = []
        for key, (label, words) in groups.items():
            if key in ("full", "too big"):
                label = f"{label} (the server said: {words.strip()[:160]})"
            out.append((label, counts[key]))
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

    def record(self) -> dict[str, Any]:
        """What ``runs.summary`` keeps of this run (a face's "last migration" line)."""
        return {"transferred": self.transferred, "already_there": self.already_there,
                "refused": len(self.refused), "errors": self.errors[:LIST_ERRORS], "bytes": self.bytes,
                "duplicates_removed": self.duplicates_removed, "cancelled": self.cancelled,
                "headline": self.headline(), "elapsed": round(self.elapsed, 3)}

    def report_lines(self) -> list[str]:
        """The statistics block a face prints after a run: the headline, the counts,
        speed and time, refusals (one by one up to 20, else one line per cause) and up
        to 20 errors."""
        lines: list[str] = []
        head = self.headline()
        if head:
            lines.append(head[0].upper() + head[1:] + ".")
        lines += [f"transferred   {self.transferred:,}",
                  f"already there {self.already_there:,}",
                  f"refused       {len(self.refused):,}",
                  f"errors        {len(self.errors):,}"]
        if self.duplicates_removed:
            lines.append(f"extra copies  {self.duplicates_removed:,} removed (left by an interrupted run)")
        lines += [f"speed         {self.msgs_per_s:,.0f} msg/s, {self.bytes_per_s / 1e6:,.1f} MB/s",
                  f"elapsed       {self.elapsed:,.1f} s"]
        if len(self.refused) <= LIST_REFUSALS:
            lines += [f"  refused: {r.folder} UID {r.uid} {(r.subject or '')[:50]!r}: {r.reason}"
                      for r in self.refused]
        else:   # one line per cause, not hundreds of lines with the same words
            lines += [f"  refused {n:,} messages: {cause}" for cause, n in self.refusal_groups()]
            lines.append("  (every refused message is listed by 'switchover verify')")
        lines += [f"  error: {e}" for e in self.errors[:LIST_ERRORS]]
        if len(self.errors) > LIST_ERRORS:
            lines.append(f"  … and {len(self.errors) - LIST_ERRORS} more errors")
        return lines


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


# -- what one run keeps while it copies -------------------------------------------------------
@dataclass
class FolderRun:
    """One source folder in this run: its counts and state; its copy rate is a Meter."""
    source: str
    destination: str
    role: str
    special: str | None
    total_messages: int = 0
    total_bytes: int = 0
    uidvalidity: int = 0
    uidnext: int = 0
    present: int = 0
    present_bytes: int = 0
    refused: int = 0
    errors: int = 0
    to_copy: int = 0
    copied_plan: int = 0          # copied since the last planning of this folder
    deferred: int = 0             # waiting for a dead run's append to settle
    copied_uids: set[int] = field(default_factory=set)
    state: str = "planned"
    skipped: bool = False
    dirty: bool = False
    meter: Meter = field(default_factory=Meter)   # what this run copied (rate over 5 s)
    published: tuple[Any, ...] = ()

    @property
    def copied(self) -> int:
        return self.meter.messages

    @property
    def copied_bytes(self) -> int:
        return self.meter.bytes

    def add_copied(self, uid: int, size: int) -> None:
        self.meter.add(1, size)
        self.copied_plan += 1
        self.copied_uids.add(uid)

    def add_present(self, msgs: list[SrcMsg]) -> None:
        self.present += len(msgs)
        self.present_bytes += sum(m.size for m in msgs)

    def progress(self, paused: bool = False, quota: DailyQuota | None = None) -> FolderProgress:
        rate = self.meter.rate()
        done = self.present + self.copied + self.refused
        left = max(0, self.total_bytes - self.present_bytes - self.copied_bytes)
        eta = None
        if self.state == "copying":
            eta = quota.eta(left, rate.bytes_per_s) if quota is not None else (
                Meter.eta(left, rate) if rate.bytes_per_s > 0 else None)
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
                              errors=self.errors, msgs_per_s=rate.msgs_per_s,
                              bytes_per_s=rate.bytes_per_s, eta_s=eta)


@dataclass
class Group:
    """Source folders that land in one destination folder (planned together)."""
    destination: str
    folders: list[FolderRun]
    last: bool = False       # Gmail All Mail: after every other folder is planned
    dirty: bool = False      # plan it again (a drop, a renumbering, a forward sending)
    failed: bool = False
    deferred: bool = False   # holds identities a dead run may still be appending
    planned: bool = False    # planned completely in this run (its ``want`` is whole)
    queued: int = 0          # copy jobs queued in this pass
    want: Counter[str] = field(default_factory=Counter)   # identities the destination should hold


@dataclass
class CopyJob:
    """Messages of one source folder to copy (metadata only; bodies are fetched by a lane)."""
    group: Group
    run: FolderRun
    uidvalidity: int
    items: list[SrcMsg]
    nbytes: int
