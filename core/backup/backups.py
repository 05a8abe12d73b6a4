"""Local backups of a mailbox: every folder to ``.mbox`` files and/or ``.eml`` trees, with
an index that makes the backup resumable and checkable (``engine.backups``).

Layout of a backup directory ``ROOT``::

    ROOT/index.sqlite                       what is there (the truth for resume and verify)
    ROOT/mbox/<folder>/<sub>.mbox            one mboxrd file per folder
    ROOT/eml/<folder>/<sub>/<uidvalidity>-<uid>[-subject].eml   one file per message

Bytes are kept exactly as the server served them: the mbox holds each message after an
mboxrd ``From `` line with ``>From`` quoting (undone on read), and no Status / X-Status
header is added. Flags, keywords and INTERNALDATE live in the index (``messages`` table).

Order of writes, so that ``kill -9`` at any point loses nothing and duplicates nothing:
files first (mbox appended + fsync, eml tmp + fsync + rename), then one index commit per
batch recording the new mbox end offset. A rerun truncates an mbox back to the recorded
end and rewrites (same name) any eml that was not indexed yet. Progress is mirrored into
the engine's state (``backups`` table) for the faces.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.header
import email.utils
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple

from ..errors import AuthError, ConnectError, SwitchoverError
from ..events import FolderProgress, JobProgress
from ..mail.identity import HEADER_KEY, header_block, identity_of
from ..joblock import JobLock
from ..store import make_private_dirs, open_private

if TYPE_CHECKING:
    from ..engine import Engine
    from .importer import ImportSummary

INDEX_NAME = "index.sqlite"
FORMATS = ("mbox", "eml")
BATCH_MESSAGES = 200
BATCH_BYTES = 16 * 2**20

_INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS folders (
    name TEXT PRIMARY KEY, delimiter TEXT, relpath TEXT NOT NULL UNIQUE,
    uidvalidity INTEGER, mbox_end INTEGER NOT NULL DEFAULT 0, messages INTEGER, updated REAL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL, identity TEXT NOT NULL, flags TEXT, internaldate TEXT,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, eml TEXT, mbox_offset INTEGER,
    mbox_length INTEGER, done REAL, UNIQUE (folder, uidvalidity, uid));
CREATE INDEX IF NOT EXISTS messages_sha ON messages (sha256);
"""


# -- records ------------------------------------------------------------------------------
@dataclass
class BackupSummary:
    root: Path
    folders: int = 0
    messages_written: int = 0
    already_there: int = 0
    bytes_written: int = 0
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    ok: bool = False

    def describe(self) -> str:
        return (f"{self.messages_written:,} messages written, {self.already_there:,} already there, "
                f"{self.bytes_written / 1e6:,.1f} MB in {self.folders} folders, {len(self.errors)} errors, "
                f"{self.elapsed:,.1f} s → {self.root}")


class FolderCheck(NamedTuple):
    folder: str
    expected: int
    found: int
    missing: int
    corrupt: int


@dataclass
class BackupReport:
    ok: bool
    folders: list[FolderCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    live_checked: bool = False      # True when the source server was reached and compared
    #: what could not be compared with the live mailbox (folders, or the whole mailbox)
    unchecked: list[str] = field(default_factory=list)

    def describe(self) -> str:
        found = sum(f.found for f in self.folders)
        if self.ok:
            return f"verified: {found:,} messages in {len(self.folders)} folders"
        if self.unchecked and len(self.problems) == len(self.unchecked):
            return (f"NOT verified: {', '.join(self.unchecked[:5])} could not be compared with the backup"
                    f" — {self.problems[0]}")
        return f"NOT complete: {len(self.problems)} problems" + (f" — {self.problems[0]}" if self.problems else "")


# -- mbox and path helpers (also used by the importer) ------------------------------------
_FROM_LINE = re.compile(rb"(?m)^(>*From )")
_QUOTED_FROM = re.compile(rb"(?m)^>(>*From )")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ILLEGAL = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
             *(f"LPT{i}" for i in range(1, 10))}


def mboxrd_quote(raw: bytes) -> bytes:
    """mboxrd: every line matching ``>*From `` gets one more ``>`` (exactly reversible)."""
    return _FROM_LINE.sub(rb">\1", raw)


def mboxrd_unquote(data: bytes) -> bytes:
    return _QUOTED_FROM.sub(rb"\1", data)


def asctime(when: dt.datetime) -> str:
    """ctime-style date in UTC for a ``From `` line, independent of the locale."""
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc)
    return (f"{_DAYS[when.weekday()]} {_MONTHS[when.month - 1]} {when.day:2d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {when.year}")


def envelope_sender(raw: bytes) -> str:
    """Return-Path, else the From address, else MAILER-DAEMON (one token, ASCII)."""
    from ..mail.identity import parse_header_block
    fields = parse_header_block(header_block(raw))
    for key in (b"RETURN-PATH", b"FROM"):
        value = fields.get(key)
        if value:
            addr = email.utils.parseaddr(value.decode("latin-1"))[1].strip("<> ")
            if addr and addr.isascii() and not re.search(r"\s", addr):
                return addr
    return "MAILER-DAEMON"


