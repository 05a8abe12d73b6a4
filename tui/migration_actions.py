"""What the migration pane's keys do (``MigrationActions``, mixed into ``MigrationPane``):
plan (a dry run), start, pause / resume, cancel, verify, back up — each calls the facet
and says how it ended in the engine's own words (a summary's ``headline()`` and
``describe()``, a verification's ``lines()``, a backup's ``describe()``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from switchover.core.errors import sentence
from switchover.core.events import FolderProgress, JobProgress
from switchover.core.progress import fmt_bytes

from .prompts import ConfirmScreen, TextPrompt

if TYPE_CHECKING:
    from switchover.core.engine import Engine
    from switchover.core.migrate.records import MigrationSummary

    from .app import SwitchoverApp


def folder_label(source: str, destination: str) -> str:
    return source if not destination or destination == source else f"{source} → {destination}"


class MigrationActions:
    """The migration pane's keys; expects the MigrationPane's ``engine``, ``rows``,
    ``dirty``, ``known_bytes``, ``job``, ``busy``, ``paused``, ``say``, ``_set_busy``,
    ``_log``, ``_see_log`` and ``flush``."""

    engine: "Engine"
    sapp: "SwitchoverApp"
    rows: dict[str, FolderProgress]
    dirty: set[str]
    known_bytes: dict[str, int]
    job: JobProgress | None
    job_dirty: bool
    busy: str
    paused: bool

    def action_plan(self) -> None:
        if not self.busy:
            self.run_worker(self._plan, group="migration", exclusive=True)

    async def _plan(self) -> None:
        self._set_busy("planning")
        self.say("Planning (dry run): listing folders on both sides …")
        try:
            plan = await self.attempt("plan", self.engine.migration.plan)
        finally:
            self._set_busy("")
        if plan is None:
            return
        for folder in plan.folders:
            if folder.bytes:
                self.known_bytes[folder.source] = folder.bytes
            self.rows[folder.source] = FolderProgress(
                job="migrate", source=folder.source, destination=folder.destination,
                state="planned", total_messages=folder.messages, total_bytes=folder.bytes)
            self.dirty.add(folder.source)
            why = f" — {folder.reason}" if folder.reason else ""
            self._log(f"plan    {folder_label(folder.source, folder.destination)}: "
                      f"{folder.messages:,} messages, {fmt_bytes(folder.bytes)}{why}")
        self.job = JobProgress(job="plan", state="planned", total_messages=plan.total_messages,
                               total_bytes=plan.total_bytes, done_messages=0, done_bytes=0)
        self.job_dirty = True
        self.say(f"Plan: {len(plan.folders)} folders, {plan.total_messages:,} messages, "
                 f"{fmt_bytes(plan.total_bytes)} — nothing written yet; s starts.")
        self.flush()

    def action_start(self) -> None:
        if not self.busy:
            self.run_worker(self._run, group="migration-run", exclusive=True)

    async def _run(self) -> None:
        self._set_busy("migrate")
        self.say("Migrating … space pauses, c cancels.")
        try:
            summary = await self.attempt("migration", self.engine.migration.run)
        finally:
            self._set_busy("")
        if summary is not None:
            self._finished(summary)

    def _finished(self, summary: "MigrationSummary") -> None:
        """Say how the run ended: cancelled (neither done nor an error), or its headline
        and counts; every error goes to the log with its cause."""
        copied, already = summary.transferred, summary.already_there
        if summary.cancelled:
            self.say(f"Cancelled — {copied:,} copied, {already:,} already there; what is "
                     f"copied stays copied, s resumes.")
            self._log(f"migration cancelled: {copied:,} copied, {already:,} already there")
            self.sapp.notify("Migration cancelled; what is copied stays copied.",
                             title="Migration")
            return
        head = summary.headline() or ""
        refused = len(summary.refused)
        errors = summary.errors
        counts = f"{copied:,} copied, {already:,} already there"
        if refused:
            counts += f", {refused:,} refused"
        if errors:
            counts += f", {len(errors):,} error{'s' if len(errors) != 1 else ''}"
        problem = bool(refused or errors)
        self.say(f"Migration finished: {head + ' — ' if head else ''}{counts}"
                 + (f" ({self._see_log()})." if problem else "."), error=problem)
        self._log(f"migration finished: {summary.describe()}")
        for e in errors:
            self._log(f"error   {e}")
        self.sapp.notify(f"Migration finished{': ' + head if head else '.'}", title="Migration",
                         severity="warning" if problem else "information")

    def action_pause(self) -> None:
        if self.busy != "migrate":
            return
        migration = self.engine.migration
        try:
            migration.resume() if self.paused else migration.pause()
        except Exception as exc:
            self.say(f"pause/resume: {sentence(exc)}", error=True)
            return
        self.paused = not self.paused
        # paused for real only when the batch in flight has ended: the engine says when
        self.say("Pausing — finishing the batch in flight; nothing more goes out after it."
                 if self.paused else "Migrating … space pauses, c cancels.")

    def action_cancel(self) -> None:
        if not self.busy:
            return

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            # the job running here: the migration, or a backup / verify of the same engine
            job = self.engine.backups if self.busy == "backup" else self.engine.migration
            try:
                job.cancel()
            except Exception as exc:
                self.say(f"cancel: {sentence(exc)}", error=True)
                return
            self.say("Cancelling … what is copied stays copied; s resumes later.")

        self.app.push_screen(ConfirmScreen(f"Stop the running {self.busy}?"), answer)

    def action_verify(self) -> None:
        if not self.busy:
            self.run_worker(self._verify, group="migration", exclusive=True)

    async def _verify(self) -> None:
        self._set_busy("verify")
        self.say("Verifying: comparing every folder by identity, flags and dates …")
        try:
            report = await self.attempt("verify", self.engine.migration.verify)
        finally:
            self._set_busy("")
        if report is None:
            return
        folders = report.folders
        bad = [f for f in folders if not f.ok]
        for line in report.lines():      # the verification's own words, as the CLI prints them
            self._log(f"verify  {line}")
        if report.ok:
            text = f"Verified: all {len(folders)} folders match."
        else:
            text = f"Verification found differences in {len(bad)} of {len(folders)} folders ({self._see_log()})."
        self.say(text, error=not report.ok)
        self.sapp.notify(text, title="Verify", severity="information" if report.ok else "warning")

    def action_backup(self) -> None:
        if self.busy:
            return
        base = self.engine.config.state.expanduser().parent
        default = str(base / f"backup-{self.now().date().isoformat()}")

        def chosen(path: str | None) -> None:
            if path and path.strip():
                self.run_worker(partial(self._backup, Path(path.strip()).expanduser()),
                                group="migration", exclusive=True)

        self.app.push_screen(TextPrompt("Back up the old mailbox to this directory", default,
                                        hint="Every folder as .mbox and .eml files; "
                                             "re-running adds only what is new."), chosen)

    async def _backup(self, root: Path) -> None:
        backups = self.engine.backups
        self._set_busy("backup")
        self.say(f"Backing up to {root} …")
        try:
            summary = await self.attempt("backup", lambda: backups.backup(root))
            if summary is not None:
                self._log(f"backup  {summary.describe()}")
                self.say(f"Backup in {root} — verifying …")
                check = await self.attempt("backup verify", lambda: backups.verify_backup(root))
                if check is not None:
                    self.say(f"Backup in {root}: " + ("verified." if check.ok else
                                                     f"{check.describe()} ({self._see_log()})."),
                             error=not check.ok)
                    self._log(f"backup verify  {check.describe()}")
                    for problem in check.problems[:50]:
                        self._log(f"backup verify  {problem}")
        finally:
            self._set_busy("")
