"""The closing panel (``c`` in the checklist, or the palette): is it safe to close the old
mailbox? The engine's verdict (core/wrapup/closing.py), one line per reason with its
verdict word, the earliest safe closing date and the check schedule's sentence. Words,
not only colours: it reads the same with NO_COLOR.

It only shows what the engine says; switchover never closes the old account, and the
checklist's 'close' item stays a person's tick (its evidence shows this verdict).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from switchover.core.errors import sentence

from .base import plain_style

if TYPE_CHECKING:
    from switchover.core.engine import Engine
    from switchover.core.wrapup.closing import Readiness
    from switchover.core.wrapup.schedule import ScheduleStatus

#: verdict word → (shown word, style)
WORDS = {"ok": ("ok", "green"), "not yet": ("NOT YET", "bold yellow"),
         "unknown": ("UNKNOWN", "bold red"), "note": ("note", "dim")}
VERDICT_STYLES = {"ready": "bold green", "not yet": "bold yellow", "could not tell": "bold red"}


def local_now(clock: Callable[[], dt.datetime]) -> dt.datetime:
    """The app's clock as naive local time (what the engine's wrap-up reads)."""
    now = clock()
    return now.astimezone().replace(tzinfo=None) if now.tzinfo else now


def closing_text(readiness: "Readiness", status: "ScheduleStatus", app: object) -> Text:
    text = Text()
    text.append("Closing the old mailbox: ", style="bold")
    text.append(readiness.verdict, style=plain_style(app, VERDICT_STYLES.get(readiness.verdict, "bold")))
    text.append("\n")
    if readiness.ready:
        text.append("Every condition is met. switchover closes nothing itself: ask the provider (or IT) "
                    "to close or archive the old account, then tick 'close' in the checklist.\n")
    elif readiness.earliest_text():
        text.append(readiness.earliest_text()[:1].upper() + readiness.earliest_text()[1:] + ".\n")
    text.append("\n")
    for r in readiness.reasons:
        word, style = WORDS.get(r.verdict, (r.verdict, ""))
        text.append(f"{word:<8} ", style=plain_style(app, style))
        text.append(r.text + "\n")
    text.append("\n")
    text.append("Checks: ", style="bold")
    text.append(status.sentence() + "\n")
    return text


class ClosingScreen(ModalScreen[None]):
    """The verdict, re-read on ``r``; escape closes."""

    DEFAULT_CSS = """
    ClosingScreen { align: center middle; }
    ClosingScreen > .dialog { width: 96; max-width: 98%; }
    """
    BINDINGS = [Binding("escape,q", "close", "Close", id="closing.close"),
                Binding("r", "refresh", "Re-check", id="closing.refresh")]

    def __init__(self, engine: "Engine", clock: Callable[[], dt.datetime]) -> None:
        super().__init__()
        self.engine = engine
        self.clock = clock
        self.readiness: Readiness | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="closing-dialog"):
            yield Static("Closing readiness", classes="dialog-title")
            yield Static("Reading the state file …", id="closing-text", markup=False)
            yield Static("r re-check · escape close", classes="dialog-keys")

    def on_mount(self) -> None:
        self.run_worker(self._load, group="closing", exclusive=False)

    async def _load(self) -> None:
        body = self.query_one("#closing-text", Static)
        now = local_now(self.clock)
        try:
            readiness = await self.engine.closing.readiness(now)
            status = await self.engine.schedule.status(now)
        except Exception as exc:
            body.update(f"The closing readiness could not be read: {sentence(exc)}")
            return
        self.readiness = readiness
        body.update(closing_text(readiness, status, self.app))

    def action_refresh(self) -> None:
        self.run_worker(self._load, group="closing", exclusive=False)

    def action_close(self) -> None:
        self.dismiss(None)
