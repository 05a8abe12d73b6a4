"""One backup run: every folder of a mailbox into ``.mbox`` files and/or ``.eml`` trees
(the directory layout is core/backup/layout.py, the index core/backup/index.py).

Order of writes, so that ``kill -9`` at any point loses nothing and duplicates nothing:
files first (mbox appended + fsync, eml tmp + fsync + rename), then one index commit per
batch recording the new mbox end offset, then the state file's mirror. A rerun truncates
an mbox back to the recorded end and rewrites (same name) any eml that was not indexed
yet. Nothing on the server changes: folders are EXAMINEd and bodies fetched with PEEK.

The run is an asyncio job (core/jobs.py): the blocking IMAP and disk work runs in a
worker thread one batch at a time, and between batches the job may pause (nothing more
is written once the batch in flight ends) or be cancelled (the folder under way ends
``cancelled``; a rerun resumes from the index). A dropped connection is reopened
through core/net/retry.py; a refused login is not retried.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import imapclient

from ..config import Account
from ..context import Blocking
from ..errors import AuthError, ConnectError, SwitchoverError, sentence
from ..events import EventBus, JobProgress
from ..jobs import Cancelled, Job
from ..mail.identity import HEADER_FETCH, identity_from_headers, identity_of
from ..net.imap import fetch_chunked, header_item
from ..net.mailboxes import list_folders
from ..net.retry import Stopped, is_connection_error
from ..progress import Meter, Tally, batches
from .index import BackupIndex, IndexRow, Rebind, Record, StateMirror
from .layout import BackupDir, DiskError, fsync_dir, sha256
from .mbox import mbox_entry
from .session import Session

T = TypeVar("T")

#: a folder is tried this often when the connection keeps dropping under it
FOLDER_ATTEMPTS = 6


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
    #: stopped by a cancel (not an error: a rerun resumes where this one stopped)
    cancelled: bool = False

    def describe(self) -> str:
        text = (f"{self.messages_written:,} messages written, {self.already_there:,} already there, "
                f"{self.bytes_written / 1e6:,.1f} MB in {self.folders} folders, {len(self.errors)} errors, "
                f"{self.elapsed:,.1f} s → {self.root}")
        return text + ("; cancelled — run the backup again to finish it" if self.cancelled else "")

    def record(self) -> dict[str, Any]:
        """What the run record (``runs.summary``) keeps."""
        return {"root": str(self.root), "written": self.messages_written,
                "already_there": self.already_there, "errors": self.errors[:20], "cancelled": self.cancelled}


#: a message's (size, flags as JSON, INTERNALDATE as ISO text) on the server
Meta = tuple[int, str, "str | None"]


@dataclass
class _Folder:
    """What the preparation of one folder found (the batches then write ``todo``)."""
    name: str
    rel: str
    uidvalidity: int
    meta: dict[int, Meta]
    rows: dict[tuple[int, int], IndexRow]
    #: rows saved under an older UIDVALIDITY, by identity, not matched yet
    pool: dict[str, list[int]]
    mbox_end: int
    todo: list[tuple[int, int]]
    rebinds: list[tuple[list[Rebind], list[tuple[int, int]]]] = field(default_factory=list)


def _flags_json(flags: Iterable[Any]) -> str:
    return json.dumps(sorted(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f)
                             for f in flags if f not in (b"\\Recent", "\\Recent")), ensure_ascii=False)


def _date_str(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else None


class BackupWriter:
    """One run of ``Backups.backup``: built per run, used once."""

    def __init__(self, *, root: Path, formats: tuple[str, ...], side: str, only: list[str] | None,
                 account: Account, job: Job, bus: EventBus, blocking: Blocking, mirror: StateMirror,
                 batch_messages: int, batch_bytes: int) -> None:
        self.dir = BackupDir(root)
        self.root = root
        self.formats = formats
        self.side = side
        self.only = only
        self.account = account
        self.job = job
        self.bus = bus
        self.blocking = blocking
        self.mirror = mirror
        self.batch_messages = batch_messages
        self.batch_bytes = batch_bytes
        self.summary = BackupSummary(root=root)
        self.index: BackupIndex | None = None
        self.session = Session(account, side, bus, blocking, stopped=lambda: job.cancelled)
        self.meter = Meter()
        self.total_messages = self.total_bytes = self.done_messages = self.done_bytes = 0
        #: (folder, uidvalidity, uid) this run wrote or found there: a retried folder
        #: does not count them again
        self._counted: set[tuple[str, int, int]] = set()
        self._totalled: set[str] = set()
        self.t0 = time.monotonic()

    # -- the run --------------------------------------------------------------------------
    async def run(self) -> BackupSummary:
        self.dir.create()
        lock = self.dir.lock()
        try:
            self.index = await self._thread(BackupIndex.open, self.root)
            await self._thread(self._claim)
            await self.session.open()
            folders = await self._thread(self._list)
            self.total_messages = await self._thread(self._count, folders)
            self.job.started()
            for name, delim in folders:
                await self.job.checkpoint()
                await self._folder_with_retries(name, delim)
        except (Cancelled, Stopped):
            self.summary.cancelled = True
        finally:
            await self.session.drop()
            if self.index is not None:
                self.index.close()
            lock.close()
        s = self.summary
        s.cancelled = s.cancelled or self.job.cancelled
        s.elapsed = time.monotonic() - self.t0
        s.ok = not s.errors and not s.cancelled
        return s

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.blocking.run_to_end(fn, *args)

    def _claim(self) -> None:
        """One backup directory holds one account's mail."""
        assert self.index is not None
        meta = self.index.meta()
        acct = self.account
        if meta.get("username") and (meta["username"], meta.get("host")) != (acct.username, acct.imap.host):
            raise SwitchoverError(f"{self.root} holds the backup of {meta['username']} on {meta.get('host')}; "
                                  f"choose another directory for {acct.username}.")
        self.index.write_meta({
            "format": "switchover-backup-1", "mbox": "mboxrd", "side": self.side, "username": acct.username,
            "host": acct.imap.host, "scope": "all" if self.only is None else "some",
            "updated": dt.datetime.now(dt.timezone.utc).isoformat()},
            keep=() if self.only is None else ("scope",))

    def _imap(self) -> imapclient.IMAPClient:
        return self.session.get()

    def _list(self) -> list[tuple[str, str | None]]:
        infos = [(f.name, f.delimiter) for f in list_folders(self._imap()) if f.selectable]
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

    def _count(self, folders: list[tuple[str, str | None]]) -> int:
        total = 0
        for name, _ in folders:
            try:
                total += int(self._imap().folder_status(name, [b"MESSAGES"])[b"MESSAGES"])
            except Exception:
                pass            # a folder that cannot say: its count comes when it is read
        return total

    # -- one folder -----------------------------------------------------------------------
    async def _folder_with_retries(self, name: str, delim: str | None) -> None:
        error: BaseException | None = None
        for attempt in range(FOLDER_ATTEMPTS):
            last = attempt == FOLDER_ATTEMPTS - 1
            try:
                if self.session.client is None:
                    await self.session.open(error)
                await self._folder(name, delim)
                self.summary.folders += 1
                return
            except (DiskError, AuthError, Cancelled, Stopped):
                raise
            except ConnectError as e:
                if last:
                    raise                      # the server is gone: one sentence, exit 3
                await self.session.drop()
                error = e
            except SwitchoverError as e:
                self.summary.errors.append(f"{name}: {e.message}")
                return
            except Exception as e:
                await self.session.drop()
                if is_connection_error(e) and not last:
                    error = e
                    continue
                self.summary.errors.append(f"{name}: {sentence(e)}.")
                return

    async def _folder(self, name: str, delim: str | None) -> None:
        f = await self._thread(self._prepare, name, delim)
        for binds, old in f.rebinds:
            await self.mirror.rebind(self.root, name, binds, old)
        f.rebinds.clear()
        tally = Tally("backup", name, f.rel, total=len(f.meta), total_bytes=sum(m[0] for m in f.meta.values()))
        # counted once per run, whatever a retry of the folder (after a drop) finds again
        todo = {uid for uid, _ in f.todo}
        counted = {uid for uid in f.meta if (name, f.uidvalidity, uid) in self._counted}
        already = set(f.meta) - todo - counted
        tally.add(len(counted), sum(f.meta[uid][0] for uid in counted))
        tally.found(len(already), sum(f.meta[uid][0] for uid in already))
        self._count_once(name, f.uidvalidity, already)
        if name not in self._totalled:
            self._totalled.add(name)
            self.total_bytes += tally.total_bytes
        self.summary.already_there += len(already)
        self.done_messages += len(already)
        self.done_bytes += sum(f.meta[uid][0] for uid in already)
        self.bus.publish(tally.event("copying" if f.todo else "done"))
        try:
            for part in batches(f.todo, self.batch_messages, self.batch_bytes, size=lambda t: t[1]):
                async with self.job.piece():
                    records, found = await self._thread(self._batch, f, [uid for uid, _ in part])
                    for binds, old in f.rebinds:
                        await self.mirror.rebind(self.root, name, binds, old)
                    f.rebinds.clear()
                    await self.mirror.record(self.root, records, self.dir.rel(self.dir.mbox_path(f.rel)))
                written = sum(r.size for r in records)
                self._count_once(name, f.uidvalidity, [r.uid for r in records] + found)
                self.summary.messages_written += len(records)       # counted once committed
                self.summary.bytes_written += written
                self.summary.already_there += len(found)
                tally.found(len(found))
                tally.add(len(records), written)
                self.meter.add(len(records), written)
                self.done_messages += len(records) + len(found)
                self.done_bytes += written
                self.bus.publish(tally.event("copying", self.meter.rate()))
                self.publish_job(self.job.state)
        except (Cancelled, Stopped):
            self.bus.publish(tally.event("cancelled"))
            raise
        self.bus.publish(tally.event("done"))

    def _count_once(self, name: str, uidvalidity: int, uids: Iterable[int]) -> None:
        self._counted.update((name, uidvalidity, uid) for uid in uids)

    def _prepare(self, name: str, delim: str | None) -> _Folder:
        """EXAMINE the folder (nothing gets \\Seen), read sizes, flags and dates, repair
        what a killed run left, and decide what is still to write."""
        index = self.index
        assert index is not None
        client = self._imap()
        sel = client.select_folder(name, readonly=True)
        uv = int(sel[b"UIDVALIDITY"])
        meta: dict[int, Meta] = {}
        if int(sel.get(b"EXISTS", 0)):
            for uid, data in fetch_chunked(client, client.search("ALL"),
                                           [b"RFC822.SIZE", b"FLAGS", b"INTERNALDATE"]):
                if b"RFC822.SIZE" in data:
                    meta[uid] = (int(data[b"RFC822.SIZE"]), _flags_json(data.get(b"FLAGS", ())),
                                 _date_str(data.get(b"INTERNALDATE")))
        rel = index.relpath(name, delim)
        mbox_end = index.reconcile(self.dir, name, rel)
        rows = index.rows(name)
        index.refresh(name, uv, meta, rows)
        # UIDVALIDITY changed: what was saved under the old one is re-identified, not re-saved
        pool: dict[str, list[int]] = {}
        for key, r in rows.items():
            if key[0] != uv:
                pool.setdefault(r.identity, []).append(r.id)
        f = _Folder(name, rel, uv, meta, rows, pool, mbox_end, [])
        if pool:
            self._rebind_by_headers(f)
            f.rows = index.rows(name)
        f.todo = [(uid, meta[uid][0]) for uid in sorted(meta) if self._needs(f.rows.get((uv, uid)))]
        return f

    def _needs(self, row: IndexRow | None) -> bool:
        if row is None:
            return True
        return ("eml" in self.formats and not row.eml) or ("mbox" in self.formats and row.mbox_offset is None)

    def _rebind_by_headers(self, f: _Folder) -> None:
        client = self._imap()
        fresh = [uid for uid in sorted(f.meta) if (f.uidvalidity, uid) not in f.rows]
        for i in range(0, len(fresh), 500):
            resp = client.fetch(fresh[i:i + 500], [HEADER_FETCH, b"RFC822.SIZE"])
            binds: list[Rebind] = []
            for uid, data in resp.items():
                ident = identity_from_headers(header_item(data), int(data.get(b"RFC822.SIZE", 0)))
                ids = f.pool.get(ident) if ident else None
                if ids:
                    binds.append((f.uidvalidity, uid, f.meta[uid][1], f.meta[uid][2], ids.pop(0)))
            self._rebind(f, binds)

    def _rebind(self, f: _Folder, binds: list[Rebind]) -> None:
        if binds:
            assert self.index is not None
            f.rebinds.append((binds, self.index.rebind(binds)))

    # -- one batch (worker thread) --------------------------------------------------------
    def _batch(self, f: _Folder, uids: list[int]) -> tuple[list[Record], list[int]]:
        """Fetch ``uids``, write their files, commit their index rows; the rows, and how
        many were found complete under an older UIDVALIDITY."""
        index = self.index
        assert index is not None
        resp = self._imap().fetch(uids, [b"BODY.PEEK[]"])     # PEEK: never marks read
        now = time.time()
        entries: list[bytes] = []
        records: list[Record] = []
        eml_dir = self.dir.eml_dir(f.rel)
        wrote_eml = False
        found: list[int] = []
        pos = f.mbox_end
        for uid in uids:
            data = resp.get(uid)
            raw = data.get(b"BODY[]") if data else None
            if raw is None:                                   # expunged meanwhile
                continue
            size, flags, idate = f.meta[uid]
            ident = identity_of(raw)
            row = f.rows.get((f.uidvalidity, uid))
            if row is None and f.pool.get(ident):             # UIDVALIDITY change, no Message-ID
                rid = f.pool[ident].pop(0)
                self._rebind(f, [(f.uidvalidity, uid, flags, idate, rid)])
                row = f.rows[(f.uidvalidity, uid)] = index.row(rid)
                if not self._needs(row):
                    found.append(uid)
                    continue
            eml_rel = row.eml if row else None
            off = length = None
            if "eml" in self.formats and not eml_rel:
                eml_rel = self.dir.write_eml(eml_dir, f.uidvalidity, uid, raw)
                wrote_eml = True
            if "mbox" in self.formats and (row is None or row.mbox_offset is None):
                entry = mbox_entry(raw, dt.datetime.fromisoformat(idate) if idate else None)
                off, length = pos, len(entry)
                pos += length
                entries.append(entry)
            records.append(Record(f.name, f.uidvalidity, uid, ident, flags, idate, len(raw), sha256(raw),
                                  eml_rel, off, length, now))
        if entries:
            self.dir.append_mbox(self.dir.mbox_path(f.rel), f.mbox_end, entries)
        if wrote_eml:
            fsync_dir(eml_dir)
        index.commit_batch(f.name, records, pos)
        f.mbox_end = pos
        return records, found

    # -- progress -------------------------------------------------------------------------
    def job_progress(self, state: str) -> JobProgress:
        rate = self.meter.rate()
        left = max(self.total_messages - self.done_messages, 0)
        return JobProgress(
            job="backup", state=state, total_messages=max(self.total_messages, self.done_messages),
            total_bytes=self.total_bytes, done_messages=self.done_messages, done_bytes=self.done_bytes,
            msgs_per_s=rate.msgs_per_s, bytes_per_s=rate.bytes_per_s,
            eta_s=(left / rate.msgs_per_s) if rate.msgs_per_s > 0 else None, detail=str(self.root))

    def publish_job(self, state: str) -> None:
        self.bus.publish(self.job_progress(state))

