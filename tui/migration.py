"""The migration pane: one row per folder (source → destination, done / total, size,
msgs/s, MB/s, ETA, state), an overall progress bar, a throughput sparkline and a log.

Engine events arrive through the app's pump (already coalesced per folder); this pane
only remembers the newest value per folder and, when visible, repaints the cells that
changed — a few times a second at most, however fast the copy runs.

It says what happened in the engine's words: "pausing" while the batch in flight ends,
"cancelled" (neither done nor an error) for folders a cancel left unfinished, the run's
headline ("the new mailbox is full: 1,347 messages not copied") instead of a line per
message, and — from the runs recorded in the state file, whichever process ran them —
whether the last migration finished or stopped before the end. What its keys do is in
tui/migration_actions.py.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, ProgressBar, RichLog, Sparkline, Static

from switchover.core.events import Event, FolderProgress, JobProgress, LogLine
from switchover.core.progress import fmt_bytes, fmt_eta, fmt_rate

from .base import Pane, cell, plain_style, table_keys
from .migration_actions import MigrationActions, folder_label

if TYPE_CHECKING:
    from switchover.core.migrate.records import RunInfo

COLUMNS = ("folder", "msgs", "size", "mps", "mbps", "eta", "state")
#: throughput samples kept for the sparkline (bounded: the app stays open for months)
SPARK_POINTS = 120
LOG_LINES = 500


#: how a verify row's state reads in the 9-column State cell
VERIFY_STATES = {"running": "verifying", "copying": "verifying", "verified": "verified",
                 "errors": "differs", "failed": "differs", "done": "verified"}


class MigrationTable(DataTable):
    BINDINGS = table_keys("migration")


class MigrationPane(MigrationActions, Pane):
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
        Binding("l", "toggle_log", "Log", id="migration.log"),
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
        self.paused = False     # paused or pausing (space resumes either)
        self.folder_width = 30
        self.side_job = ""
        self._last_sample = 0.0
        #: a folder's size from the plan / copy, kept when verify rows (which carry no
        #: byte counts) replace the folder's row
        self.known_bytes: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield self.message_line()
        with Horizontal(id="mig-top"):
            yield ProgressBar(total=100, show_eta=False, id="mig-progress")
            yield Sparkline(list(self.spark), id="mig-spark")
        yield Static("Nothing planned yet — p plans (dry run), s starts.", id="mig-summary",
                     markup=False)
        yield MigrationTable(id="mig-table", cursor_type="row")
        # wraps: a verify or backup sentence must be readable at 80 columns
        yield RichLog(max_lines=LOG_LINES, wrap=True, markup=False, id="mig-log")

    def on_mount(self) -> None:
        table = self.table
        width = self.app.size.width
        self.folder_width = max(17, width - 63)
        for key, label, w in (("folder", "Folder", self.folder_width), ("msgs", "Messages", 13),
                              ("size", "Size", 8), ("mps", "msg/s", 5), ("mbps", "MB/s", 5),
                              ("eta", "ETA", 6), ("state", "State", 10)):
            table.add_column(label, key=key, width=w)

    @property
    def table(self) -> DataTable:
        return self.query_one("#mig-table", DataTable)

    # -- state for the footer -----------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # keys that cannot act now leave the footer (False hides): every pane's keys
        # then fit in 80 columns, and what the footer shows is what works
        if not super().check_action(action, parameters):
            return False
        running = self.busy == "migrate"
        if action == "pause":
            return running
        if action == "cancel":
            return self.busy in ("migrate", "backup", "verify")
        if action in ("plan", "start", "verify", "backup"):
            return not self.busy
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
        """Rows and the last run from the state file: on start, and whenever another
        process (a CLI migrate) changed it."""
        migration = self.engine.migration
        if self.busy and self.busy != "migrate":
            return  # a verify / backup of this process owns the rows and the summary now
        rows = await self.attempt("migration", migration.folder_rows)
        for row in rows or []:
            if row.total_bytes:
                self.known_bytes[row.source] = row.total_bytes
            if row.source not in self.rows or self.rows[row.source] != row:
                self.rows[row.source] = row
                self.dirty.add(row.source)
        if migration.state in ("running", "paused", "pausing", "cancelling"):
            self.busy = "migrate"
            self.paused = migration.state in ("paused", "pausing")
            self.refresh_bindings()
        last = await self.attempt("last migration", migration.last_run)
        if rows:
            self._summarize_rows(last)
            if not self.busy:
                text, problem = self._last_sentence(last)
                self.say(text, error=problem)
        self.flush()

    def _last_sentence(self, last: "RunInfo | None") -> tuple[str, bool]:
        """What the pane says about the last migration when none runs here: from the
        run recorded in the state file (any process's), else from the rows."""
        if last is None:
            if self.job is not None and self.job.state == "done":
                return "Everything planned is copied — v verifies, s copies what arrived since.", False
            if any(r.done_messages for r in self.rows.values()):
                return ("The last migration stopped before the end — s resumes "
                        "(nothing is copied twice)."), False
            return "Planned, nothing copied yet — s starts.", False
        when = _stamp(last.ended or last.started)
        summary = last.summary or {}
        head = summary.get("headline") or ""
        if last.running:
            return (f"A migration started {when} is running in another process; its "
                    f"progress shows here."), False
        if last.outcome == "done":
            return (f"The last migration finished {when}: {summary.get('transferred', 0):,} "
                    f"copied, {summary.get('already_there', 0):,} already there — v verifies, "
                    f"s copies what arrived since."), False
        if last.outcome == "cancelled":
            return (f"The last migration was cancelled {when} after copying "
                    f"{summary.get('transferred', 0):,} messages — s resumes (nothing is "
                    f"copied twice)."), False
        if last.outcome == "errors":
            return (f"The last migration ({when}) ended with problems: "
                    f"{head or _problems(summary)} — {self._see_log()}; s tries what is left."), True
        if last.outcome == "failed":
            errors = summary.get("errors") or []
            why = f": {errors[0]}" if errors else ""
            return (f"The last migration stopped before the end ({when}){why} — s resumes "
                    f"(nothing is copied twice)."), True
        return (f"The last migration (started {when}) stopped before the end — s resumes "
                f"(nothing is copied twice)."), False

    def _summarize_rows(self, last: "RunInfo | None" = None) -> None:
        total = sum(r.total_messages for r in self.rows.values())
        done = sum(r.done_messages for r in self.rows.values())
        tbytes = sum(r.total_bytes for r in self.rows.values())
        dbytes = sum(r.done_bytes for r in self.rows.values())
        if self.busy:
            state = "paused" if self.paused else "running"
        elif last is not None and last.outcome:
            state = {"done": "done", "errors": "done with errors", "cancelled": "cancelled",
                     "failed": "stopped"}.get(last.outcome, last.outcome)
        else:
            finished = all(r.state in ("done", "verified", "skipped") for r in self.rows.values())
            state = "done" if finished and done >= total else "stopped"
        self.job = JobProgress(job="migrate", state=state,
                               total_messages=total, total_bytes=tbytes,
                               done_messages=done, done_bytes=dbytes)
        self.job_dirty = True

    # -- events -------------------------------------------------------------------------
    def handle_events(self, events: list[Event]) -> None:
        log = self.query_one("#mig-log", RichLog)
        for event in events:
            if isinstance(event, FolderProgress):
                if event.job not in ("migrate", "verify"):
                    # a backup / import walks the same folders: it shows in the summary
                    # line and must not overwrite the migration's rows
                    self.side_job = f"{event.job} {event.source}: {event.done_messages:,}/{event.total_messages:,}"
                    self.job_dirty = True
                    continue
                if event.total_bytes:
                    self.known_bytes[event.source] = event.total_bytes
                self.rows[event.source] = event
                self.dirty.add(event.source)
            elif isinstance(event, JobProgress):
                if event.job not in ("migrate", "verify", "backup", "import", "plan"):
                    continue  # e.g. the correspondents' history scan: not this pane's job
                self._job_state(event)
                self.job = event
                self.job_dirty = True
                now = time.monotonic()
                if now - self._last_sample >= 1.0:  # one point a second, whatever the event rate
                    self._last_sample = now
                    self.spark.append(event.bytes_per_s / 1e6 if event.state == "running" else 0.0)
            elif isinstance(event, LogLine):
                stamp = self.now().strftime("%H:%M:%S")
                # the whole text: the cause is at its end (the log wraps, never cuts)
                log.write(f"{stamp} {event.level:<7} {event.text}")
                if event.level == "error" and self.busy and not log.display:
                    # narrow screens hide the log: the latest error of the running job
                    # shows here until the job's own sentence replaces it
                    self.say(f"{event.text} (l shows the log)", error=True)

    def _job_state(self, event: JobProgress) -> None:
        """Pause takes effect when the batch in flight ends: say so until it has."""
        if event.job != "migrate" or self.busy != "migrate":
            return
        was = self.job.state if self.job is not None and self.job.job == "migrate" else ""
        if event.state == was:
            return
        if event.state == "pausing":
            self.paused = True
            self.say("Pausing — finishing the batch in flight; nothing more goes out after it.")
        elif event.state == "paused":
            self.paused = True
            self.say("Paused — nothing more is copied; space resumes.")
        elif event.state == "running" and was in ("paused", "pausing"):
            self.paused = False
            self.say("Migrating … space pauses, c cancels.")

    def flush(self) -> None:
        if not self.visible_now or not (self.dirty or self.job_dirty):
            return
        with self.app.batch_update():
            self._flush_rows()
            self._flush_job()

    def _cells(self, row: FolderProgress) -> tuple[str, ...]:
        if row.job == "verify":
            state = VERIFY_STATES.get(row.state, row.state)
        else:
            state = row.state if row.job == "migrate" else f"{row.job} {row.state}"
        if row.errors and row.job != "verify" and state in ("done", "errors"):
            # a verify row's Messages cell says it; a cancelled folder is no error
            state = f"{row.errors:,} error{'s' if row.errors != 1 else ''}"
        elif row.refused and state in ("done", "errors"):
            state = f"{row.refused:,} refused"
        copying = row.state in ("copying", "running")
        nbytes = row.total_bytes or self.known_bytes.get(row.source) or row.done_bytes
        return (
            folder_label(row.source, row.destination),
            f"{row.done_messages:,}/{row.total_messages:,}",
            fmt_bytes(nbytes) if nbytes else "",
            f"{row.msgs_per_s:.0f}" if copying else "",
            f"{row.bytes_per_s / 1e6:.1f}" if copying else "",
            fmt_eta(row.eta_s) if copying and row.eta_s is not None else "",
            state,
        )

    def _flush_rows(self) -> None:
        table = self.table
        for source in [k for k in self.rows if k in self.dirty]:  # the engine's order
            row = self.rows[source]
            cells = self._cells(row)
            old = self.rendered.get(source)
            styles = ["", "", "", "", "", "", plain_style(self.app, _state_style(row.state))]
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
        # verify counts folders, not messages; 80 columns: the line stays one line
        unit = "folders" if job.job == "verify" else "msgs"
        state = JOB_WORDS.get(job.state, job.state)
        parts = [f"{job.job} {state}: {job.done_messages:,}/{job.total_messages:,} {unit}"]
        if job.total_bytes:
            parts.append(f"{fmt_bytes(job.done_bytes)} of {fmt_bytes(job.total_bytes)}")
        if job.state == "running" and job.msgs_per_s:
            rate = f"{job.msgs_per_s:.0f} msg/s"
            if self.app.size.width >= 100:
                rate += f" {fmt_rate(job.bytes_per_s)}"
            parts.append(rate)
            if job.eta_s is not None:
                parts.append(f"ETA {fmt_eta(job.eta_s)}")
        if job.detail and job.job != "backup":  # a backup's detail is its directory: said above
            parts.append(job.detail)
        if self.side_job and job.job != "migrate" and job.state == "running":
            parts.append(self.side_job)
        self.query_one("#mig-summary", Static).update(" · ".join(parts))

    # -- actions ------------------------------------------------------------------------
    def action_toggle_log(self) -> None:
        """Show or hide the log (hidden at first on narrow screens, where '(see log)'
        would otherwise point nowhere)."""
        log = self.query_one("#mig-log", RichLog)
        log.styles.display = "none" if log.display else "block"
        if log.display:
            log.scroll_end(animate=False)
            self.call_after_refresh(self._wake_log)

    def _wake_log(self) -> None:
        """RichLog holds back what it was given until it learns its size from a Resize;
        a log shown again after a layout change can miss that event and stay empty.
        Tell it its size then."""
        log = self.query_one("#mig-log", RichLog)
        if log.display and log.size.width and not getattr(log, "_size_known", True):
            log.post_message(events.Resize(log.size, log.virtual_size, log.container_size))

    def _see_log(self) -> str:
        return "see the log" if self.query_one("#mig-log", RichLog).display else "l shows the log"

    def _log(self, text: str) -> None:
        stamp = self.now().strftime("%H:%M:%S")
        self.query_one("#mig-log", RichLog).write(f"{stamp} {text}")


#: how a job's state reads in the summary line
JOB_WORDS = {"pausing": "pausing (finishing the batch in flight)", "cancelled": "cancelled",
             "paused": "paused"}


def _state_style(state: str) -> str:
    return {"errors": "bold red", "verified": "green", "done": "green",
            "copying": "bold", "paused": "yellow", "cancelled": "yellow"}.get(state, "")


def _stamp(when: float | None) -> str:
    if not when:
        return "at an unknown time"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))


def _problems(summary: dict[str, Any]) -> str:
    errors = summary.get("errors") or []
    parts = []
    if summary.get("refused"):
        parts.append(f"{summary['refused']:,} refused")
    if errors:
        parts.append(f"{len(errors):,} errors, e.g. {errors[0]}")
    return ", ".join(parts) or "see the log"
