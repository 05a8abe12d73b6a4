"""The preflight screen (``p`` in the checklist, or the palette): runs the engine's
preflight (core/prepare/preflight.py) — logins, capabilities, fit, the round trip of
test messages, DNS, the address — and shows its report grouped by section, every line
with its verdict word (ok / warn / FAILED / could not run), so it reads the same with
NO_COLOR. The checklist items it proves tick themselves through the engine's events.

The run is an app-level worker: closing the screen does not cut a test message off in
the middle of its send. A second run while one is under way is refused by the engine
(one preflight per state file) and the screen says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from switchover.core.errors import sentence
from switchover.core.prepare.records import FAIL, NOT_RUN, OK, SECTIONS, WARN, Report

from .base import plain_style

if TYPE_CHECKING:
    from switchover.core.engine import Engine

STYLES = {OK: "green", WARN: "bold yellow", FAIL: "bold red", NOT_RUN: "bold red"}
#: seconds the round trip waits for each test message
TIMEOUT = 120.0


def report_text(report: Report, app: object) -> Text:
    text = Text()
    for name in SECTIONS:
        found = report.section(name)
        if not found:
            continue
        text.append(name + "\n", style="bold")
        for f in found:
            text.append(f"  {f.word:<13} ", style=plain_style(app, STYLES.get(f.verdict, "")))
            text.append(f"{f.label}: {f.found}\n")
            if f.verdict != OK:
                if f.meaning:
                    text.append(f"                means: {f.meaning}\n", style="dim")
                if f.advice:
                    text.append(f"                to do: {f.advice}\n")
        text.append("\n")
    text.append(report.summary(), style="bold")
    return text


class PreflightScreen(ModalScreen[None]):
    """Runs the preflight on open (``r`` again); escape closes."""

    DEFAULT_CSS = """
    PreflightScreen { align: center middle; }
    PreflightScreen > .dialog { width: 110; max-width: 98%; height: 90%; }
    """
    BINDINGS = [Binding("escape,q", "close", "Close", id="preflight.close"),
                Binding("r", "run", "Run again", id="preflight.run")]

    def __init__(self, engine: "Engine", *, send: bool = True, timeout: float = TIMEOUT) -> None:
        super().__init__()
        self.engine = engine
        self.send = send
        self.timeout = timeout
        self.running = False
        self.report: Report | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="preflight-dialog"):
            yield Static("Preflight — is the new mailbox ready for the switch?", classes="dialog-title")
            yield Static("", id="preflight-text", markup=False)
            yield Static("r run again · escape close", classes="dialog-keys")

    def on_mount(self) -> None:
        self.action_run()

    def action_run(self) -> None:
        if self.running:
            self.app.notify("The preflight is already running.", title="Preflight")
            return
        self.running = True
        what = (f"sending three test messages and waiting up to {self.timeout:g} s for them"
                if self.send else "no test messages")
        self._show(Text(f"Checking logins, capabilities, room, DNS and the address; {what} …"))
        self.app.run_worker(self._run, group="preflight", exclusive=False)

    async def _run(self) -> None:
        try:
            report = await self.engine.preflight.run(send=self.send, timeout=self.timeout)
        except Exception as exc:
            self._show(Text(f"The preflight could not run: {sentence(exc)}"))
            self.app.notify(sentence(exc), title="Preflight", severity="error", timeout=10)
            return
        finally:
            self.running = False
        self.report = report
        self._show(report_text(report, self.app))
        blocking = report.blocking
        self.app.notify(report.summary(), title="Preflight", timeout=10,
                        severity="warning" if blocking or report.login_failed else "information")

    def _show(self, text: Text) -> None:
        if self.is_attached:
            self.query_one("#preflight-text", Static).update(text)

    def action_close(self) -> None:
        self.dismiss(None)
