"""``engine.backups``: local backups of a mailbox, their check, and imports of local mail
files — the facade the faces call.

* ``backup(root)`` writes every folder to ``.mbox`` files and/or ``.eml`` trees with an
  index that makes the backup resumable and checkable (core/backup/writer.py, layout.py,
  index.py, mbox.py).
* ``verify_backup(root)`` checks the files and compares the backup with the live mailbox
  (core/backup/check.py); a verified backup proves the checklist's ``backup`` item (and
  ``final_backup`` after the close date) through a ``Proven`` event; ``last_verified()``
  names the last backup that passed (closing readiness and the archive read it).
* ``import_path(path, folder)`` uploads mbox / eml files into a folder
  (core/backup/importer.py, sources.py).

Backup and import run as asyncio jobs like the migration (core/jobs.py): one of each kind
per state file (``JobBusy``, exit 4, names the other process), recorded in ``runs``;
``pause`` / ``resume`` / ``cancel`` act on the one running. Paused: nothing more is
written once the batch in flight ends. Cancelled: not an error; the summary says so and
a rerun resumes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from pathlib import Path
from typing import NamedTuple, Protocol

from ..config import Config
from ..context import Accounts, Blocking
from ..errors import SwitchoverError
from ..events import EventBus, JobProgress, Proven
from ..jobs import Job
from ..placements import Placements
from ..store import Store
from .check import BackupReport, FolderCheck, check_backup
from .importer import Importer, ImportSummary
from .index import StateMirror
from .layout import FORMATS
from .writer import BackupSummary, BackupWriter

__all__ = ["Backups", "BackupReport", "BackupSummary", "FolderCheck", "ImportSummary", "FORMATS",
           "BATCH_MESSAGES", "BATCH_BYTES", "VerifiedBackup"]

#: batch size of a backup when the config's migration settings leave it open
BATCH_MESSAGES = 200
BATCH_BYTES = 16 * 2**20


#: the settings key of the last backup a check verified against the live mailbox
LAST_VERIFIED = "backups.last_verified"


class VerifiedBackup(NamedTuple):
    """The last backup ``verify_backup`` verified against the live mailbox."""
    root: str
    verified_at: float          # when the check ran: nothing on the server was missing then
    messages: int
    folders: int


class _Run(Protocol):
    def job_progress(self, state: str) -> JobProgress: ...


class Backups:
    """``engine.backups``: backup(), verify_backup(), import_path(); pause/resume/cancel."""

    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config, placements: Placements) -> None:
        self.store = store
        self.bus = bus
        self.accounts = accounts
        self.blocking = blocking
        self.config = config
        self.placements = placements
        self.mirror = StateMirror(store)
        self.jobs = {kind: Job(kind, on_change=functools.partial(self._changed, kind))
                     for kind in ("backup", "import")}
        self._runs: dict[str, _Run] = {}
        self._last = ""
        self._idle = asyncio.Event()
        self._idle.set()

    # -- control ------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """The running job's state (core/jobs.py), else the last one's end state, else "idle"."""
        active = [j.state for j in self.jobs.values() if j.active]
        if active:
            return active[0]
        return self.jobs[self._last].state if self._last else "idle"

    def pause(self) -> None:
        for job in self.jobs.values():
            job.pause()

    def resume(self) -> None:
        for job in self.jobs.values():
            job.resume()

    def cancel(self) -> None:
        for job in self.jobs.values():
            job.cancel()

    def stop(self) -> None:
        """Engine shutdown: a running backup / import stops at its next batch."""
        self.cancel()

    async def join(self, timeout: float = 30.0) -> None:
        """Wait until no backup or import runs (the engine, before it closes the state)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _changed(self, kind: str) -> None:
        job, run = self.jobs[kind], self._runs.get(kind)
        if run is not None:
            state = "cancelled" if job.state == "idle" and job.outcome == "cancelled" else job.state
            self.bus.publish(run.job_progress(state))

    def _start(self, kind: str, run: _Run) -> Job:
        job = self.jobs[kind]
        if job.active:
            raise SwitchoverError(f"A {kind} is already running.")
        self._runs[kind] = run
        self._last = kind
        self._idle.clear()
        return job

    def _ended(self) -> None:
        if not any(j.active for j in self.jobs.values()):
            self._idle.set()

    # -- backup -------------------------------------------------------------------------
    async def backup(self, root: Path, *, formats: tuple[str, ...] = FORMATS, side: str = "old",
                     folders: list[str] | None = None) -> BackupSummary:
        """Back up the ``side`` mailbox (or only ``folders``) into ``root``; see the
        module docstring. Raises JobBusy (exit 4) when another process backs up with this
        state file, AuthError / ConnectError when the mailbox cannot be reached."""
        formats = tuple(f for f in formats if f in FORMATS)
        if not formats:
            raise SwitchoverError("Choose at least one backup format: mbox or eml.")
        root = Path(root).expanduser().resolve()
        settings = self.config.migration
        writer = BackupWriter(
            root=root, formats=formats, side=side, only=folders, account=self.accounts.account(side),
            job=self.jobs["backup"], bus=self.bus, blocking=self.blocking, mirror=self.mirror,
            batch_messages=settings.batch_messages or BATCH_MESSAGES,
            batch_bytes=settings.batch_bytes or BATCH_BYTES)
        job = self._start("backup", writer)
        try:
            async with job.running(self.store, self.config.state):
                summary = await writer.run()
                job.outcome = "done" if summary.ok else "errors"     # a cancel is recorded as such
                job.summary = summary.record()
        finally:
            self._ended()
        return summary

    async def verify_backup(self, root: Path) -> BackupReport:
        """Check the backup in ``root``; the report says what is missing or damaged."""
        root = Path(root).expanduser().resolve()
        report = await self.blocking.run(check_backup, root, self.accounts.account)
        await self._remember(root, report)
        self._prove(root, report)
        return report

    async def last_verified(self) -> VerifiedBackup | None:
        """The last backup verified against the live mailbox (closing readiness and the
        archive ask it), or None; a later failed check of that same backup forgets it."""
        v = await self.store.get_setting(LAST_VERIFIED)
        if not v:
            return None
        return VerifiedBackup(str(v["root"]), float(v["verified_at"]), int(v["messages"]), int(v["folders"]))

    async def _remember(self, root: Path, report: BackupReport) -> None:
        if report.ok and report.live_checked:
            await self.store.set_setting(LAST_VERIFIED, {
                "root": str(root), "verified_at": time.time(),
                "messages": sum(f.found for f in report.folders), "folders": len(report.folders)})
        elif not report.ok:
            last = await self.last_verified()
            if last is not None and last.root == str(root):
                await self.store.set_setting(LAST_VERIFIED, None)

    def _prove(self, root: Path, report: BackupReport) -> None:
        """A verified backup checked against the live mailbox proves the checklist's backup
        item (and the final backup after the close date); a failed check takes back only
        a proof this very backup gave (``subject``)."""
        when = dt.datetime.now()
        where = str(root)
        if report.ok and report.live_checked:
            found = sum(f.found for f in report.folders)
            evidence = (f"{where} verified {when:%Y-%m-%d %H:%M}: {found:,} messages "
                        f"in {len(report.folders)} folders")
            self.bus.publish(Proven("backup", True, evidence))
            close = self.config.transition.close_date
            if close and when.date() >= close:
                self.bus.publish(Proven("final_backup", True, evidence + ", after the close date"))
        elif not report.ok:
            for key in ("backup", "final_backup"):
                self.bus.publish(Proven(key, False, f"{where} failed its check {when:%Y-%m-%d %H:%M}",
                                        subject=where))

    # -- import -------------------------------------------------------------------------
    async def import_path(self, path: Path, to_folder: str, *, side: str = "new") -> ImportSummary:
        """Upload an .mbox file, an .eml file or a directory of them into ``to_folder`` of
        the ``side`` mailbox (created if missing); see core/backup/importer.py."""
        importer = Importer(path=Path(path).expanduser(), to_folder=to_folder, side=side,
                            account=self.accounts.account(side), job=self.jobs["import"], bus=self.bus,
                            blocking=self.blocking, store=self.store, placements=self.placements)
        importer.check()
        job = self._start("import", importer)
        try:
            async with job.running(self.store, self.config.state):
                summary = await importer.run()
                job.outcome = "done" if summary.ok else "errors"     # a cancel is recorded as such
                job.summary = summary.record(importer.path)
        finally:
            self._ended()
        return summary