def mbox_entry(raw: bytes, when: dt.datetime | None) -> bytes:
    """One mboxrd entry: From line, quoted message, a final newline, a blank line."""
    when = when or dt.datetime.now(dt.timezone.utc)
    head = f"From {envelope_sender(raw)} {asctime(when)}\n".encode("ascii")
    body = mboxrd_quote(raw)
    if not body.endswith(b"\n"):
        body += b"\n"
    return head + body + b"\n"


def entry_message(entry: bytes, size: int) -> bytes | None:
    """The original message bytes of an entry written by :func:`mbox_entry`, or None."""
    if not entry.startswith(b"From "):
        return None
    nl = entry.find(b"\n")
    if nl < 0:
        return None
    return mboxrd_unquote(entry[nl + 1:])[:size]


def safe_component(name: str) -> str:
    """A folder name part usable as a file name on Linux, macOS and Windows (UTF-8 kept)."""
    s = _ILLEGAL.sub("_", name).rstrip(" .")
    if not s or s in (".", ".."):
        s = "_" + s
    if s.split(".")[0].upper() in _RESERVED:
        s = "_" + s
    return s[:120]


def folder_parts(name: str, delimiter: str | None) -> list[str]:
    parts = name.split(delimiter) if delimiter else [name]
    return [safe_component(p) for p in parts if p != ""] or ["_"]


def subject_slug(raw: bytes, limit: int = 40) -> str:
    from ..mail.identity import parse_header_block
    value = parse_header_block(header_block(raw)).get(b"SUBJECT", b"")
    if not value:
        return ""
    try:
        text = str(email.header.make_header(email.header.decode_header(value.decode("utf-8", "replace"))))
    except Exception:
        text = value.decode("utf-8", "replace")
    slug = re.sub(r"[^\w]+", "_", text).strip("_")
    return slug[:limit].strip("_")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_index(root: Path, create: bool = True) -> sqlite3.Connection:
    """The backup's own index. Rollback journal + synchronous=FULL: one self-contained
    file that survives kill -9 and power loss at any commit boundary."""
    path = root / INDEX_NAME
    if not create and not path.exists():
        raise SwitchoverError(f"{root} has no backup index ({INDEX_NAME}); is it a switchover backup?")
    try:
        if create and not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))    # private, like the mail
        db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_INDEX_SCHEMA)
    except sqlite3.DatabaseError as e:
        raise SwitchoverError(f"The backup index {path} is not usable ({e}).") from None
    return db


EVENT_INTERVAL = 0.2      # seconds between progress events of one kind (~5/s)


