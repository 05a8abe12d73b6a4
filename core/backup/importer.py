"""Importing local mail files into one folder of a mailbox (``Backups.import_path``).

What is read and how (mbox flavours, eml trees, flags and dates from headers) is
core/backup/sources.py. Decisions made here:

* **A switchover backup's own mail** (found by SHA-256 in an ``index.sqlite`` next to
  or above the source) is uploaded with its exact original bytes, flags and
  INTERNALDATE instead of the reconstruction from headers.
* **Flags** otherwise from the headers when present, else ``\\Seen`` (an imported
  archive should not flood the new mailbox with unread mail). **Received date**: the
  backup index's INTERNALDATE, else the ``Date`` header, else the mbox ``From `` line's
  date, else the file's modification time.
* **Dedup.** The destination folder is re-identified (core.mail.identity) at every start
  and after every reconnect, and a source message is uploaded only when the folder holds
  fewer copies of its identity than the sources so far (multiset), so a rerun, or a
  rerun after kill -9, uploads nothing twice.
* **Recorded before sent.** Each upload is recorded in the state's ``imports`` table
  (this module owns it) and in ``placements`` before its bytes leave (``pending`` /
  ``sending``) and settled after (``uploaded`` / ``refused``).

The import is an asyncio job (core/jobs.py) like the migration: files are read and
messages appended in a worker thread one batch at a time; pause and cancel take effect
between batches.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import imapclient

from ..config import Account
from ..context import Blocking
from ..errors import SwitchoverError, sentence
from ..events import EventBus, JobProgress
from ..jobs import Cancelled, Job
from ..mail.dates import internaldate
from ..mail.identity import HEADER_FETCH, identity_from_content, identity_from_headers, identity_of
from ..net.imap import fetch_chunked, header_item
from ..net.mailboxes import ensure_folder, list_folders, namespace_of
from ..net.retry import Stopped, is_connection_error
from ..net.wire import AppendResult, Wire
from ..placements import Placements
from ..progress import Meter, Tally, batches
from ..store import Store
from .index import BackupIndex
from .ledger import ImportLedger, Settled
from .session import Session
from .sources import Source, header_date, iter_sources, looks_like_mail, status_flags, to_crlf

T = TypeVar("T")

BATCH_MESSAGES = 50
BATCH_BYTES = 8 * 2**20
#: a batch is tried this often when the connection keeps dropping under it
ATTEMPTS = 6


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
    #: stopped by a cancel (not an error: a rerun uploads only what is still missing)
    cancelled: bool = False

    def describe(self) -> str:
        text = (f"{self.uploaded:,} uploaded, {self.already_there:,} already there, "
                f"{len(self.refused):,} refused, {len(self.malformed):,} malformed in {self.elapsed:,.1f} s")
        return text + ("; cancelled — run the import again to finish it" if self.cancelled else "")

    def record(self, path: Path) -> dict[str, Any]:
        return {"path": str(path), "folder": self.folder, "uploaded": self.uploaded,
                "already_there": self.already_there, "refused": len(self.refused),
                "malformed": len(self.malformed), "cancelled": self.cancelled}


@dataclass
class _Item:
    ref: str
    raw: bytes
    identity: str
    flags: bytes
    date: bytes | None
    row: int | None = None           # its ``imports`` row, once recorded
    placement: int | None = None     # its ``placements`` row, once recorded


def _keywords(flags: bytes) -> bool:
    return any(not f.startswith(b"\\") for f in flags.split())


def _system_flags(flags: bytes) -> bytes:
    return b" ".join(f for f in flags.split() if f.startswith(b"\\"))


def _capitalized(reason: str) -> str:
    """A reason from sources.py ("the file is empty") as a sentence."""
    text = reason.strip() or "it could not be read"
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


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


class Importer:
    """One run of ``Backups.import_path``: built per run, used once."""

    def __init__(self, *, path: Path, to_folder: str, side: str, account: Account, job: Job,
                 bus: EventBus, blocking: Blocking, store: Store, placements: Placements) -> None:
        self.path = path
        self.to_folder = to_folder.strip()
        self.side = side
        self.account = account
        self.job = job
        self.bus = bus
        self.blocking = blocking
        self.ledger = ImportLedger(store)
        self.placements = placements
        self.summary = ImportSummary()
        self.session = Session(account, side, bus, blocking, stopped=lambda: job.cancelled)
        self.wire: Wire | None = None
        self.folder = ""
        self.delim = "/"
        self.have: Counter[str] = Counter()        # destination copies not matched yet
        self.consumed: Counter[str] = Counter()    # destination copies this run accounted for
        self.tally = Tally("import", str(path), "")
        self.meter = Meter()

    def check(self) -> None:
        """What is wrong with the request, before anything runs."""
        if not self.to_folder:
            raise SwitchoverError("Name the folder to import into (--to FOLDER).")
        if not self.path.exists():
            raise SwitchoverError(f"{self.path} does not exist.")

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.blocking.run_to_end(fn, *args)

    # -- the run ------------------------------------------------------------------------
    async def run(self) -> ImportSummary:
        t0 = time.monotonic()
        lookup = await self._thread(BackupIndex.near, self.path.resolve())
        try:
            await self._connect()
            self.summary.folder = self.tally.destination = self.folder
            parts = batches(self._items(iter_sources(self.path), lookup), BATCH_MESSAGES, BATCH_BYTES,
                            size=lambda it: len(it.raw))
            self.job.started()
            while True:
                await self.job.checkpoint()
                batch = await self._thread(next, parts, None)
                if batch is None:
                    break
                async with self.job.piece():
                    await self._flush(batch)
                self.bus.publish(self.tally.event("copying", self.meter.rate()))
                self.publish_job(self.job.state)
        except (Cancelled, Stopped):
            self.summary.cancelled = True
        finally:
            if lookup is not None:
                lookup.close()
            await self._drop()
        s = self.summary
        s.cancelled = s.cancelled or self.job.cancelled
        s.elapsed = time.monotonic() - t0
        s.ok = not s.refused and not s.malformed and not s.cancelled
        self.tally.refused, self.tally.errors = len(s.refused), len(s.malformed)
        self.bus.publish(self.tally.event("cancelled" if s.cancelled else ("done" if s.ok else "errors")))
        return s

    def _items(self, sources: Iterator[Source], lookup: BackupIndex | None) -> Iterator[_Item]:
        """The messages to upload, read one at a time (in the worker thread)."""
        for src in sources:
            item = self._prepare(src, lookup)
            if item is not None:
                self.summary.messages += 1
                self.tally.total += 1
                self.tally.total_bytes += len(item.raw)
                yield item

    def _prepare(self, src: Source, lookup: BackupIndex | None) -> _Item | None:
        if src.raw is None:
            self.summary.malformed.append((src.ref, _capitalized(src.reason)))
            return None
        known = lookup.known(src.raw) if lookup is not None else None
        if known is None and lookup is not None and src.from_mbox and src.raw.endswith(b"\n"):
            # our mbox writer ends a message lacking a final newline with one
            known = lookup.known(src.raw[:-1])
            if known is not None:
                src.raw = src.raw[:-1]
        when: dt.datetime | None = None
        if known is not None:
            raw = src.raw                       # switchover's own backup: exact bytes
            flags, when = known
        else:
            why = looks_like_mail(src.raw)
            if why:
                self.summary.malformed.append((src.ref, _capitalized(why)))
                return None
            raw = to_crlf(src.raw)
            found = status_flags(raw)
            flags = ["\\Seen"] if found is None else found
        when = (when or header_date(raw) or src.from_date
                or dt.datetime.fromtimestamp(src.mtime or time.time(), dt.timezone.utc))
        return _Item(src.ref, raw, identity_of(raw), " ".join(flags).encode("utf-8"), internaldate(when))

    # -- connection and destination -------------------------------------------------------
    async def _connect(self, error: BaseException | None = None) -> None:
        """(Re)open the connection, find the destination folder, learn what it holds."""
        await self.session.open(error)
        await self._thread(self._destination)

    def _destination(self) -> None:
        client = self.session.get()
        if not self.folder:
            prefix, delim = namespace_of(client)
            names = {f.name for f in list_folders(client)}
            self.folder = dest_name(self.to_folder, prefix, delim, names)
            self.delim = delim
        ensure_folder(client, self.folder, self.delim)
        self.wire = Wire(client)
        # after a reconnect, what this run already matched or uploaded is spoken for
        self.have = self._identify(client) - self.consumed

    def _identify(self, client: imapclient.IMAPClient) -> Counter[str]:
        """Identities the destination folder holds now (multiset)."""
        have: Counter[str] = Counter()
        sel = client.select_folder(self.folder, readonly=True)
        if not int(sel.get(b"EXISTS", 0)):
            return have
        no_mid: list[int] = []
        for uid, data in fetch_chunked(client, client.search("ALL"), [HEADER_FETCH, b"RFC822.SIZE"]):
            ident = identity_from_headers(header_item(data), int(data.get(b"RFC822.SIZE", 0)))
            if ident:
                have[ident] += 1
            else:
                no_mid.append(uid)
        for i in range(0, len(no_mid), 50):      # only mail without Message-ID needs its body
            for data in client.fetch(no_mid[i:i + 50], [b"BODY.PEEK[]"]).values():
                if b"BODY[]" in data:
                    have[identity_from_content(data[b"BODY[]"])] += 1
        return have

    async def _drop(self) -> None:
        self.wire = None
        await self.session.drop()

    # -- one batch --------------------------------------------------------------------------
    async def _flush(self, batch: list[_Item]) -> None:
        inflight: Counter[str] = Counter()
        undecided = list(batch)
        error: BaseException | None = None
        for attempt in range(ATTEMPTS):
            try:
                if self.session.client is None:
                    await self._connect(error)
                await self._upload(undecided, inflight)
                return
            except (SwitchoverError, Cancelled, Stopped):
                raise
            except Exception as e:
                if not is_connection_error(e) or attempt == ATTEMPTS - 1:
                    raise SwitchoverError(f"Importing into {self.folder} failed: {sentence(e)}.") from None
                await self._drop()
                error = e

    async def _upload(self, items: list[_Item], inflight: Counter[str]) -> None:
        """Decide and upload ``items``; what stays in the list is undecided when the
        connection breaks (inflight: identities sent but not confirmed)."""
        todo: list[_Item] = []
        landed: list[_Item] = []
        for item in items:
            if self.have[item.identity] > 0:
                self.have[item.identity] -= 1
                self.consumed[item.identity] += 1
                if inflight[item.identity] > 0:     # landed before the connection broke
                    inflight[item.identity] -= 1
                    self.summary.uploaded += 1
                    self._count(item)
                    landed.append(item)
                else:
                    self.summary.already_there += 1
                    self.tally.found(1, len(item.raw))
            else:
                todo.append(item)
        items[:] = todo
        await self._settle(landed, [AppendResult(True) for _ in landed])
        if not todo:
            return
        new = [it for it in todo if it.row is None]
        ids = await self.ledger.pending(self.job.run_id, str(self.path), self.folder,
                                        [(it.ref, it.identity) for it in new])
        for it, rid in zip(new, ids):
            it.row = rid
        fresh = [it for it in todo if it.placement is None]
        placed = await self.placements.begin(self.folder, "import", [(it.identity, str(it.row)) for it in fresh],
                                                  yield_to=())
        for it, pid in zip(fresh, placed):
            it.placement = pid
        inflight.update(it.identity for it in todo)
        results = await self._thread(self._append, todo)
        for it in todo:
            inflight[it.identity] -= 1
        items.clear()
        for it, res in zip(todo, results):
            if res.ok:
                self.consumed[it.identity] += 1
                self.summary.uploaded += 1
                self._count(it)
            else:
                self.summary.refused.append((it.ref, res.text.strip() or "the server refused the message"))
        await self._settle(todo, results)

    def _count(self, item: _Item) -> None:
        self.tally.add(1, len(item.raw))
        self.meter.add(1, len(item.raw))

    def _append(self, todo: list[_Item]) -> list[AppendResult]:
        assert self.wire is not None
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
        return results

    async def _settle(self, items: list[_Item], results: list[AppendResult]) -> None:
        if not items:
            return
        rows: list[Settled] = []
        placed: list[tuple[int, int | None, int | None]] = []
        dropped: list[int] = []
        for it, res in zip(items, results):
            if res.ok:
                rows.append(("uploaded", res.uidvalidity, res.uid, None, it.row or 0))
                if it.placement:
                    placed.append((it.placement, res.uidvalidity, res.uid))
            else:
                rows.append(("refused", None, None, res.text.strip() or "the server refused the message",
                             it.row or 0))
                if it.placement:
                    dropped.append(it.placement)
        await self.ledger.settle([r for r in rows if r[4]])
        if placed:
            await self.placements.placed(placed)
        if dropped:
            await self.placements.drop(dropped)

    # -- progress -------------------------------------------------------------------------
    def job_progress(self, state: str) -> JobProgress:
        rate = self.meter.rate()
        t = self.tally
        return JobProgress(
            job="import", state=state, total_messages=t.total, total_bytes=t.total_bytes,
            done_messages=t.done, done_bytes=t.done_bytes, msgs_per_s=rate.msgs_per_s,
            bytes_per_s=rate.bytes_per_s, detail=f"{self.path} -> {self.folder}")

    def publish_job(self, state: str) -> None:
        self.bus.publish(self.job_progress(state))
