"""Importing local mail files into a mailbox folder (``engine.backups.import_path``).

Sources: an ``.mbox`` file (mboxo / mboxrd as Thunderbird, Apple Mail, Foxmail, mutt and
switchover's own backups write them; Apple Mail's ``Name.mbox/mbox`` and Thunderbird's
extension-less profile files next to their ``.msf`` too), a single ``.eml`` file, or a
directory searched recursively for both (Outlook, Foxmail and Thunderbird exports); every
message goes into the one folder named. The root of a switchover backup holding both
formats is read from its ``eml/`` tree only, so nothing arrives twice.

Decisions worth knowing:

* **mbox quoting.** Every body line matching ``>+From `` loses one ``>`` (the mboxrd
  rule). For mboxrd this is exact; for mboxo it restores the usual case (a body line
  ``From ...`` the writer escaped) and only alters a body line that truly began with
  ``>From `` in the original, which is rare. A message starts at a line ``From ...``
  holding a time and a year that is the first line or follows an empty line; the empty
  line before the next ``From `` line belongs to the file, not to the message.
* **Line endings.** IMAP wants CRLF, so bare LF becomes CRLF; nothing else changes. A
  message that switchover's own backup holds (found by SHA-256 in an ``index.sqlite``
  next to or above the source) is uploaded with its exact original bytes, flags and
  INTERNALDATE instead.
* **Flags.** From the backup index when known; else from ``Status`` / ``X-Status`` /
  ``X-Mozilla-Status`` headers when present; else ``\\Seen`` (an imported archive should
  not flood the new mailbox with unread mail).
* **Received date.** The backup index's INTERNALDATE, else the ``Date`` header, else the
  mbox ``From `` line's date, else the file's modification time.
* **Dedup.** The destination folder is re-identified (core.identity) at every start, and
  a source message is uploaded only when the folder holds fewer copies of its identity
  than the sources so far (multiset), so a rerun, or a rerun after kill -9, uploads
  nothing twice. Each upload is recorded in the state's ``imports`` table before
  (``pending``) and after (``uploaded`` / ``refused``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hashlib
import json
import os
import re
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .backups import INDEX_NAME, Throttle, _FolderProgress, _words, fetch_chunked, fetched_headers, mboxrd_unquote
from ..errors import SwitchoverError
from ..events import JobProgress
from ..mail.identity import HEADER_FETCH, identity_from_content, identity_from_headers, identity_of

if TYPE_CHECKING:
    from .backups import Backups

BATCH_MESSAGES = 50
BATCH_BYTES = 8 * 2**20


@dataclass
class ImportSummary:
    messages: int = 0
    uploaded: int = 0
    already_there: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    malformed: list[tuple[str, str]] = field(default_factory=list)
    elapsed: float = 0.0
    ok: bool = False
    folder: str = ""          # the destination folder's name on the server

    def describe(self) -> str:
        return (f"{self.uploaded:,} uploaded, {self.already_there:,} already there, "
                f"{len(self.refused):,} refused, {len(self.malformed):,} malformed in {self.elapsed:,.1f} s")


@dataclass
class Source:
    """One message found on disk (``raw`` None when it could not be used)."""

    ref: str
    raw: bytes | None
    reason: str = ""
    mtime: float = 0.0
    from_date: dt.datetime | None = None
    from_mbox: bool = False


# -- reading files ------------------------------------------------------------------------
_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")
_FROM_SEP = re.compile(rb"^From \S*.*\b\d{1,2}:\d{2}\b.*\b(?:19|20)\d{2}\b")
_ASCTIME = re.compile(rb"([A-Z][a-z]{2}) +(\d{1,2}) (\d{1,2}):(\d{2})(?::(\d{2}))? (?:[A-Z]{3,4} )?((?:19|20)\d{2})")
_MONTHS = {m: i + 1 for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"))}
_BARE_LF = re.compile(rb"(?<!\r)\n")
MAIL_SUFFIXES = {".eml"}
MBOX_SUFFIXES = {".mbox", ".mbx"}


def looks_like_mail(raw: bytes) -> str:
    """'' when raw starts like a mail message, else one sentence why not."""
    if not raw.strip():
        return "the file is empty"
    if not _HEADER_LINE.match(raw.lstrip(b"\r\n")[:1000]):
        return "it does not start with mail header fields (such as From: or Subject:), so it is not a mail message"
    return ""


def to_crlf(raw: bytes) -> bytes:
    return _BARE_LF.sub(b"\r\n", raw)


def _from_line_date(line: bytes) -> dt.datetime | None:
    m = _ASCTIME.search(line)
    if not m or m.group(1) not in _MONTHS:
        return None
    try:
        return dt.datetime(int(m.group(6)), _MONTHS[m.group(1)], int(m.group(2)), int(m.group(3)),
                           int(m.group(4)), int(m.group(5) or 0), tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def _end_message(lines: list[bytes]) -> bytes:
    data = b"".join(lines)
    # the empty line before the next From line is the mbox's separator, not the message's
    if data.endswith(b"\r\n") and data[:-2].endswith(b"\n"):
        data = data[:-2]
    elif data.endswith(b"\n") and data[:-1].endswith(b"\n"):
        data = data[:-1]
    return mboxrd_unquote(data)


def read_mbox(path: Path, ref: str) -> Iterator[Source]:
    """Messages of an mbox file, one at a time (memory bounded by the largest one)."""
    try:
        mtime = path.stat().st_mtime
        f = open(path, "rb")
    except OSError as e:
        yield Source(ref, None, f"it cannot be read ({e.strerror})")
        return
    with f:
        yield from _split_mbox(f, ref, mtime)


def _split_mbox(f: Any, ref: str, mtime: float) -> Iterator[Source]:
    n = 0
    lines: list[bytes] | None = None
    from_date: dt.datetime | None = None
    prev_blank = True
    for line in f:
        if prev_blank and line.startswith(b"From ") and _FROM_SEP.match(line):
            if lines is not None:
                n += 1
                yield _mbox_source(f"{ref}#{n}", _end_message(lines), mtime, from_date)
            lines = []
            from_date = _from_line_date(line)
            prev_blank = False
            continue
        if lines is None:
            if line.strip():
                yield Source(ref, None, "it does not start with a 'From ' line, so it is not an mbox file",
                             mtime)
                return
            continue
        lines.append(line)
        prev_blank = line in (b"\n", b"\r\n")
    if lines is not None:
        n += 1
        yield _mbox_source(f"{ref}#{n}", _end_message(lines), mtime, from_date)
    elif n == 0:
        yield Source(ref, None, "the file is empty", mtime)


def _mbox_source(ref: str, raw: bytes, mtime: float, from_date: dt.datetime | None) -> Source:
    return Source(ref, raw, "", mtime, from_date, from_mbox=True)


def _eml_source(path: Path, ref: str) -> Source:
    try:
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except OSError as e:
        return Source(ref, None, f"it cannot be read ({e.strerror})")
    return Source(ref, raw, "", mtime)


def iter_sources(path: Path) -> Iterator[Source]:
    """Every message under ``path`` (file or directory), in a stable order."""
    if not path.exists():
        raise SwitchoverError(f"{path} does not exist.")
    if path.is_file():
        yield from _file_sources(path, path.name, explicit=True)
        return
    skip: set[str] = set()
    if (path / INDEX_NAME).is_file() and (path / "eml").is_dir() and (path / "mbox").is_dir():
        skip.add(str(path / "mbox"))     # a switchover backup holds each message twice
    for dirpath, dirnames, filenames in os.walk(path):
        if dirpath in skip:
            dirnames[:] = []
            continue
        dirnames.sort()
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            yield from _file_sources(p, p.relative_to(path).as_posix(), explicit=False)


def _starts_with_from_line(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            return bool(_FROM_SEP.match(f.readline(4096)))
    except OSError:
        return False


def _file_sources(p: Path, ref: str, explicit: bool) -> Iterator[Source]:
    suffix = p.suffix.lower()
    if suffix in MAIL_SUFFIXES:
        if _starts_with_from_line(p):
            yield from read_mbox(p, ref)         # "raw" saves that keep the envelope line
        else:
            yield _eml_source(p, ref)
    elif suffix in MBOX_SUFFIXES or p.name == "mbox" or (not suffix and p.with_name(p.name + ".msf").exists()):
        # .mbox / .mbx, Apple Mail's Name.mbox/mbox, Thunderbird's profile files (Inbox + Inbox.msf)
        yield from read_mbox(p, ref)
    elif suffix == ".msg":
        yield Source(ref, None, "it is an Outlook .msg file, not MIME mail; save it from Outlook as .eml")
    elif explicit:
        try:
            with open(p, "rb") as f:
                head = f.read(5)
        except OSError as e:
            yield Source(ref, None, f"it cannot be read ({e.strerror})")
            return
        if head == b"From ":
            yield from read_mbox(p, ref)
        else:
            yield _eml_source(p, ref)
    # other files in a directory (indexes, table_of_contents, .DS_Store) are not mail


# -- flags and dates ----------------------------------------------------------------------
def status_flags(raw: bytes) -> list[str] | None:
    """Flags from Status / X-Status / X-Mozilla-Status headers, or None when absent."""
    from ..mail.identity import header_block, parse_header_block
    fields = parse_header_block(header_block(raw))
    flags: set[str] = set()
    found = False
    moz = fields.get(b"X-MOZILLA-STATUS")
    if moz:
        try:
            v = int(moz.strip(), 16)
            found = True
            if v & 0x1:
                flags.add("\\Seen")
            if v & 0x2:
                flags.add("\\Answered")
            if v & 0x4:
                flags.add("\\Flagged")
        except ValueError:
            pass
    status = fields.get(b"STATUS")
    if status is not None:
        found = True
        if b"R" in status:
            flags.add("\\Seen")
    xstatus = fields.get(b"X-STATUS")
    if xstatus is not None:
        found = True
        for ch, flag in ((b"A", "\\Answered"), (b"F", "\\Flagged"), (b"T", "\\Draft")):
            if ch in xstatus:
                flags.add(flag)
    return sorted(flags) if found else None


def header_date(raw: bytes) -> dt.datetime | None:
    from ..mail.identity import header_block, parse_header_block
    value = parse_header_block(header_block(raw)).get(b"DATE")
    if not value:
        return None
    try:
        d = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    if d is None:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    if not 1970 <= d.year <= 2100:
        return None
    return d


def internaldate_bytes(when: dt.datetime) -> bytes:
    from imapclient.datetime_util import datetime_to_INTERNALDATE
    return datetime_to_INTERNALDATE(when).encode("ascii")


class BackupLookup:
    """Flags and INTERNALDATE of messages a switchover backup holds, by SHA-256."""

    def __init__(self, start: Path) -> None:
        self.db: sqlite3.Connection | None = None
        here = start if start.is_dir() else start.parent
        for d in [here, *list(here.parents)[:4]]:
            p = d / INDEX_NAME
            if p.is_file():
                try:
                    db = sqlite3.connect(f"file:{p}?mode=ro", uri=True, check_same_thread=False)
                    db.execute("SELECT sha256, flags, internaldate FROM messages LIMIT 1")
                    self.db = db
                    break
                except sqlite3.Error:
                    continue

    def get(self, raw: bytes) -> tuple[list[str], dt.datetime | None] | None:
        if self.db is None:
            return None
        row = self.db.execute("SELECT flags, internaldate FROM messages WHERE sha256=? LIMIT 1",
                              (hashlib.sha256(raw).hexdigest(),)).fetchone()
        if row is None:
            return None
        try:
            flags = [f for f in json.loads(row[0] or "[]") if f != "\\Recent"]
        except ValueError:
            flags = []
        when = dt.datetime.fromisoformat(row[1]) if row[1] else None
        return flags, when

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


# -- the import ---------------------------------------------------------------------------
@dataclass
class _Item:
    ref: str
    raw: bytes
    identity: str
    flags: bytes
    date: bytes | None


class Importer:
    def __init__(self, facet: "Backups", path: Path, to_folder: str, side: str) -> None:
        self.facet = facet
        self.engine = facet.engine
        self.path = path
        self.to_folder = to_folder.strip()
        self.side = side
        self.summary = ImportSummary()
        self.client: Any = None
        self.wire: Any = None
        self.folder = ""
        self.have: Counter[str] = Counter()        # destination copies not matched yet
        self.consumed: Counter[str] = Counter()    # destination copies this run accounted for
        self.run_id = 0
        self.delim = "/"

    async def run(self) -> ImportSummary:
        if not self.to_folder:
            raise SwitchoverError("Name the folder to import into (--to FOLDER).")
        if not self.path.exists():
            raise SwitchoverError(f"{self.path} does not exist.")
        self.run_id = await self.engine.store.start_run("import")
        try:
            summary = await self.engine.run_blocking(self._work)
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                self.facet.cancel()               # the worker thread stops at its next message
            await self.engine.store.end_run(self.run_id, "failed", {"error": str(e)})
            raise
        await self.engine.store.end_run(self.run_id, "ok" if summary.ok else "errors", {
            "path": str(self.path), "folder": summary.folder, "uploaded": summary.uploaded,
            "already_there": summary.already_there, "refused": len(summary.refused),
            "malformed": len(summary.malformed)})
        return summary

    # -- connection and destination -------------------------------------------------------
    def _connect(self) -> None:
        from ..net.mailboxes import ensure_folder, list_folders, namespace_of
        from ..net.imap import connect_retrying
        from ..net.wire import Wire
        # a connection dropped during login is tried again; a refused login is not
        self.client = connect_retrying(self.engine.account(self.side))
        if not self.folder:
            prefix, delim = namespace_of(self.client)
            names = {f.name for f in list_folders(self.client)}
            self.folder = dest_name(self.to_folder, prefix, delim, names)
            self.delim = delim
        ensure_folder(self.client, self.folder, self.delim)
        self.wire = Wire(self.client)
        # after a reconnect, what this run already matched or uploaded is spoken for
        self.have = self._identify() - self.consumed

    def _disconnect(self) -> None:
        from ..net.imap import close
        close(self.client)
        self.client = self.wire = None

    def _identify(self) -> Counter[str]:
        """Identities the destination folder holds now (multiset)."""
        have: Counter[str] = Counter()
        sel = self.client.select_folder(self.folder, readonly=True)
        if not int(sel.get(b"EXISTS", 0)):
            return have
        no_mid: list[int] = []
        for uid, data in fetch_chunked(self.client, self.client.search("ALL"), [HEADER_FETCH, b"RFC822.SIZE"]):
            ident = identity_from_headers(fetched_headers(data), int(data.get(b"RFC822.SIZE", 0)))
            if ident:
                have[ident] += 1
            else:
                no_mid.append(uid)
        for i in range(0, len(no_mid), 50):      # only mail without Message-ID needs its body
            for data in self.client.fetch(no_mid[i:i + 50], [b"BODY.PEEK[]"]).values():
                if b"BODY[]" in data:
                    have[identity_from_content(data[b"BODY[]"])] += 1
        return have

    # -- the run (worker thread) ----------------------------------------------------------
    def _work(self) -> ImportSummary:
        t0 = time.monotonic()
        lookup = BackupLookup(self.path.resolve())
        fp: _FolderProgress | None = None
        throttle = Throttle()
        try:
            self._connect()
            self.summary.folder = self.folder
            fp = _FolderProgress(self.engine, str(self.path), self.folder, 0, 0, 0, 0, job="import")
            batch: list[_Item] = []
            size = 0
            for src in iter_sources(self.path):
                if not self.facet._checkpoint(lambda state: self._job(fp, state, t0)):
                    break
                item = self._prepare(src, lookup)
                if item is None:
                    continue
                self.summary.messages += 1
                fp.total += 1
                fp.total_bytes += len(item.raw)
                batch.append(item)
                size += len(item.raw)
                if len(batch) >= BATCH_MESSAGES or size >= BATCH_BYTES:
                    self._flush(batch, fp)
                    batch, size = [], 0
                if throttle.ready():
                    self._job(fp, "running", t0)
            if batch and not self.facet._cancel.is_set():
                self._flush(batch, fp)
        finally:
            lookup.close()
            self._disconnect()
        s = self.summary
        s.elapsed = time.monotonic() - t0
        cancelled = self.facet._cancel.is_set()
        s.ok = not s.refused and not s.malformed and not cancelled
        if fp is not None:
            fp.emit("done" if s.ok else "errors", force=True, refused=len(s.refused),
                    errors=len(s.malformed))
            self._job(fp, "cancelled" if cancelled else ("done" if s.ok else "failed"), t0)
        return s

    def _job(self, fp: _FolderProgress, state: str, t0: float) -> None:
        el = max(time.monotonic() - t0, 1e-6)
        self.engine.publish(JobProgress(
            job="import", state=state, total_messages=fp.total, total_bytes=fp.total_bytes,
            done_messages=fp.done, done_bytes=fp.done_bytes, msgs_per_s=fp.new / el,
            bytes_per_s=fp.new_bytes / el, detail=f"{self.path} -> {self.folder}"))

    def _prepare(self, src: Source, lookup: BackupLookup) -> _Item | None:
        if src.raw is None:
            self.summary.malformed.append((src.ref, _sentence(src.reason)))
            return None
        known = lookup.get(src.raw)
        if known is None and src.from_mbox and src.raw.endswith(b"\n"):
            # our mbox writer ends a message lacking a final newline with one
            known = lookup.get(src.raw[:-1])
            if known is not None:
                src.raw = src.raw[:-1]
        if known is not None:
            raw = src.raw                       # switchover's own backup: exact bytes
            flags, when = known
        else:
            why = looks_like_mail(src.raw)
            if why:
                self.summary.malformed.append((src.ref, _sentence(why)))
                return None
            raw = to_crlf(src.raw)
            flags = status_flags(raw)
            if flags is None:
                flags = ["\\Seen"]
            when = None
        when = (when or header_date(raw) or src.from_date
                or dt.datetime.fromtimestamp(src.mtime or time.time(), dt.timezone.utc))
        flag_bytes = " ".join(flags).encode("utf-8")
        return _Item(src.ref, raw, identity_of(raw), flag_bytes, internaldate_bytes(when))

    def _flush(self, batch: list[_Item], fp: _FolderProgress) -> None:
        from ..net.imap import Backoff, is_connection_error
        backoff = Backoff(first=0.5, cap=10)
        inflight: Counter[str] = Counter()
        undecided = list(batch)
        for attempt in range(6):
            try:
                if self.client is None:
                    self._connect()
                self._upload(undecided, fp, inflight)
                return
            except SwitchoverError:
                raise
            except Exception as e:
                if not is_connection_error(e) or attempt == 5:
                    raise SwitchoverError(f"Importing into {self.folder} failed: {_words(e)}") from None
                self._disconnect()
                time.sleep(backoff.next())

    def _upload(self, items: list[_Item], fp: _FolderProgress, inflight: Counter[str]) -> None:
        """Decide and upload ``items``; what stays in the list is undecided when the
        connection breaks (inflight: identities sent but not confirmed)."""
        todo: list[_Item] = []
        for item in items:
            if self.have[item.identity] > 0:
                self.have[item.identity] -= 1
                self.consumed[item.identity] += 1
                if inflight[item.identity] > 0:     # landed before the connection broke
                    inflight[item.identity] -= 1
                    self.summary.uploaded += 1
                    fp.add(len(item.raw))
                else:
                    self.summary.already_there += 1
                    fp.already += 1
                    fp.done += 1
            else:
                todo.append(item)
        items[:] = todo
        if not todo:
            fp.emit("copying")
            return
        store = self.engine.store
        now = time.time()
        ids = self.facet._state(_insert_pending(store, [
            (self.run_id, str(self.path), it.ref, it.identity, self.folder, now) for it in todo]))
        inflight.update(it.identity for it in todo)
        results = self.wire.append_each(self.folder, [(it.flags, it.date, it.raw) for it in todo])
        # a server that cannot keep a keyword ($Label1, customkw) may refuse the whole
        # APPEND: such a message is tried once more with its system flags only
        retry = [i for i, (it, res) in enumerate(zip(todo, results)) if not res.ok and _keywords(it.flags)]
        if retry:
            again = self.wire.append_each(self.folder, [(_system_flags(todo[i].flags), todo[i].date, todo[i].raw)
                                                        for i in retry])
            for i, res in zip(retry, again):
                if res.ok:
                    results[i] = res
        rows = []
        for rid, it, res in zip(ids, todo, results):
            inflight[it.identity] -= 1
            if res.ok:
                self.consumed[it.identity] += 1
                self.summary.uploaded += 1
                fp.add(len(it.raw))
                rows.append(("uploaded", res.uidvalidity, res.uid, None, time.time(), rid))
            else:
                reason = res.text.strip() or "the server refused the message"
                self.summary.refused.append((it.ref, reason))
                rows.append(("refused", None, None, reason, time.time(), rid))
        items.clear()
        self.facet._state(store.executemany(
            "UPDATE imports SET state=?, dst_uidvalidity=?, dst_uid=?, reason=?, updated=? WHERE id=?", rows))
        fp.emit("copying")


def _keywords(flags: bytes) -> bool:
    return any(not f.startswith(b"\\") for f in flags.split())


def _system_flags(flags: bytes) -> bytes:
    return b" ".join(f for f in flags.split() if f.startswith(b"\\"))


async def _insert_pending(store: Any, rows: list[tuple]) -> list[int]:
    """Record a batch as 'pending' in one transaction; the row ids, in order."""
    ids = []
    async with store.transaction() as db:
        for row in rows:
            cur = await db.execute(
                "INSERT INTO imports (run_id, source, source_ref, identity, to_folder, state, updated) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?)", row)
            ids.append(cur.lastrowid)
    return ids


def dest_name(to_folder: str, prefix: str, delim: str, existing: set[str]) -> str:
    """The server name of the folder the user wrote (levels separated by ``/``)."""
    if to_folder.casefold() == "inbox":
        return "INBOX"
    if to_folder in existing:
        return to_folder                          # already a server name
    if prefix and to_folder.startswith(prefix):
        return to_folder
    from ..migrate.folders import DELIMITER_REPLACEMENT
    comps = [c for c in to_folder.split("/") if c]
    if prefix and comps and comps[0].casefold() == prefix.rstrip(delim).casefold():
        comps = comps[1:]                         # "INBOX/x" on an INBOX. server
    if delim and delim != "/":
        comps = [c.replace(delim, DELIMITER_REPLACEMENT.get(delim, "_")) for c in comps]
    return prefix + (delim or "/").join(comps)


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return "It could not be read."
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."