class Throttle:
    """True at most every ``interval`` seconds (events ~5/s)."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = EVENT_INTERVAL if interval is None else interval
        self.last = 0.0

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            return True
        return False


def batches(items: Iterable[tuple[int, int]], max_count: int, max_bytes: int) -> Iterable[list[int]]:
    """Group (uid, size) into UID lists bounded by count and bytes (a big one goes alone)."""
    batch: list[int] = []
    size = 0
    for uid, n in items:
        if batch and (len(batch) >= max_count or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(uid)
        size += n
    if batch:
        yield batch


def fetch_chunked(client: Any, uids: list[int], items: list[bytes], chunk: int = 2000
                  ) -> Iterable[tuple[int, dict]]:
    """UID FETCH of many messages in slices (short command lines, bounded responses)."""
    uids = sorted(uids)
    for i in range(0, len(uids), chunk):
        yield from client.fetch(uids[i:i + chunk], items).items()


def fetched_headers(data: dict) -> bytes:
    """The HEADER.FIELDS item of a FETCH reply, whatever order the server lists the
    field names in (pymap sorts them, so identity.HEADER_KEY alone is not enough)."""
    value = data.get(HEADER_KEY)
    if value is None:
        value = next((v for k, v in data.items() if isinstance(k, bytes)
                      and k.upper().startswith(b"BODY[HEADER.FIELDS")), b"")
    return value or b""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- the facet ----------------------------------------------------------------------------
class Backups:
    """``engine.backups``: backup(), verify_backup(), import_path(); pause/resume/cancel."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self._running = threading.Event()
        self._running.set()
        self._cancel = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- control ------------------------------------------------------------------------
    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()

    def stop(self) -> None:
        """Engine shutdown: a running backup / import stops at its next batch."""
        self.cancel()

    def _checkpoint(self, on_pause: Callable[[str], None]) -> bool:
        """Wait while paused (``on_pause`` publishes the state); False when cancelled."""
        if not self._running.is_set():
            on_pause("paused")
            while not self._running.wait(0.2):
                if self._cancel.is_set():
                    break
            if not self._cancel.is_set():
                on_pause("running")
        return not self._cancel.is_set()

    def _state(self, coro: Any) -> Any:
        """Run a store coroutine from a worker thread on the engine's loop."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    # -- public API ---------------------------------------------------------------------
    async def backup(self, root: Path, *, formats: tuple[str, ...] = FORMATS, side: str = "old",
                     folders: list[str] | None = None) -> BackupSummary:
        formats = tuple(f for f in formats if f in FORMATS)
        if not formats:
            raise SwitchoverError("Choose at least one backup format: mbox or eml.")
        root = Path(root).expanduser().resolve()
        # one backup per state file at a time (JobBusy, exit 4, names the other process)
        with JobLock(self.engine.config.state, "backup"):
            try:
                make_private_dirs(root)
            except OSError as e:
                raise SwitchoverError(f"Cannot create the backup directory {root} ({e.strerror}).") from None
            self._loop = asyncio.get_running_loop()
            self._cancel.clear()
            self._running.set()
            run_id = await self.engine.store.start_run("backup")
            job = _BackupRun(self, root, formats, side, folders)
            try:
                summary = await self.engine.run_blocking(job.run)
            except BaseException as e:
                if isinstance(e, asyncio.CancelledError):
                    self.cancel()                 # the worker thread stops at its next batch
                await self.engine.store.end_run(run_id, "failed", {"error": str(e)})
                raise
        outcome = "ok" if summary.ok else ("cancelled" if self._cancel.is_set() else "errors")
        await self.engine.store.end_run(run_id, outcome, {
            "root": str(root), "written": summary.messages_written,
            "already_there": summary.already_there, "errors": summary.errors[:20]})
        return summary

    async def verify_backup(self, root: Path) -> BackupReport:
        root = Path(root).expanduser().resolve()
        report = await self.engine.run_blocking(_verify, self.engine, root)
        await self._record_proof(root, report)
        return report

    async def _record_proof(self, root: Path, report: BackupReport) -> None:
        """A verified backup checked against the live mailbox proves the checklist's backup
        item (and the final backup after the close date); only a failure of the very backup
        that was the proof takes it back."""
        checklist = self.engine.checklist
        when = dt.datetime.now()
        where = str(root)
        if report.ok and report.live_checked:
            found = sum(f.found for f in report.folders)
            evidence = (f"{where} verified {when:%Y-%m-%d %H:%M}: {found:,} messages "
                        f"in {len(report.folders)} folders")
            await checklist.prove("backup", True, evidence)
            close = self.engine.config.transition.close_date
            if close and when.date() >= close:
                await checklist.prove("final_backup", True, evidence + ", after the close date")
        elif not report.ok:
            for key in ("backup", "final_backup"):
                item = await checklist.item(key)
                if item.by == "engine" and where in item.evidence:
                    await checklist.prove(key, False, f"{where} failed its check {when:%Y-%m-%d %H:%M}")

    async def import_path(self, path: Path, to_folder: str, *, side: str = "new") -> "ImportSummary":
        """Upload an .mbox file, an .eml file or a directory of them into ``to_folder`` of
        the ``side`` mailbox (created if missing); see core/importer.py."""
        from .importer import Importer
        with JobLock(self.engine.config.state, "import"):
            self._loop = asyncio.get_running_loop()
            self._cancel.clear()
            self._running.set()
            return await Importer(self, Path(path).expanduser(), to_folder, side).run()


# -- one backup run (worker thread) --------------------------------------------------------
def _lock(root: Path) -> Any:
    """An exclusive lock on ROOT/.lock for the run: two writers would interleave the mbox."""
    f = open_private(root / ".lock", "a+b")
    try:
        import fcntl
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:                    # Windows: no advisory locks, go on
        pass
    except OSError:
        f.close()
        raise SwitchoverError(f"Another switchover backup is writing to {root} right now.") from None
    return f

class _DiskError(SwitchoverError):
    """Writing the backup failed locally (disk full, permissions): the run stops."""


_EML_NAME = re.compile(r"^(\d+)-(\d+)(?:-.*)?\.eml$")


def _flags_json(flags: Iterable[Any]) -> str:
    return json.dumps(sorted(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f)
                             for f in flags if f not in (b"\\Recent", "\\Recent")), ensure_ascii=False)


def _date_str(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else None


class _BackupRun:
    def __init__(self, facet: Backups, root: Path, formats: tuple[str, ...], side: str,
                 only: list[str] | None) -> None:
        self.facet = facet
        self.engine = facet.engine
        self.root = root
        self.formats = formats
        self.side = side
        self.only = only
        self.account = self.engine.account(side)
        settings = self.engine.config.migration
        self.batch_messages = settings.batch_messages or BATCH_MESSAGES
        self.batch_bytes = settings.batch_bytes or BATCH_BYTES
        self.summary = BackupSummary(root=root)
        self.db: sqlite3.Connection | None = None
        self.client: Any = None
        self.total_messages = 0
        self.total_bytes = 0
        self.done_messages = 0
        self.done_bytes = 0
        self.t0 = time.monotonic()
        self.job_throttle = Throttle()

    # -- connection ---------------------------------------------------------------------
    def _connect(self) -> None:
        from ..events import ConnectionState
        from ..net.imap import connect_retrying
        self.engine.publish(ConnectionState(side=self.side, state="connecting"))
        # a connection dropped during login is tried again; a refused login is not
        self.client = connect_retrying(self.account, on_retry=lambda why: self.engine.publish(
            ConnectionState(side=self.side, state="reconnecting", detail=why)))
        self.client.normalise_times = False       # keep INTERNALDATE's zone
        self.engine.publish(ConnectionState(side=self.side, state="connected"))

    def _disconnect(self) -> None:
        from ..net.imap import close
        close(self.client)
        self.client = None

    def _list(self) -> list[tuple[str, str | None]]:
        from ..net.mailboxes import list_folders
        infos = [(f.name, f.delimiter) for f in list_folders(self.client) if f.selectable]
        if self.only is None:
            return infos
        known = dict(infos)
        out = []
        for name in self.only:
            if name in known:
                out.append((name, known[name]))
            else:
                self.summary.errors.append(f"{name}: there is no such folder in the {self.side} mailbox.")
        return out

    # -- the run ------------------------------------------------------------------------
    def run(self) -> BackupSummary:
        from ..net.imap import Backoff, is_connection_error
        lock = _lock(self.root)
        self.db = open_index(self.root)
        try:
            self._set_meta()
            self._connect()
            folders = self._list()
            for name, _ in folders:
                try:
                    self.total_messages += int(self.client.folder_status(name, [b"MESSAGES"])[b"MESSAGES"])
                except Exception:
                    pass
            self._job("running")
            for name, delim in folders:
                if not self.facet._checkpoint(self._paused):
                    break
                backoff = Backoff(first=0.5, cap=10)
                for attempt in range(6):
                    try:
                        if self.client is None:
                            self._connect()
                        self._folder(name, delim)
                        self.summary.folders += 1
                        break
                    except (_DiskError, AuthError):
                        raise
                    except ConnectError:
                        if attempt == 5:
                            raise                      # the server is gone: one sentence, exit 3
                        self._disconnect()
                        time.sleep(backoff.next())
                    except SwitchoverError as e:
                        self.summary.errors.append(f"{name}: {e.message}")
                        break
                    except Exception as e:
                        if is_connection_error(e) and attempt < 5:
                            self._disconnect()
                            time.sleep(backoff.next())
                            continue
                        self.summary.errors.append(f"{name}: {_words(e)}")
                        self._disconnect()
                        break
        finally:
            self._disconnect()
            if self.db is not None:
                self.db.close()
            lock.close()
        cancelled = self.facet._cancel.is_set()
        if cancelled:
            self.summary.errors.append("The backup was cancelled; run it again to finish.")
        self.summary.elapsed = time.monotonic() - self.t0
        self.summary.ok = not self.summary.errors
        self._job("cancelled" if cancelled else ("done" if self.summary.ok else "failed"), force=True)
        return self.summary

    def _set_meta(self) -> None:
        assert self.db is not None
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("username") and (meta["username"], meta.get("host")) != (
                self.account.username, self.account.imap.host):
            raise SwitchoverError(
                f"{self.root} holds the backup of {meta['username']} on {meta.get('host')}; "
                f"choose another directory for {self.account.username}.")
        with self.db:
            for k, v in (("format", "switchover-backup-1"), ("mbox", "mboxrd"),
                         ("side", self.side), ("username", self.account.username),
                         ("host", self.account.imap.host), ("scope", "all" if self.only is None else "some"),
                         ("updated", dt.datetime.now(dt.timezone.utc).isoformat())):
                if k == "scope" and v == "some":
                    self.db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (k, v))
                else:
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, v))

    def _paused(self, state: str) -> None:
        self._job(state, force=True)

    def _job(self, state: str, force: bool = False) -> None:
        if not self.job_throttle.ready(force):
            return
        el = max(time.monotonic() - self.t0, 1e-6)
        rate_m = self.summary.messages_written / el
        rate_b = self.summary.bytes_written / el
        left = max(self.total_messages - self.done_messages, 0)
        self.engine.publish(JobProgress(
            job="backup", state=state, total_messages=self.total_messages,
            total_bytes=self.total_bytes, done_messages=self.done_messages,
            done_bytes=self.done_bytes, msgs_per_s=rate_m, bytes_per_s=rate_b,
            eta_s=(left / rate_m) if rate_m > 0 else None, detail=str(self.root)))

    # -- one folder ---------------------------------------------------------------------
    def _relpath(self, name: str, delim: str | None) -> str:
        assert self.db is not None
        row = self.db.execute("SELECT relpath FROM folders WHERE name=?", (name,)).fetchone()
        if row:
            return row[0]
        base = "/".join(folder_parts(name, delim))
        rel, n = base, 1
        taken = {r[0].casefold() for r in self.db.execute("SELECT relpath FROM folders")}
        while rel.casefold() in taken:          # two names that sanitize alike
            n += 1
            rel = f"{base}~{n}"
        with self.db:
            self.db.execute("INSERT INTO folders(name, delimiter, relpath, mbox_end, updated) "
                            "VALUES (?, ?, ?, 0, ?)", (name, delim, rel, time.time()))
        return rel

    def _folder(self, name: str, delim: str | None) -> None:
        db = self.db
        assert db is not None
        client = self.client
        sel = client.select_folder(name, readonly=True)     # EXAMINE: nothing gets \Seen
        uv = int(sel[b"UIDVALIDITY"])
        exists = int(sel.get(b"EXISTS", 0))
        meta: dict[int, tuple[int, str, str | None]] = {}
        if exists:
            for uid, data in fetch_chunked(client, client.search("ALL"),
                                           [b"RFC822.SIZE", b"FLAGS", b"INTERNALDATE"]):
                if b"RFC822.SIZE" in data:
                    meta[uid] = (int(data[b"RFC822.SIZE"]), _flags_json(data.get(b"FLAGS", ())),
                                 _date_str(data.get(b"INTERNALDATE")))
        folder_bytes = sum(m[0] for m in meta.values())
        self.total_bytes += folder_bytes
        rel = self._relpath(name, delim)
        mbox_path = self.root / "mbox" / (rel + ".mbox")
        eml_dir = self.root / "eml" / rel
        mbox_end = self._repair_mbox(name, mbox_path)
        self._repair_eml(name, eml_dir)

        rows = {(r[1], r[2]): r for r in db.execute(
            "SELECT id, uidvalidity, uid, identity, eml, mbox_offset FROM messages WHERE folder=?", (name,))}
        # flags / keywords change over time: keep the index current for what is already there
        with db:
            db.executemany("UPDATE messages SET flags=?, internaldate=coalesce(?, internaldate) "
                           "WHERE folder=? AND uidvalidity=? AND uid=? AND flags IS NOT ?",
                           [(m[1], m[2], name, uv, uid, m[1]) for uid, m in meta.items() if (uv, uid) in rows])
            db.execute("UPDATE folders SET uidvalidity=?, messages=?, updated=? WHERE name=?",
                       (uv, len(meta), time.time(), name))
        # UIDVALIDITY changed: what was saved under the old one is re-identified, not re-saved
        pool: dict[str, list[int]] = {}
        for key, r in rows.items():
            if key[0] != uv:
                pool.setdefault(r[3], []).append(r[0])
        if pool:
            self._rebind_by_headers(name, uv, meta, rows, pool)
            rows = {(r[1], r[2]): r for r in db.execute(
                "SELECT id, uidvalidity, uid, identity, eml, mbox_offset FROM messages WHERE folder=?",
                (name,))}

        def needs(uid: int) -> bool:
            r = rows.get((uv, uid))
            if r is None:
                return True
            return ("eml" in self.formats and not r[4]) or ("mbox" in self.formats and r[5] is None)

        todo = [(uid, meta[uid][0]) for uid in sorted(meta) if needs(uid)]
        already = len(meta) - len(todo)
        self.summary.already_there += already
        done_bytes = sum(m[0] for uid, m in meta.items() if not needs(uid))
        self.done_messages += already
        self.done_bytes += done_bytes
        fp = _FolderProgress(self.engine, name, rel, len(meta), folder_bytes, already, done_bytes)
        fp.emit("copying" if todo else "done", force=True)
        for uids in batches(todo, self.batch_messages, self.batch_bytes):
            if not self.facet._checkpoint(lambda state: (self._paused(state), fp.emit(state, force=True))):
                return
            mbox_end = self._batch(name, uv, uids, meta, rows, pool, rel, mbox_path, eml_dir, mbox_end, fp)
            self._job("running")
        fp.emit("done", force=True)

    def _repair_mbox(self, name: str, path: Path) -> int:
        """Cut a half-written tail (kill -9); forget entries the file no longer holds."""
        db = self.db
        assert db is not None
        end = db.execute("SELECT mbox_end FROM folders WHERE name=?", (name,)).fetchone()[0] or 0
        size = path.stat().st_size if path.exists() else 0
        if size > end:
            with open(path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        elif size < end:
            # someone cut or deleted the file: fetch what it lost again
            with db:
                db.execute("UPDATE messages SET mbox_offset=NULL, mbox_length=NULL "
                           "WHERE folder=? AND mbox_offset + mbox_length > ?", (name, size))
                row = db.execute("SELECT max(mbox_offset + mbox_length) FROM messages WHERE folder=?",
                                 (name,)).fetchone()
                end = row[0] or 0
                db.execute("UPDATE folders SET mbox_end=? WHERE name=?", (end, name))
            if size > end:
                with open(path, "r+b") as f:
                    f.truncate(end)
        return end

    def _repair_eml(self, name: str, eml_dir: Path) -> None:
        """Drop tmp files and eml files of a killed run that the index doesn't know; forget
        indexed files that disappeared (they are fetched again)."""
        db = self.db
        assert db is not None
        known = {r[0]: r[1] for r in db.execute("SELECT eml, id FROM messages WHERE folder=? AND eml IS NOT NULL",
                                                (name,))}
        if eml_dir.is_dir():
            for p in eml_dir.iterdir():
                if not p.is_file():
                    continue
                relp = p.relative_to(self.root).as_posix()
                if p.name.startswith(".tmp-") or (_EML_NAME.match(p.name) and relp not in known):
                    try:
                        p.unlink()
                    except OSError:
                        pass
        lost = [(i,) for relp, i in known.items() if not (self.root / relp).is_file()]
        if lost:
            with db:
                db.executemany("UPDATE messages SET eml=NULL WHERE id=?", lost)

    def _rebind_by_headers(self, name: str, uv: int, meta: dict, rows: dict, pool: dict) -> None:
        from ..mail.identity import HEADER_FETCH, identity_from_headers
        db = self.db
        assert db is not None
        fresh = [uid for uid in sorted(meta) if (uv, uid) not in rows]
        for i in range(0, len(fresh), 500):
            resp = self.client.fetch(fresh[i:i + 500], [HEADER_FETCH, b"RFC822.SIZE"])
            binds = []
            for uid, data in resp.items():
                ident = identity_from_headers(fetched_headers(data), int(data.get(b"RFC822.SIZE", 0)))
                ids = pool.get(ident) if ident else None
                if ids:
                    binds.append((uv, uid, meta[uid][1], meta[uid][2], ids.pop(0)))
            if binds:
                self._rebind(name, binds)

    def _rebind(self, name: str, binds: list[tuple]) -> None:
        db = self.db
        assert db is not None
        old = [db.execute("SELECT uidvalidity, uid FROM messages WHERE id=?", (b[4],)).fetchone()
               for b in binds]
        with db:
            db.executemany("UPDATE messages SET uidvalidity=?, uid=?, flags=?, "
                           "internaldate=coalesce(?, internaldate) WHERE id=?", binds)
        root = str(self.root)
        self.facet._state(self.engine.store.executemany(
            "UPDATE backups SET uidvalidity=?, uid=? WHERE root=? AND folder=? AND uidvalidity=? AND uid=?",
            [(b[0], b[1], root, name, o[0], o[1]) for b, o in zip(binds, old)]))

    def _batch(self, name: str, uv: int, uids: list[int], meta: dict, rows: dict, pool: dict,
               rel: str, mbox_path: Path, eml_dir: Path, mbox_end: int, fp: "_FolderProgress") -> int:
        db = self.db
        assert db is not None
        resp = self.client.fetch(uids, [b"BODY.PEEK[]"])     # PEEK: never marks read
        now = time.time()
        entries: list[bytes] = []
        records: list[list[Any]] = []
        fsync_dirs: set[Path] = set()
        pos = mbox_end
        for uid in uids:
            data = resp.get(uid)
            raw = data.get(b"BODY[]") if data else None
            if raw is None:                                   # expunged meanwhile
                continue
            size, flags, idate = meta[uid]
            ident = identity_of(raw)
            row = rows.get((uv, uid))
            if row is None and pool.get(ident):              # UIDVALIDITY change, no Message-ID
                rid = pool[ident].pop(0)
                self._rebind(name, [(uv, uid, flags, idate, rid)])
                row = db.execute("SELECT id, uidvalidity, uid, identity, eml, mbox_offset FROM messages "
                                 "WHERE id=?", (rid,)).fetchone()
                rows[(uv, uid)] = row
                if not (("eml" in self.formats and not row[4]) or ("mbox" in self.formats and row[5] is None)):
                    self.summary.already_there += 1
                    fp.already += 1
                    fp.done += 1
                    continue
            eml_rel = row[4] if row else None
            off = length = None
            if "eml" in self.formats and not eml_rel:
                eml_rel = self._write_eml(eml_dir, uv, uid, raw)
                fsync_dirs.add(eml_dir)
            if "mbox" in self.formats and (row is None or row[5] is None):
                when = dt.datetime.fromisoformat(idate) if idate else None
                entry = mbox_entry(raw, when)
                off, length = pos, len(entry)
                pos += length
                entries.append(entry)
            records.append([name, uv, uid, ident, flags, idate, len(raw), sha256(raw), eml_rel, off, length, now])
            self.summary.messages_written += 1
            self.summary.bytes_written += len(raw)
            fp.add(len(raw))
        if entries:
            try:
                make_private_dirs(mbox_path.parent)
                with open_private(mbox_path, "ab") as f:
                    if f.tell() != mbox_end:
                        raise _DiskError(f"{mbox_path} changed while the backup was writing it.")
                    for e in entries:
                        f.write(e)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                raise _DiskError(f"Writing {mbox_path} failed ({e.strerror}).") from None
        for d in fsync_dirs:
            _fsync_dir(d)
        with db:
            db.executemany(
                "INSERT INTO messages (folder, uidvalidity, uid, identity, flags, internaldate, size, "
                "sha256, eml, mbox_offset, mbox_length, done) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (folder, uidvalidity, uid) DO UPDATE SET eml=coalesce(excluded.eml, eml), "
                "mbox_offset=coalesce(excluded.mbox_offset, mbox_offset), "
                "mbox_length=coalesce(excluded.mbox_length, mbox_length), flags=excluded.flags, "
                "internaldate=excluded.internaldate, done=excluded.done", records)
            db.execute("UPDATE folders SET mbox_end=?, updated=? WHERE name=?", (pos, now, name))
        root = str(self.root)
        mbox_rel = mbox_path.relative_to(self.root).as_posix()
        self.facet._state(self.engine.store.executemany(
            "INSERT INTO backups (root, folder, uidvalidity, uid, identity, path, mbox_offset, size, "
            "sha256, done) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (root, folder, uidvalidity, uid) "
            "DO UPDATE SET path=coalesce(excluded.path, path), "
            "mbox_offset=coalesce(excluded.mbox_offset, mbox_offset), done=excluded.done",
            [(root, r[0], r[1], r[2], r[3], r[8] or (mbox_rel if r[9] is not None else None),
              r[9], r[6], r[7], r[11]) for r in records]))
        self.done_messages += len(records)
        self.done_bytes += sum(r[6] for r in records)
        fp.emit("copying")
        return pos

    def _write_eml(self, eml_dir: Path, uv: int, uid: int, raw: bytes) -> str:
        slug = subject_slug(raw)
        fname = f"{uv}-{uid}" + (f"-{slug}" if slug else "") + ".eml"
        target = eml_dir / fname
        tmp = eml_dir / f".tmp-{fname}"
        try:
            make_private_dirs(eml_dir)
            with open_private(tmp, "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as e:
            raise _DiskError(f"Writing {target} failed ({e.strerror}).") from None
        return target.relative_to(self.root).as_posix()


class _FolderProgress:
    """Throttled FolderProgress events (~5/s) for one folder of one job."""

    def __init__(self, engine: "Engine", source: str, destination: str, total: int, total_bytes: int,
                 already: int, already_bytes: int, job: str = "backup") -> None:
        self.engine, self.job = engine, job
        self.source, self.destination = source, destination
        self.total, self.total_bytes = total, total_bytes
        self.already = already
        self.done, self.done_bytes = already, already_bytes
        self.new_bytes = 0
        self.new = 0
        self.t0 = time.monotonic()
        self.throttle = Throttle()

    def add(self, nbytes: int) -> None:
        self.done += 1
        self.new += 1
        self.done_bytes += nbytes
        self.new_bytes += nbytes

    def emit(self, state: str, force: bool = False, refused: int = 0, errors: int = 0) -> None:
        if not self.throttle.ready(force):
            return
        el = max(time.monotonic() - self.t0, 1e-6)
        mps, bps = self.new / el, self.new_bytes / el
        left = max(self.total_bytes - self.done_bytes, 0)
        self.engine.publish(FolderProgress(
            job=self.job, source=self.source, destination=self.destination, state=state,
            total_messages=self.total, total_bytes=self.total_bytes, done_messages=self.done,
            done_bytes=self.done_bytes, already_there=self.already, refused=refused, errors=errors,
            msgs_per_s=mps, bytes_per_s=bps, eta_s=(left / bps) if bps > 0 and left else None))


def _words(e: BaseException) -> str:
    text = str(e)
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return (text.strip() or e.__class__.__name__).rstrip(".") + "."


# -- verify --------------------------------------------------------------------------------
_MAX_DETAILS = 10


def _verify(engine: "Engine", root: Path) -> BackupReport:
    """Check every indexed file against its checksum, and the backup against the live
    mailbox it was made of: mail on the server the backup lacks is a problem, and so is
    any comparison that could not be made (a check that did not run is not a pass)."""
    db = open_index(root, create=False)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        folders = db.execute("SELECT name, relpath, uidvalidity, mbox_end FROM folders ORDER BY name").fetchall()
        live = _live(engine, meta, [f[0] for f in folders])
        report = BackupReport(ok=False, live_checked=live.reached and not live.unchecked)
        report.problems.extend(live.problems)
        report.unchecked.extend(live.unchecked)
        for name, rel, uv, mbox_end in folders:
            report.folders.append(_verify_folder(db, root, name, rel, uv, mbox_end,
                                                 live.folders if live.reached else None,
                                                 report.problems))
        if live.reached and meta.get("scope") == "all":
            for name in sorted(set(live.folders) - {f[0] for f in folders}):
                n = len(live.folders[name][1])
                if n:
                    report.problems.append(f"{name}: the folder ({n} messages) is on the server but not in the backup.")
                    report.folders.append(FolderCheck(name, n, 0, n, 0))
        if not folders:
            report.problems.append(f"The backup in {root} is empty: it holds no folder.")
        report.ok = not report.problems
        return report
    finally:
        db.close()


@dataclass
class _Live:
    """What the source mailbox holds now, as far as it could be read."""
    reached: bool = False
    folders: dict[str, tuple[int, set[int]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)   # what could not be compared


def _verify_folder(db: sqlite3.Connection, root: Path, name: str, rel: str, uv: int | None,
                   mbox_end: int, live: dict | None, problems: list[str]) -> FolderCheck:
    rows = db.execute("SELECT uidvalidity, uid, size, sha256, eml, mbox_offset, mbox_length FROM messages "
                      "WHERE folder=? ORDER BY mbox_offset, uid", (name,)).fetchall()
    found = missing = corrupt = 0
    details: list[str] = []
    mbox_path = root / "mbox" / (rel + ".mbox")
    mbox = open(mbox_path, "rb") if mbox_path.is_file() else None
    try:
        mbox_size = mbox_path.stat().st_size if mbox else 0
        if mbox and mbox_size > mbox_end:
            problems.append(f"{name}: {mbox_path.relative_to(root)} has {mbox_size - mbox_end} bytes after the "
                            f"last indexed message (an interrupted run); run the backup again to finish it.")
        for r_uv, uid, size, digest, eml, off, length in rows:
            state = 0                                     # 0 ok, 1 missing, 2 corrupt
            if eml:
                p = root / eml
                if not p.is_file():
                    state = 1
                    details.append(f"{eml} is missing")
                elif sha256(p.read_bytes()) != digest:
                    state = 2
                    details.append(f"{eml} does not match its checksum")
            if off is not None:
                where = f"{mbox_path.relative_to(root)} at offset {off}"
                if mbox is None or off + length > mbox_size:
                    state = max(state, 1)
                    details.append(f"{where} is missing")
                else:
                    mbox.seek(off)
                    msg = entry_message(mbox.read(length), size)
                    if msg is None:
                        state = 2
                        details.append(f"{where} does not start with a 'From ' line")
                    elif sha256(msg) != digest:
                        state = 2
                        details.append(f"{where} does not match its checksum")
            if state == 0:
                found += 1
            elif state == 1:
                missing += 1
            else:
                corrupt += 1
    finally:
        if mbox:
            mbox.close()
    expected = len(rows)
    if missing or corrupt:
        shown = "; ".join(details[:_MAX_DETAILS]) + (" ..." if len(details) > _MAX_DETAILS else "")
        problems.append(f"{name}: {missing} missing and {corrupt} damaged of {expected} messages ({shown}).")
    if live is not None and name in live:
        live_uv, uids = live[name]
        if live_uv == uv:
            new = len(uids - {r[1] for r in rows if r[0] == uv})
        else:
            new = max(0, len(uids) - expected)
        if new:
            problems.append(f"{name}: {new} messages on the server are not in the backup yet; "
                            f"run the backup again.")
            missing += new
            expected += new
    return FolderCheck(name, expected, found, missing, corrupt)


def _live(engine: "Engine", meta: dict, names: list[str]) -> _Live:
    """{folder: (uidvalidity, set(uids))} of the source server. A folder that cannot be
    selected is named and the others are still compared (one refused SELECT used to drop
    the whole comparison, and with it the news that newer mail was not backed up)."""
    from ..net.imap import close, connect
    from ..net.mailboxes import list_folders
    side = meta.get("side", "old")
    out = _Live()
    what = f"The {side} mailbox could not be compared with the backup"
    try:
        account = engine.account(side)
        problem = account.secret_problem()        # no password to be had: say so, not "verified"
    except Exception as e:
        account, problem = None, _words(e)
    if account is None or problem:
        out.problems.append(f"{what} ({(problem or '').rstrip('.')}); mail newer than the backup was not "
                            f"looked for.")
        out.unchecked.append(f"the {side} mailbox")
        return out
    if meta.get("username") and (meta.get("username"), meta.get("host")) != (account.username, account.imap.host):
        out.problems.append(
            f"This is the backup of {meta.get('username')} on {meta.get('host')}, not of the {side} mailbox "
            f"in the config ({account.username} on {account.imap.host}): its files were checked, but not "
            f"whether it holds everything that mailbox holds.")
        out.unchecked.append(f"{meta.get('username')} on {meta.get('host')}")
        return out
    client = None
    try:
        client = connect(account, timeout=30)
        for f in list_folders(client):
            if not f.selectable:
                continue
            try:
                sel = client.select_folder(f.name, readonly=True)
                uids = set(client.search("ALL")) if int(sel.get(b"EXISTS", 0)) else set()
            except Exception as e:
                if _is_gone(e):
                    raise
                out.problems.append(f"{f.name}: the folder could not be compared with the backup "
                                    f"({_words(e).rstrip('.')}); mail newer than the backup may be missing.")
                out.unchecked.append(f.name)
                continue
            out.folders[f.name] = (int(sel[b"UIDVALIDITY"]), uids)
        out.reached = True
    except SwitchoverError as e:
        detail = e.message.rstrip(".")
        detail = detail[len(f"The {side} mailbox: "):] if detail.startswith(f"The {side} mailbox: ") else detail
        out.problems.append(f"{what} ({detail}); mail newer than the backup was not looked for.")
        out.unchecked.append(f"the {side} mailbox")
    except Exception as e:
        out.problems.append(f"{what} ({_words(e).rstrip('.')}); mail newer than the backup was not looked for.")
        out.unchecked.append(f"the {side} mailbox")
    finally:
        close(client)
    return out


def _is_gone(e: BaseException) -> bool:
    from ..net.imap import is_connection_error
    return is_connection_error(e)
