"""Modal prompts: the masked credential prompt, a one-line text prompt, a y/n confirm
(optionally showing what is about to happen, e.g. a reminder exactly as it will be
sent) and the question a send in doubt asks.

Secrets typed here go straight to ``engine.set_secret`` (memory only); nothing in this
module stores or logs them.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class TextPrompt(ModalScreen[str | None]):
    """Ask for one line of text; enter accepts, escape cancels (returns None)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel")]

    def __init__(self, title: str, default: str = "", *, hint: str = "",
                 password: bool = False, placeholder: str = "") -> None:
        super().__init__()
        self._title = title
        self._default = default
        self._hint = hint
        self._password = password
        self._placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="dialog-title")
            if self._hint:
                yield Static(self._hint, classes="dialog-hint", markup=False)
            yield Input(value=self._default, password=self._password,
                        placeholder=self._placeholder, id="prompt-input")
            yield Static("enter accept · escape cancel", classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SecretPrompt(TextPrompt):
    """Masked prompt for a password / authorization code: at start when the config gives
    none, and again whenever the user asks (after a refused login)."""

    def __init__(self, side: str, username: str, host: str, *, problem: str = "") -> None:
        where = f"{username} at {host}."
        if problem:
            hint = f"{where} {problem} Type it here; it is kept in memory only."
        else:
            hint = (f"{where} The config names no password source, so type it here; it is "
                    f"kept in memory only and asked again next start.")
        super().__init__(f"Password for the {side} mailbox", hint=hint, password=True,
                         placeholder="password or app password / authorization code")


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y confirms, n or escape declines. ``body`` shows what a yes
    does (shown literally, scrollable); ``warning`` stands out above it."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, body: str | Text = "", *, warning: str = "",
                 yes: str = "yes", no: str = "no", scroll: bool = False) -> None:
        super().__init__()
        self._question = question
        self._body = body
        self._warning = warning
        self._keys = f"y {yes} · n / escape {no}" + (" · ↑↓ scroll" if scroll and body else "")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm"):
            yield Static(self._question, classes="dialog-title", markup=False)
            if self._warning:
                yield Static(Text(self._warning, style="bold"), classes="dialog-warning",
                             id="confirm-warning")
            if self._body:
                with VerticalScroll(classes="dialog-body"):
                    yield Static(self._body, markup=False, id="confirm-body")
            yield Static(self._keys, classes="dialog-keys")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class DoubtScreen(ModalScreen[str | None]):
    """A send whose outcome is unknown: the person decides. y — it arrived (mark it
    delivered), s — send it again, escape — decide later (None)."""

    BINDINGS = [
        Binding("y", "choose('delivered')", "It arrived", id="doubt.delivered"),
        Binding("s", "choose('again')", "Send again", id="doubt.again"),
        Binding("escape,n", "choose('')", "Later", id="doubt.later"),
    ]

    def __init__(self, question: str, body: str | Text) -> None:
        super().__init__()
        self._question = question
        self._body = body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm"):
            yield Static(self._question, classes="dialog-title", markup=False)
            yield Static(self._body, markup=False, id="doubt-body")
            yield Static("y it arrived · s send it again · escape decide later",
                         classes="dialog-keys")

    def action_choose(self, value: str) -> None:
        self.dismiss(value or None)
