"""Independent check of a copy, used for every tool the benchmark runs.

Per folder, the destination must hold exactly the source's messages: the same bytes
(SHA-256 of BODY[]), the same flags and keywords (\\Recent aside) and the same received
date (INTERNALDATE compared as an instant, so the server's time zone does not matter),
each as often as in the source. Only imapclient is used here, none of switchover's code.

A copy that holds every message once but changed some (other flags, another date,
other bytes) is *altered*; one with messages missing or extra has *FAILED*.
Some tools change what they copy: mbsync inserts an ``X-TUID:`` header into every
message it appends (its way to find the new UID). Such a copy is reported as
*altered* with what changed, never as exact; the rest of the comparison is then made on
the bytes with that header taken out, so a flag or date difference still shows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field

import imapclient

TUID = re.compile(rb"^X-TUID: [^\r\n]*\r?\n", re.M | re.I)
FETCH_BYTES = 32 * 2**20
META = [b"RFC822.SIZE", b"FLAGS", b"INTERNALDATE"]


@dataclass
class Msg:
    sha: str           # of the exact bytes
    plain: str         # of the bytes without an X-TUID header line ("" when none)
    size: int
    flags: tuple[bytes, ...]
    when: float | None

    def key(self, strip_tuid: bool = False) -> tuple:
        return ((self.plain or self.sha) if strip_tuid else self.sha, self.flags, self.when)


@dataclass
class CheckResult:
    status: str                         # "exact" | "altered" | "FAILED"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    messages: int = 0

    @property
    def ok(self) -> bool:
        return self.status != "FAILED"

    def summary(self) -> str:
        if self.status == "exact":
            return "exact"
        return f"{self.status}: " + "; ".join(self.problems + self.notes)


def _header_end(raw: bytes) -> int:
    i = raw.find(b"\r\n\r\n")
    return len(raw) if i < 0 else i + 2


def _digest(raw: bytes) -> tuple[str, str]:
    sha = hashlib.sha256(raw).hexdigest()
    head_end = _header_end(raw)
    head = raw[:head_end]
    if b"X-TUID:" in head or b"x-tuid:" in head.lower():
        stripped = TUID.sub(b"", head, count=1) + raw[head_end:]
        return sha, hashlib.sha256(stripped).hexdigest()
    return sha, ""


def folder_messages(client: imapclient.IMAPClient, folder: str) -> list[Msg]:
    """Every message of folder, read in batches of at most FETCH_BYTES.

    Messages are addressed by sequence number (1:EXISTS in ranges), not by a UID SEARCH:
    imaplib refuses lines over 1,000,000 bytes, and a SEARCH of a 200,000-message folder
    is 1.3 MB. Every one of the EXISTS messages must be read, else the check fails."""
    exists = int(client.select_folder(folder, readonly=True).get(b"EXISTS", 0))
    if not exists:
        return []
    client.use_uid = False
    try:
        return _read_by_sequence(client, folder, exists)
    finally:
        client.use_uid = True


def _read_by_sequence(client: imapclient.IMAPClient, folder: str, exists: int) -> list[Msg]:
    meta = {}
    for i in range(1, exists + 1, 5000):
        meta.update(client.fetch(list(range(i, min(exists, i + 4999) + 1)), META))
    uids = sorted(meta)
    if len(uids) != exists:
        raise RuntimeError(f"{folder}: the server counts {exists} messages but {len(uids)} were read")
    out: list[Msg] = []
    batch: list[int] = []
    size = 0

    def flush() -> None:
        if not batch:
            return
        bodies = client.fetch(batch, [b"BODY.PEEK[]"])
        for uid in batch:
            raw = bodies[uid][b"BODY[]"]
            m = meta[uid]
            sha, plain = _digest(raw)
            when = m[b"INTERNALDATE"]
            flags = tuple(sorted(bytes(f) for f in m[b"FLAGS"] if f.lower() != b"\\recent"))
            out.append(Msg(sha, plain, m[b"RFC822.SIZE"], flags, when.timestamp() if when else None))
        batch.clear()

    for uid in uids:
        n = meta[uid][b"RFC822.SIZE"]
        if batch and (size + n > FETCH_BYTES or len(batch) >= 5000):
            flush()
            size = 0
        batch.append(uid)
        size += n
    flush()
    return out


def _selectable(client: imapclient.IMAPClient) -> list[str]:
    return [name for flags, _d, name in client.list_folders()
            if not {b"\\Noselect", b"\\NonExistent"} & {bytes(f) for f in flags}]


def _iso(ts: float | None) -> str:
    return "none" if ts is None else dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat()


@dataclass
class Diff:
    missing: int = 0
    extra: int = 0
    flags: int = 0
    dates: int = 0
    lost: Counter = field(default_factory=Counter)      # flag -> messages that lost it
    gained: Counter = field(default_factory=Counter)
    date_sample: str = ""
    folders: list[str] = field(default_factory=list)

    def add(self, name: str, a: list[Msg], b: list[Msg], strip: bool) -> None:
        """Pair the source messages the destination lacks with destination messages of
        the same bytes: such a pair differs in flags and/or date; the rest is missing/extra."""
        ka = Counter(m.key(strip) for m in a)
        kb = Counter(m.key(strip) for m in b)
        missing, extra = ka - kb, kb - ka
        if not missing and not extra:
            return
        self.folders.append(name)
        spare: dict[str, list[tuple]] = {}
        for k in extra.elements():
            spare.setdefault(k[0], []).append(k)
        for k in missing.elements():
            cands = spare.get(k[0])
            if not cands:
                self.missing += 1
                continue
            other = cands.pop()
            if other[1] != k[1]:
                self.flags += 1
                self.lost.update(set(k[1]) - set(other[1]))
                self.gained.update(set(other[1]) - set(k[1]))
            if other[2] != k[2]:
                self.dates += 1
                self.date_sample = self.date_sample or f"{_iso(k[2])} -> {_iso(other[2])}"
        self.extra += sum(len(v) for v in spare.values())

    def words(self) -> list[str]:
        out = []
        if self.missing:
            out.append(f"{self.missing:,} missing")
        if self.extra:
            out.append(f"{self.extra:,} extra")
        if self.flags:
            lost = ", ".join(f"{f.decode()} ×{n:,}" for f, n in self.lost.most_common(4))
            gained = ", ".join(f"{f.decode()} ×{n:,}" for f, n in self.gained.most_common(4))
            out.append(f"{self.flags:,} with other flags" + (f" (lost {lost})" if lost else "")
                       + (f" (gained {gained})" if gained else ""))
        if self.dates:
            out.append(f"{self.dates:,} with another received date (e.g. {self.date_sample})")
        return out


def compare(src: imapclient.IMAPClient, dst: imapclient.IMAPClient) -> CheckResult:
    """Check dst against src; see the module docstring."""
    src.normalise_times = dst.normalise_times = False   # aware datetimes: compare instants
    problems: list[str] = []
    diff = Diff()
    tuid = 0
    total = 0
    src_names = _selectable(src)
    dst_names = set(_selectable(dst))
    for name in src_names:
        a = folder_messages(src, name)
        total += len(a)
        if name not in dst_names:
            if a:
                problems.append(f"{name}: missing on the destination ({len(a)} messages)")
            continue
        b = folder_messages(dst, name)
        # X-TUID lines the copy added (not those the source already had)
        src_shas = {m.sha for m in a}
        n_tuid = sum(1 for m in b if m.plain and m.sha not in src_shas)
        tuid += n_tuid
        diff.add(name, a, b, n_tuid > 0)
    for name in sorted(dst_names - set(src_names)):
        b = folder_messages(dst, name)
        if b:
            problems.append(f"{name}: only on the destination ({len(b)} messages)")
    changed = diff.words()
    if tuid:
        changed.append(f"X-TUID header added to {tuid:,} of {total:,} messages")
    if problems or diff.missing or diff.extra:
        return CheckResult("FAILED", problems + changed, [], total)
    return CheckResult("altered" if changed else "exact", [], changed, total)
