"""The phase checklist pane: the four phases of PRODUCT.md, their items, ticks, notes,
due dates and the engine's evidence.

Items the engine can prove are ticked by the engine; when a person ticks one and the
proof disagrees, the engine raises a SwitchoverError whose sentence becomes a
notification — the tick does not happen.
"""

from __future__ import annotations

from functools import partial

import datetime as dt
import time
from typing import Any, Awaitable, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.widgets import DataTable, Static

from switchover.core.errors import sentence
from switchover.core.checklist import ChecklistItem
from switchover.core.events import ChecklistChanged, Event

from .base import Pane, cell, clip, table_keys
from .prompts import TextPrompt

PHASES = {
    1: "Internal request and preparation",
    2: "Data migration",
    3: "Notify and switch",
    4: "Wrap-up and maintenance",
}
MARKS = {"done": "[x]", "skipped": "[-]", "open": "[ ]"}


class ChecklistTable(DataTable):
    BINDINGS = table_keys("checklist")


class ChecklistPane(Pane):
    HELP_TITLE = "Checklist — the four phases of the change"
    HELP_ABOUT = ("Items marked 'engine' are proved by switchover itself (logins, backup, "
                  "migration, auto-reply ...); a person cannot tick them into a false state.")
    BINDINGS = [
        Binding("space", "tick", "Tick", id="checklist.tick"),
        Binding("n", "note", "Note", id="checklist.note"),
        Binding("d", "due", "Due date", id="checklist.due"),
        Binding("x", "skip", "Skip", id="checklist.skip"),
        Binding("e", "evidence", "Re-check", id="checklist.evidence"),
        Binding("p", "preflight", "Preflight", show=False, id="checklist.preflight"),   # tui/preflight.py
        # phase 4: the closing verdict (tui/closing.py); named in those items' detail
        Binding("c", "closing", "Closing readiness", show=False, id="checklist.closing"),
        # issue 13: the request letter (tui/letter.py), the scan results (tui/scan.py)
        Binding("l", "letter", "Request letter", show=False, id="checklist.letter"),
        Binding("s", "scan", "Scan results", show=False, id="checklist.scan"),
        # issue 14: sign an OAuth2 mailbox in again from its login item (tui/signin.py)
        Binding("i", "signin", "Sign in", show=False, id="checklist.signin"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.items: dict[str, ChecklistItem] = {}
        self.progress: dict[int, tuple[int, int]] = {}
        self._keep_message_until = 0.0

    def compose(self) -> ComposeResult:
        yield self.message_line()
        with Container(classes="split"):
            yield ChecklistTable(id="checklist-table", cursor_type="row")
            # scrollable: evidence, a note and the advice can outgrow 80x24's few lines
            # (tab focuses it, the arrows scroll it)
            with VerticalScroll(id="checklist-detail", classes="detail"):
                yield Static("", id="checklist-detail-text", markup=False)

    def on_mount(self) -> None:
        width = self.app.size.width
        # the table gets 3/5 of a wide screen, all of a narrow one; the title column takes
        # what the fixed columns leave (no horizontal scrolling at 80 columns)
        table_w = width * 3 // 5 if width >= 110 else width
        table = self.table
        table.add_column(" ", key="mark", width=3)
        table.add_column("Item", key="title", width=max(20, table_w - 3 - 10 - 6 - 8 - 2))
        table.add_column("Due", key="due", width=10)
        table.add_column("By", key="by", width=6)

    @property
    def table(self) -> DataTable:
        return self.query_one("#checklist-table", DataTable)

    # -- loading ------------------------------------------------------------------------
    async def load(self) -> None:
        items = await self.attempt("checklist", self.engine.checklist.items)
        if items is None:
            return
        self.items = {item.key: item for item in items}
        self._compute_progress()
        self._rebuild()
        if not self.table.has_focus and self.sapp.focused is None:
            self.table.focus()

    def _compute_progress(self) -> None:
        progress: dict[int, list[int]] = {p: [0, 0] for p in PHASES}
        for item in self.items.values():
            bucket = progress.setdefault(item.phase, [0, 0])
            bucket[1] += 1
            if item.state in ("done", "skipped"):
                bucket[0] += 1
        self.progress = {p: (d, t) for p, (d, t) in progress.items()}
        done = sum(d for d, _ in self.progress.values())
        total = sum(t for _, t in self.progress.values())
        phases = "  ".join(f"{p}: {d}/{t}" for p, (d, t) in sorted(self.progress.items()))
        if time.monotonic() >= self._keep_message_until:  # a re-check's findings stay a while
            self.say(f"{done} of {total} done — phase {phases}")

    def _heading(self, phase: int) -> tuple[Text, Text, Text, Text]:
        done, total = self.progress.get(phase, (0, 0))
        bar_w = 6
        filled = round(bar_w * done / total) if total else 0
        title = Text(f"Phase {phase} · {PHASES.get(phase, '')}", style="bold")
        return (cell(""), title, cell(f"{done}/{total}", "bold"),
                cell("█" * filled + "░" * (bar_w - filled)))

    def _row(self, item: ChecklistItem) -> tuple[Text, Text, Text, Text]:
        mark = MARKS.get(item.state, "[ ]")
        style = "dim" if item.state in ("done", "skipped") else ""
        title = item.title + (" ✎" if item.note else "")
        due = item.due.isoformat() if isinstance(item.due, dt.date) else (item.due or "")
        by = item.by or ("engine" if item.provable else "")
        return (cell(mark, "bold" if item.state == "done" else ""), cell(title, style),
                cell(due), cell(by, "italic" if by == "engine" else "dim"))

    def _rebuild(self) -> None:
        table = self.table
        selected = self._selected_key()
        table.clear()
        for phase in sorted({*PHASES, *(i.phase for i in self.items.values())}):
            table.add_row(*self._heading(phase), key=f"phase:{phase}")
            for item in self.items.values():
                if item.phase == phase:
                    table.add_row(*self._row(item), key=item.key)
        if selected is not None:
            try:
                table.move_cursor(row=table.get_row_index(selected), animate=False)
            except Exception:
                pass
        elif table.row_count > 1:
            table.move_cursor(row=1, animate=False)
        self._show_detail()

    def _update_item(self, key: str) -> None:
        item = self.items.get(key)
        if item is None:
            return
        table = self.table
        try:
            for col, value in zip(("mark", "title", "due", "by"), self._row(item)):
                table.update_cell(key, col, value)
            heading = f"phase:{item.phase}"
            for col, value in zip(("mark", "title", "due", "by"), self._heading(item.phase)):
                table.update_cell(heading, col, value)
        except Exception:
            self._rebuild()
            return
        if key == self._selected_key():
            self._show_detail()

    # -- selection and detail -----------------------------------------------------------
    def _selected_key(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        except Exception:
            return None
        return row_key.value

    def selected_item(self) -> ChecklistItem | None:
        key = self._selected_key()
        return self.items.get(key) if key else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        key = self._selected_key()
        detail = self.query_one("#checklist-detail-text", Static)
        if key != getattr(self, "_detail_key", None):  # another item: start at its top
            self._detail_key = key
            self.query_one("#checklist-detail", VerticalScroll).scroll_home(animate=False)
        if key and key.startswith("phase:"):
            phase = int(key.split(":")[1])
            done, total = self.progress.get(phase, (0, 0))
            detail.update(Text(f"Phase {phase} · {PHASES.get(phase, '')}\n{done} of {total} items done.",
                               style="bold"))
            return
        item = self.items.get(key) if key else None
        if item is None:
            detail.update("")
            return
        # title, state and due date share one line: at 80x24 the detail box has 7 lines
        # and the seed's advice (up to 4 of them) must still fit below evidence and note
        text = Text()
        text.append(item.title, style="bold")
        state = {"done": "done", "skipped": "skipped", "open": "open"}.get(item.state, item.state)
        who = f" by {item.by}" if item.by else ""
        text.append(f" — {state}{who}")
        if item.due:
            due = item.due.isoformat() if isinstance(item.due, dt.date) else str(item.due)
            text.append(f" · due {due}")
        if item.provable:
            text.append(" · the engine checks this one", style="italic")
        text.append("\n")
        if item.evidence:
            text.append("Evidence: ", style="bold")
            text.append(item.evidence + "\n")
        hint = item.proof_hint
        if item.provable and item.state != "done" and hint:
            text.append(hint[:1].upper() + hint[1:] + ".\n", style="italic")
        if item.note:
            text.append("Note: ", style="bold")
            text.append(item.note + "\n")
        if item.advice:
            text.append("\n" + item.advice)
        if item.key == "request":
            text.append("\nl shows the letter from the measured mailbox (中文 / English) and writes it.",
                        style="italic")
        if item.key in ("website", "documents"):
            text.append("\ns shows the places that still show the old address, and scans again.",
                        style="italic")
        if item.phase == 4:
            text.append("\nc shows the closing readiness: the verdict, its reasons, the earliest date.",
                        style="italic")
        side = self._signin_side(item.key)
        if side:
            text.append(f"\ni signs in to the {side} mailbox again (OAuth2: the provider's page, "
                        f"then a login proves it).", style="italic")
        detail.update(text)

    # -- events -------------------------------------------------------------------------
    def handle_events(self, events: list[Event]) -> None:
        keys = {e.item for e in events if isinstance(e, ChecklistChanged)}
        if keys:
            self.serial.run("reload", partial(self._reload_items, keys))

    async def _reload_items(self, keys: set[str]) -> None:
        items = await self.attempt("checklist", self.engine.checklist.items)
        if items is None or not self.is_attached:
            return
        fresh = {item.key: item for item in items}
        structural = set(fresh) != set(self.items)
        self.items = fresh
        self._compute_progress()
        if structural:
            self._rebuild()
        else:
            for key in fresh:
                self._update_item(key)

    # -- actions ------------------------------------------------------------------------
    async def _apply(self, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            await call()
        except Exception as exc:
            self.sapp.notify(sentence(exc), title=what, severity="warning", timeout=8)
            return
        await self._reload_items(set())

    def action_tick(self) -> None:
        item = self.selected_item()
        if item is None:
            return
        checklist = self.engine.checklist
        self.run_worker(partial(self._apply, "Tick", partial(checklist.tick, item.key, item.state != "done")),
                        group="checklist-action")

    def action_skip(self) -> None:
        """Mark an item not needed (x again reopens it)."""
        item = self.selected_item()
        if item is None:
            return
        checklist = self.engine.checklist
        if item.state == "skipped":
            self.run_worker(partial(self._apply, "Reopen", partial(checklist.tick, item.key, False)),
                            group="checklist-action")
        else:
            self.run_worker(partial(self._apply, "Skip", partial(checklist.skip, item.key)),
                            group="checklist-action")

    def action_note(self) -> None:
        item = self.selected_item()
        if item is None:
            return

        def done(text: str | None) -> None:
            if text is not None:
                self.run_worker(partial(self._apply, "Note", partial(
                    self.engine.checklist.set_note, item.key, text.strip())), group="checklist-action")

        self.app.push_screen(TextPrompt(f"Note for: {clip(item.title, 50)}", item.note or ""), done)

    def action_due(self) -> None:
        item = self.selected_item()
        if item is None:
            return
        current = item.due.isoformat() if isinstance(item.due, dt.date) else (item.due or "")

        def done(text: str | None) -> None:
            if text is None:
                return
            text = text.strip()
            if not text:
                value = None
            else:
                try:
                    value = dt.date.fromisoformat(text)
                except ValueError:
                    self.sapp.notify(f"'{text}' is not a date like 2026-12-31.", severity="warning")
                    return
            self.run_worker(partial(self._apply, "Due date", partial(
                self.engine.checklist.set_due, item.key, value)), group="checklist-action")

        self.app.push_screen(TextPrompt(f"Due date for: {clip(item.title, 44)}", current,
                                        placeholder="YYYY-MM-DD, empty to clear"), done)

    def action_closing(self) -> None:
        """Is it safe to close the old mailbox? (core/wrapup/closing.py)"""
        from .closing import ClosingScreen
        self.app.push_screen(ClosingScreen(self.engine, self.sapp.clock))

    def action_letter(self) -> None:
        """The change request letter (core/prepare/letter.py)."""
        from .letter import LetterScreen
        self.app.push_screen(LetterScreen(self.engine))

    def action_scan(self) -> None:
        """Where the old address is still found (core/prepare/scan.py)."""
        from .scan import ScanScreen
        self.app.push_screen(ScanScreen(self.engine))

    def _signin_side(self, key: str | None) -> str | None:
        """The side of a login item whose mailbox signs in with OAuth2, else None."""
        side = {"login_old": "old", "login_new": "new"}.get(key or "")
        return side if side and self.engine.config.account(side).signs_in else None

    def action_signin(self) -> None:
        """Sign an OAuth2 mailbox in again (the app's Sign in dialog, then it reconnects)."""
        side = self._signin_side(self._selected_key())
        if side is None:
            self.say("i signs in from a mailbox login item whose account uses OAuth2 "
                     "(Microsoft 365, Google Workspace).")
            return
        self.sapp.action_signin(side)

    def action_preflight(self) -> None:
        """Run the preflight (logins, fit, round trip, DNS, the address) and show its report."""
        from .preflight import PreflightScreen
        self.app.push_screen(PreflightScreen(self.engine))

    def action_evidence(self) -> None:
        """Re-check what the engine can prove (logins included) and say what was found."""
        self.serial.run("recheck", self._recheck)

    async def _recheck(self) -> None:
        self.say("Checking what the engine can prove (logging in to both mailboxes) …")
        try:
            found = await self.engine.checklist.recheck()
        except Exception as exc:
            self.say(f"re-check: {sentence(exc)}", error=True)
            self.sapp.notify(sentence(exc), title="Re-check", severity="error", timeout=10)
            await self._reload_items(set())
            return
        await self._reload_items(set())
        if not found:
            self.sapp.notify("Nothing the engine can check right now.", title="Re-check")
            return
        bad = [p for p in found if not p.ok]
        lines = [f"{'ok' if p.ok else 'NOT YET'} · {p.title}: {p.evidence}" for p in found]
        self.sapp.notify("\n".join(lines), title="Re-check", timeout=20,
                         severity="warning" if bad else "information")
        self._keep_message_until = time.monotonic() + 20
        self.say(f"Re-checked {len(found)} items: {len(found) - len(bad)} proven"
                 + (f", {len(bad)} not ({', '.join(p.title for p in bad)})" if bad else "")
                 + ".", error=bool(bad))
