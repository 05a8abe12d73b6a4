"""``engine.archive``: the final archive of the old mailbox — one folder holding a fresh,
verified backup (``backup/``: .mbox and .eml with their index, core/backup/) and the
closing report (``report.html``, ``report.md``, core/wrapup/report.py).

Only a verified backup counts: the backups facet writes it, then checks every file
against its checksum and the backup against the live mailbox (nothing on the server
missing). A backup verified after the last arrival proves the checklist's
``final_backup`` item (a ``Proven`` event). The report is written either way — a failed
backup is in it, in red — but ``ArchiveResult.ok`` (exit 0) means the backup verified.
Running it again into the same folder resumes the backup and rewrites the report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ..backup.backups import Backups, BackupReport, BackupSummary
from ..checklist import Checklist
from ..config import Config
from ..errors import SwitchoverError
from ..events import EventBus, Proven
from ..migrate.migration import Migration
from ..store import make_private_dirs
from ..transition.arrivals import Arrivals
from ..transition.people import Correspondents
from .closing import Closing, Readiness
from .report import ReportData, backup_block, gather, write_reports

#: the backup's folder inside the archive folder
BACKUP_DIR = "backup"


@dataclass(frozen=True)
class ArchiveResult:
    folder: Path
    backup_dir: Path
    summary: BackupSummary
    check: BackupReport
    readiness: Readiness
    html: Path
    markdown: Path
    data: ReportData

    @property
    def ok(self) -> bool:
        """The backup verified against the live mailbox."""
        return self.check.ok and self.check.live_checked


class Archive:
    """``engine.archive``: ``run(folder)``; built from the facets it reads and drives."""

    def __init__(self, bus: EventBus, config: Config, backups: Backups, closing: Closing, arrivals: Arrivals,
                 people: Correspondents, checklist: Checklist, migration: Migration) -> None:
        self.bus = bus
        self.config = config
        self.backups = backups
        self.closing = closing
        self.arrivals = arrivals
        self.people = people
        self.checklist = checklist
        self.migration = migration

    async def run(self, folder: Path, *, formats: tuple[str, ...] = ("mbox", "eml"),
                  now: dt.datetime | None = None) -> ArchiveResult:
        """Back up and verify into ``folder``/backup, then write the reports there."""
        folder = Path(folder).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise SwitchoverError(f"{folder} is a file; name a folder for the archive.", exit_code=2)
        make_private_dirs(folder)
        backup_dir = folder / BACKUP_DIR
        summary = await self.backups.backup(backup_dir, formats=formats)
        check = await self.backups.verify_backup(backup_dir)
        if check.ok and check.live_checked:
            await self._prove(backup_dir, check)
        await self.bus.drain()          # the checklist has recorded the proof before it is read
        await self.checklist.refresh_evidence()     # the watch's and the arrivals' proofs, as of now
        readiness = await self.closing.readiness(now)
        data = await gather(config=self.config, readiness=readiness, backup=backup_block(backup_dir, summary, check),
                            arrivals=self.arrivals, people=self.people, checklist=self.checklist,
                            migration=self.migration, now=now)
        html, md = write_reports(data, folder)
        return ArchiveResult(folder, backup_dir, summary, check, readiness, html, md, data)

    async def _prove(self, backup_dir: Path, check: BackupReport) -> None:
        """The final backup is proven when it was verified after the last arrival."""
        verified = await self.backups.last_verified()
        newest = await self.arrivals.page(side="old", limit=1)
        if verified is None or (newest and newest[0].seen_at > verified.verified_at):
            return
        found = sum(f.found for f in check.folders)
        when = dt.datetime.fromtimestamp(verified.verified_at)
        self.bus.publish(Proven("final_backup", True, f"{backup_dir} verified {when:%Y-%m-%d %H:%M}: "
                                                      f"{found:,} messages in {len(check.folders)} folders, "
                                                      f"after the last arrival"))
