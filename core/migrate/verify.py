"""``switchover verify``: is everything of the old mailbox in the new one?

Per destination folder it reads both sides afresh (one header FETCH per chunk, content
hash where there is no Message-ID — the identities of core/identity.py) and compares
the identity multisets, the flags of matched messages (\\Recent ignored) and their
INTERNALDATE (same instant). Gmail's All Mail is expected to hold only what no other
source folder holds. The report is the checklist's evidence.

What counts (issue 9): a source message the destination lacks is *missing*; a copy of a
source message beyond the number of times the source holds it is a *duplicate* — both
fail the check. A destination message whose identity the source does not hold at all
(new mail arriving in the new INBOX) is *extra*: reported, not a failure. Every listing
is checked against the server's own count (EXISTS); a folder that could not be read
completely fails the check, it is never taken as "nothing missing".
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..context import Blocking
from ..events import EventBus, FolderProgress, JobProgress
from ..mail.dates import parse_date
from ..net.wire import Incomplete, Wire, WireError
from .folders import FolderMapping
from .sides import Sides
from .transfer import SrcMsg, identify

CHUNK = 5000


@dataclass
class Mismatch:
    identity: str
    subject: str
    source_uid: int | None = None
    dest_uid: int | None = None
    detail: str = ""


@dataclass
class FolderVerify:
    source: str
    destination: str
    source_count: int
    dest_count: int
    missing: list[Mismatch] = field(default_factory=list)
    extra: list[Mismatch] = field(default_factory=list)          # not in the source at all
    duplicates: list[Mismatch] = field(default_factory=list)     # more copies than the source holds
    flags_changed: list[Mismatch] = field(default_factory=list)
    dates_changed: list[Mismatch] = field(default_factory=list)
    details: str = ""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.duplicates and "error:" not in self.details

    @property
    def verdict(self) -> str:
        """'ok', 'MISSING', 'DUPLICATES' or 'ERROR' (what the folder's line says first)."""
        if "error:" in self.details:
            return "ERROR"
        if self.missing:
            return "MISSING"
        return "DUPLICATES" if self.duplicates else "ok"


@dataclass
class VerifyReport:
    folders: list[FolderVerify]
    ok: bool
    started: float = field(default_factory=time.time)
    elapsed: float = 0.0

    @property
    def missing(self) -> int:
        return sum(len(f.missing) for f in self.folders)

    @property
    def extra(self) -> int:
        return sum(len(f.extra) for f in self.folders)

    @property
    def duplicates(self) -> int:
        return sum(len(f.duplicates) for f in self.folders)

    @property
    def unreadable(self) -> list[str]:
        """Folders that could not be read completely (the check could not run there)."""
        return [f.source for f in self.folders if "error:" in f.details]

    def describe(self) -> str:
        extra = f", {self.extra:,} new in the destination (not in the source)" if self.extra else ""
        if self.ok:
            return (f"{sum(f.source_count for f in self.folders):,} messages in "
                    f"{len(self.folders)} folders, nothing missing, no duplicates{extra}")
        bad = [f.source for f in self.folders if not f.ok]
        parts = [f"{self.missing:,} missing", f"{self.duplicates:,} duplicates"]
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} folders could not be read completely")
        return (f"{', '.join(parts)}{extra} in {len(bad)} folders "
                f"({', '.join(bad[:3])}{'…' if len(bad) > 3 else ''})")

    def result(self) -> str:
        """The report's verdict line."""
        if self.ok:
            return "OK, nothing is missing and nothing is doubled"
        why = []
        if self.missing:
            why.append("messages are missing")
        if self.duplicates:
            why.append("messages are there more often than in the old mailbox")
        if self.unreadable:
            why.append("some folders could not be read completely")
        return "NOT OK, " + " and ".join(why)

    def lines(self) -> list[str]:
        """What a face prints: one line per folder (verdict, counts, duplicates, extra,
        details), then the result line."""
        out = []
        for f in self.folders:
            missing, extra, dup = len(f.missing), len(f.extra), len(f.duplicates)
            out.append(f"{f.verdict:<10} {f.source} → {f.destination}: {f.source_count:,} / {f.dest_count:,}"
                       + (f", {missing} missing" if missing else "") + (f", {dup} duplicates" if dup else "")
                       + (f", {extra} extra (not in the old mailbox)" if extra else "")
                       + (f" ({f.details})" if f.details else ""))
        out.append(f"result: {self.result()}")
        return out

    def text(self) -> str:
        when = dt.datetime.fromtimestamp(self.started, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        lines = [f"switchover verify — {when}",
                 f"result: {self.result()}",
                 f"folders: {len(self.folders)}, missing: {self.missing}, duplicates: {self.duplicates}, "
                 f"extra (not in the source): {self.extra}, "
                 f"flags changed: {sum(len(f.flags_changed) for f in self.folders)}, "
                 f"dates changed: {sum(len(f.dates_changed) for f in self.folders)}", ""]
        for f in self.folders:
            lines.append(f"[{f.verdict}] {f.source} -> {f.destination}: source {f.source_count}, "
                         f"destination {f.dest_count}, missing {len(f.missing)}, "
                         f"duplicates {len(f.duplicates)}, extra {len(f.extra)}, "
                         f"flags changed {len(f.flags_changed)}, dates changed {len(f.dates_changed)}")
            if f.details:
                lines.append(f"    {f.details}")
            for label, items in (("missing", f.missing), ("duplicate", f.duplicates),
                                 ("extra", f.extra), ("flags changed", f.flags_changed),
                                 ("date changed", f.dates_changed)):
                for m in items[:200]:
                    where = f"old UID {m.source_uid}" if m.source_uid else f"new UID {m.dest_uid}"
                    extra = f" — {m.detail}" if m.detail else ""
                    lines.append(f"    {label}: {where} {m.subject!r}{extra}")
                if len(items) > 200:
                    lines.append(f"    ... and {len(items) - 200} more {label}")
        return "\n".join(lines) + "\n"

    def write_text(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.text(), encoding="utf-8")
        return p


def _instant(date: bytes | None) -> float | None:
    """The instant of an INTERNALDATE (the zone it is written in does not matter)."""
    when = parse_date(date) if date else None
    return when.timestamp() if when is not None else None


def _flagset(flags: bytes) -> frozenset[str]:
    return frozenset(f for f in flags.decode("utf-8", "replace").split() if f.upper() != "\\RECENT")


def _read_folder(wire: Wire, name: str, max_bytes: int) -> list[SrcMsg]:
    """Every message of a folder (identity, flags, date); the listing must agree with the
    server's EXISTS and every listed UID must be read (else ``Incomplete``)."""
    _, uids = wire.select_and_search(name)      # checked against EXISTS
    out: list[SrcMsg] = []
    for i in range(0, len(uids), CHUNK):
        out.extend(identify(wire, uids[i:i + CHUNK], max_bytes))
    if len(out) != len(uids):
        raise Incomplete(f"{len(uids) - len(out):,} of the {len(uids):,} messages listed in "
                         f"{name} could not be read")
    return out


def compare(source: str, destination: str, src: list[SrcMsg], dst: list[SrcMsg]) -> FolderVerify:
    """Compare two lists of messages by identity multiset, flags and dates."""
    fv = FolderVerify(source, destination, len(src), len(dst))
    by_src: dict[str, list[SrcMsg]] = defaultdict(list)
    by_dst: dict[str, list[SrcMsg]] = defaultdict(list)
    for m in src:
        by_src[m.identity].append(m)
    for m in dst:
        by_dst[m.identity].append(m)
    for ident, ms in by_src.items():
        ds = by_dst.get(ident, [])
        for m in ms[len(ds):]:
            fv.missing.append(Mismatch(ident, m.subject, source_uid=m.uid))
        # multiset of flag sets / instants must agree for the matched occurrences
        n = min(len(ms), len(ds))
        sf = Counter(_flagset(m.flags) for m in ms)
        df = Counter(_flagset(m.flags) for m in ds)
        if n and sf != df and len(ms) == len(ds):
            for m, d in zip(sorted(ms, key=lambda x: sorted(_flagset(x.flags))),
                            sorted(ds, key=lambda x: sorted(_flagset(x.flags)))):
                if _flagset(m.flags) != _flagset(d.flags):
                    fv.flags_changed.append(Mismatch(
                        ident, m.subject, m.uid, d.uid,
                        f"old {' '.join(sorted(_flagset(m.flags))) or '-'}, "
                        f"new {' '.join(sorted(_flagset(d.flags))) or '-'}"))
        st = Counter(_instant(m.date) for m in ms)
        dtc = Counter(_instant(d.date) for d in ds)
        if n and st != dtc and len(ms) == len(ds):
            for m, d in zip(sorted(ms, key=lambda x: _instant(x.date) or 0),
                            sorted(ds, key=lambda x: _instant(x.date) or 0)):
                if _instant(m.date) != _instant(d.date):
                    fv.dates_changed.append(Mismatch(
                        ident, m.subject, m.uid, d.uid,
                        f"old {(m.date or b'').decode()}, new {(d.date or b'').decode()}"))
    for ident, ds in by_dst.items():
        ms = by_src.get(ident, [])
        if not ms:
            for d in ds:
                fv.extra.append(Mismatch(ident, d.subject, dest_uid=d.uid))
            continue
        # copies beyond what the source holds: the newest UIDs are the extra ones
        for d in sorted(ds, key=lambda x: x.uid)[len(ms):]:
            fv.duplicates.append(Mismatch(ident, d.subject, dest_uid=d.uid,
                                          detail=f"{len(ds)} copies, the old mailbox holds {len(ms)}"))
    return fv


async def verify(sides: Sides, bus: EventBus, blocking: Blocking, batch_bytes: int) -> VerifyReport:
    """Compare every planned folder of both mailboxes; see the module docstring."""
    t0 = time.monotonic()
    src, dst = await sides.open_pair()
    try:
        layout = await sides.layout(src, dst)
        chosen = layout.copied()
        groups: dict[str, list[FolderMapping]] = defaultdict(list)
        for m in chosen:
            groups[m.destination].append(m)
        src_msgs: dict[str, list[SrcMsg]] = {}
        errors: dict[str, str] = {}
        for m in chosen:
            try:
                src_msgs[m.source] = await blocking.run(_read_folder, src.wire, m.source, batch_bytes)
            except Incomplete as e:
                errors[m.source] = f"error: the old mailbox could not be read completely: {e.text}"
                src_msgs[m.source] = []
            except WireError as e:
                errors[m.source] = f"error: the old server refused to open {m.source} ({e.text})"
                src_msgs[m.source] = []
        non_all = {m.source for m in chosen if m.role != "all_mail"}
        elsewhere = {msg.identity for s in non_all for msg in src_msgs.get(s, [])}
        report: list[FolderVerify] = []
        done = 0
        # real message counts: every source message is checked once against its destination
        total = sum(len(src_msgs.get(m.source, [])) for m in chosen)
        bus.publish(JobProgress("verify", "running", total, 0, 0, 0))
        for dest, ms in groups.items():
            expected: list[SrcMsg] = []
            for m in ms:
                part = src_msgs.get(m.source, [])
                if m.role == "all_mail":
                    part = [x for x in part if x.identity not in elsewhere]
                expected.extend(part)
            got: list[SrcMsg] = []
            err = ""
            if dest in layout.dst_folders:
                try:
                    got = await blocking.run(_read_folder, dst.wire, dest, batch_bytes)
                except Incomplete as e:
                    err = f"error: the new mailbox could not be read completely: {e.text}"
                except WireError as e:
                    err = f"error: the new server refused to open {dest} ({e.text})"
            elif expected:
                err = "the folder does not exist in the new mailbox"
            fv = compare(", ".join(m.source for m in ms), dest, expected, got)
            fv.details = "; ".join(x for x in [err, *(errors[m.source] for m in ms if m.source in errors)] if x)
            report.append(fv)
            done += fv.source_count
            bus.publish(FolderProgress("verify", fv.source, dest, "verified" if fv.ok else "errors",
                                       fv.source_count, 0, done_messages=fv.source_count,
                                       errors=len(fv.missing) + len(fv.duplicates)))
            bus.publish(JobProgress("verify", "running", total, 0, done, 0))
        rep = VerifyReport(report, ok=all(f.ok for f in report), elapsed=time.monotonic() - t0)
        bus.publish(JobProgress("verify", "done" if rep.ok else "failed", total, 0, done, 0,
                                detail=rep.describe()))
        return rep
    finally:
        await sides.close_all([src, dst])
