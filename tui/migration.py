"""The migration pane: one row per folder (source → destination, done / total, size,
msgs/s, MB/s, ETA, state), an overall progress bar, a throughput sparkline and a log.

Engine events arrive through the app's pump (already coalesced per folder); this pane
only remembers the newest value per folder and, when visible, repaints the cells that
changed — a few times a second at most, however fast the copy runs.
"""

from __future__ import annotations

from functools import partial

import asyncio
import time
from collections import deque
from pathlib import Path
from typing import Any

import humanize
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Log, ProgressBar, Sparkline, Static

from core.events import Event, FolderProgress, JobProgress, LogLine

from .base import Pane, cell
from .prompts import ConfirmScreen, TextPrompt

COLUMNS = ("folder", "msgs", "size", "mps", "mbps", "eta", "state")
#: throughput samples kept for the sparkline (bounded: the app stays open for months)
SPARK_POINTS = 120
LOG_LINES = 500


def size(n: int | float | None) -> str:
    return humanize.naturalsize(n or 0, format="%.1f")


def eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return ""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def folder_label(source: str, destination: str) -> str:
    return source if not destination or destination == source else f"{source} → {destination}"


class MigrationTable(DataTable):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="migration.down"),
        Binding("k", "cursor_up", "Up", show=False, id="migration.up"),
    ]


class MigrationPane(Pane):
    HELP_TITLE = "Migration — copy the old mailbox into the new one"
    HELP_ABOUT = ("Plan first (a dry run: nothing is written), then start. Copying resumes "
                  "where it stopped after a restart; nothing is copied twice.")
    BINDINGS = [
        Binding("p", "plan", "Plan", id="migration.plan"),
        Binding("s", "start", "Start", id="migration.start"),
        Binding("space", "pause", "Pause/resume", id="migration.pause"),
        Binding("v", "verify", "Verify", id="migration.verify"),
        Binding("b", "backup", "Back up", id="migration.backup"),
        Binding("c", "cancel", "Cancel", id="migration.cancel"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows: dict[str, FolderProgress] = {}
        self.rendered: dict[str, tuple[str, ...]] = {}
        self.dirty: set[str] = set()
        self.job: JobProgress | None = None
        self.job_dirty = False
        self.spark: deque[float] = deque([0.0] * 2, maxlen=SPARK_POINTS)
        self.busy = ""          # "" | "planning" | "migrate" | "verify" | "backup"
        self.paused = False
        self.folder_width = 30
        self.side_job = ""
        self._last_sample = 0.0

    def compose(self) -> ComposeResult:
        yield self.message_line()
        with Horizontal(id="mig-top"):
            yield ProgressBar(total=100, show_eta=False, id="mig-progress")
            yield Sparkline(list(self.spark), id="mig-spark")
        yield Static("Nothing planned yet — p plans (dry run), s starts.", id="mig-summary",
                     markup=False)
        yield MigrationTable(id="mig-table", cursor_type="row")
        yield Log(max_lines=LOG_LINES, id="mig-log")

    def on_mount(self) -> None:
        table = self.table
        width = self.app.size.width
        self.folder_width = max(18, width - 62)
        for key, label, w in (("folder", "Folder", self.folder_width), ("msgs", "Messages", 13),
                              ("size", "Size", 8), ("mps", "msg/s", 5), ("mbps", "MB/s", 5),
                              ("eta", "ETA", 6), ("state", "State", 9)):
            table.add_column(label, key=key, width=w)

    @property
    def table(self) -> DataTable:
        return self.query_one("#mig-table", DataTable)

    # -- state for the footer -----------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        running = self.busy == "migrate"
        if action == "pause":
            return True if running else None
        if action == "cancel":
            return True if self.busy in ("migrate", "backup", "verify") else None
        if action in ("plan", "start", "verify", "backup"):
            return None if self.busy else True
        return True

    def _set_busy(self, busy: str) -> None:
        self.busy = busy
        if not busy:
            self.paused = False
        try:
            self.refresh_bindings()
        except Exception:  # the app is shutting down: nothing to refresh
            pass

    # -- loading ------------------------------------------------------------------------
    async def load(self) -> None:
        migration = self.facet("migration")
        if migration is None:
            return
        rows = await self.attempt("migration", migration.folder_rows)
        for row in rows or []:
            self.rows[row.source] = row
            self.dirty.add(row.source)
        state = getattr(migration, "state", "")
        if isinstance(state, str) and state in ("running", "paused"):
            self.busy = "migrate"
            self.paused = state == "paused"
            self.refresh_bindings()
        if rows:
            self._summarize_rows()
        self.flush()

    def _summarize_rows(self) -> None:
        total = sum(r.total_messages for r in self.rows.values())
        done = sum(r.done_messages for r in self.rows.values())
        tbytes = sum(r.total_bytes for r in self.rows.values())
        dbytes = sum(r.done_bytes for r in self.rows.values())
        state = ("paused" if self.paused else "running") if self.busy else "stopped"
        self.job = JobProgress(job="migrate", state=state,
                               total_messages=total, total_bytes=tbytes,
                               done_messages=done, done_bytes=dbytes)
        self.job_dirty = True

    # -- events -------------------------------------------------------------------------
    def handle_events(self, events: list[Event]) -> None:
        log = self.query_one("#mig-log", Log)
        for event in events:
            if isinstance(event, FolderProgress):
                if event.job not in ("migrate", "verify"):
                    # a backup / import walks the same folders: it shows in the summary
                    # line and must not overwrite the migration's rows
                    self.side_job = f"{event.job} {event.source}: {event.done_messages:,}/{event.total_messages:,}"
                    self.job_dirty = True
                    continue
                self.rows[event.source] = event
                self.dirty.add(event.source)
            elif isinstance(event, JobProgress):
                self.job = event
                self.job_dirty = True
                self.paused = event.state == "paused"
                now = time.monotonic()
                if now - self._last_sample >= 1.0:  # one point a second, whatever the event rate
                    self._last_sample = now
                    self.spark.append(event.bytes_per_s / 1e6 if event.state == "running" else 0.0)
            elif isinstance(event, LogLine):
                stamp = self.now().strftime("%H:%M:%S")
                log.write_line(f"{stamp} {event.level:<7} {event.text}")

    def flush(self) -> None:
        if not self.visible_now or not (self.dirty or self.job_dirty):
            return
        with self.app.batch_update():
            self._flush_rows()
            self._flush_job()

    def _cells(self, row: FolderProgress) -> tuple[str, ...]:
        state = row.state if row.job == "migrate" else f"{row.job} {row.state}"
        if row.errors:
            state += f" ({row.errors} err)"
        copying = row.state in ("copying", "running")
        return (
            folder_label(row.source, row.destination),
            f"{row.done_messages:,}/{row.total_messages:,}",
            size(row.total_bytes) if row.total_bytes else (size(row.done_bytes) if row.done_bytes else ""),
            f"{row.msgs_per_s:.0f}" if copying else "",
            f"{row.bytes_per_s / 1e6:.1f}" if copying else "",
            eta(row.eta_s) if copying else "",
            state,
        )

    def _flush_rows(self) -> None:
        table = self.table
        for source in [k for k in self.rows if k in self.dirty]:  # the engine's order
            row = self.rows[source]
            cells = self._cells(row)
            old = self.rendered.get(source)
            styles = ["", "", "", "", "", "", _state_style(row.state)]
            if old is None:
                table.add_row(*(cell(v, s) for v, s in zip(cells, styles)), key=source)
            else:
                for col, new, was, style in zip(COLUMNS, cells, old, styles):
                    if new != was:
                        table.update_cell(source, col, cell(new, style))
            self.rendered[source] = cells
        self.dirty.clear()

    def _flush_job(self) -> None:
        if not self.job_dirty or self.job is None:
            return
        self.job_dirty = False
        job = self.job
        bar = self.query_one("#mig-progress", ProgressBar)
        bar.update(total=max(job.total_messages, 1), progress=job.done_messages)
        self.query_one("#mig-spark", Sparkline).data = list(self.spark)
        parts = [f"{job.job}: {job.done_messages:,}/{job.total_messages:,} msgs",
                 f"{size(job.done_bytes)} of {size(job.total_bytes)}"]
        if job.state == "running" and job.msgs_per_s:
            parts += [f"{job.msgs_per_s:.0f} msg/s", f"{job.bytes_per_s / 1e6:.1f} MB/s"]
            if job.eta_s is not None:
                parts.append(f"ETA {eta(job.eta_s)}")
        parts.append(job.state)
        if job.detail:
            parts.append(job.detail)
        if self.side_job and job.job != "migrate" and job.state == "running":
            parts.append(self.side_job)
        self.query_one("#mig-summary", Static).update(" · ".join(parts))

    # -- actions ------------------------------------------------------------------------
    def _log(self, text: str) -> None:
        stamp = self.now().strftime("%H:%M:%S")
        self.query_one("#mig-log", Log).write_line(f"{stamp} {text}")

    def action_plan(self) -> None:
        if not self.busy:
            self.run_worker(self._plan, group="migration", exclusive=True)

    async def _plan(self) -> None:
        migration = self.facet("migration")
        if migration is None:
            return
        self._set_busy("planning")
        self.say("Planning (dry run): listing folders on both sides …")
        try:
            plan = await self.attempt("plan", migration.plan)
        finally:
            self._set_busy("")
        if plan is None:
            return
        for folder in plan.folders:
            self.rows[folder.source] = FolderProgress(
                job="migrate", source=folder.source, destination=folder.destination,
                state="planned", total_messages=folder.messages, total_bytes=folder.bytes)
            self.dirty.add(folder.source)
            why = f" ({folder.reason})" if folder.reason else ""
            self._log(f"plan    {folder_label(folder.source, folder.destination)}: "
                      f"{folder.messages:,} messages, {size(folder.bytes)}{why}")
        self.job = JobProgress(job="plan", state="planned", total_messages=plan.total_messages,
                               total_bytes=plan.total_bytes, done_messages=0, done_bytes=0)
        self.job_dirty = True
        self.say(f"Plan: {len(plan.folders)} folders, {plan.total_messages:,} messages, "
                 f"{size(plan.total_bytes)} — nothing written yet; s starts.")
        self.flush()

    def action_start(self) -> None:
        if not self.busy:
            self.run_worker(self._run, group="migration-run", exclusive=True)

    async def _run(self) -> None:
        migration = self.facet("migration")
        if migration is None:
            return
        self._set_busy("migrate")
        self.say("Migrating … space pauses, c cancels.")
        try:
            summary = await self.attempt("migration", migration.run)
        finally:
            self._set_busy("")
        if summary is not None:
            self.say(f"Migration finished: {_describe(summary)}")
            self._log(f"migration finished: {_describe(summary)}")
            self.sapp.notify("Migration finished.", title="Migration")

    def action_pause(self) -> None:
        migration = self.facet("migration")
        if migration is None or self.busy != "migrate":
            return
        call = migration.resume if self.paused else migration.pause
        self.paused = not self.paused
        self.say("Paused — space resumes." if self.paused else "Migrating … space pauses.")

        async def apply() -> None:
            result = call()
            if asyncio.iscoroutine(result):
                await result

        self.run_worker(partial(self.attempt, "pause/resume", apply), group="migration-pause")

    def action_cancel(self) -> None:
        if not self.busy:
            return

        def answer(yes: bool | None) -> None:
            migration = self.facet("migration")
            if yes and migration is not None:
                async def apply() -> None:
                    result = migration.cancel()
                    if asyncio.iscoroutine(result):
                        await result
                self.run_worker(partial(self.attempt, "cancel", apply), group="migration-pause")
                self.say("Cancelling … what is copied stays copied; s resumes later.")

        self.app.push_screen(ConfirmScreen(f"Stop the running {self.busy}?"), answer)

    def action_verify(self) -> None:
        if not self.busy:
            self.run_worker(self._verify, group="migration", exclusive=True)

    async def _verify(self) -> None:
        migration = self.facet("migration")
        if migration is None:
            return
        self._set_busy("verify")
        self.say("Verifying: comparing every folder by identity, flags and dates …")
        try:
            report = await self.attempt("verify", migration.verify)
        finally:
            self._set_busy("")
        if report is None:
            return
        folders = list(getattr(report, "folders", []) or [])
        bad = [f for f in folders if not getattr(f, "ok", True)]
        for f in bad:
            self._log(f"verify  {_describe(f)}")
        if report.ok:
            text = f"Verified: all {len(folders)} folders match."
        else:
            text = f"Verification found differences in {len(bad)} of {len(folders)} folders (see log)."
        self.say(text, error=not report.ok)
        self.sapp.notify(text, title="Verify", severity="information" if report.ok else "warning")

    def action_backup(self) -> None:
        if self.busy:
            return
        config = getattr(self.engine, "config", None)
        base = Path(getattr(config, "state", Path.home() / "switchover.db")).expanduser().parent
        default = str(base / f"backup-{self.now().date().isoformat()}")

        def chosen(path: str | None) -> None:
            if path and path.strip():
                self.run_worker(partial(self._backup, Path(path.strip()).expanduser()),
                                group="migration", exclusive=True)

        self.app.push_screen(TextPrompt("Back up the old mailbox to this directory", default,
                                        hint="Every folder as .mbox and .eml files; "
                                             "re-running adds only what is new."), chosen)

    async def _backup(self, root: Path) -> None:
        backups = self.facet("backups")
        if backups is None:
            return
        self._set_busy("backup")
        self.say(f"Backing up to {root} …")
        try:
            summary = await self.attempt("backup", lambda: backups.backup(root))
            if summary is not None:
                self._log(f"backup  {_describe(summary)}")
                self.say(f"Backup in {root} — verifying …")
                check = await self.attempt("backup verify", lambda: backups.verify_backup(root))
                if check is not None:
                    ok = getattr(check, "ok", True)
                    self.say(f"Backup in {root}: " + ("verified." if ok else "verification failed (see log)."),
                             error=not ok)
                    self._log(f"backup verify  {_describe(check)}")
        finally:
            self._set_busy("")


def _state_style(state: str) -> str:
    return {"errors": "bold red", "verified": "green", "done": "green",
            "copying": "bold", "paused": "yellow"}.get(state, "")


def _describe(obj: Any) -> str:
    """A record's own sentence if it has one, else its fields."""
    for name in ("describe", "sentence", "text"):
        value = getattr(obj, name, None)
        if callable(value):
            try:
                return str(value())
            except Exception:
                break
        if isinstance(value, str) and value:
            return value
    return str(obj)
