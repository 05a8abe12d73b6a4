"""Modal prompts: the masked credential prompt, a one-line text prompt and a y/n confirm.

Secrets typed here go straight to ``engine.set_secret`` (memory only); nothing in this
module stores or logs them.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
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
                yield Static(self._hint, classes="dialog-hint")
            yield Input(value=self._default, password=self._password,
                        placeholder=self._placeholder, id="prompt-input")
            yield Static("enter accept · escape cancel", classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SecretPrompt(TextPrompt):
    """Masked prompt for a password / authorization code the config does not supply."""

    def __init__(self, side: str, username: str, host: str) -> None:
        super().__init__(
            f"Password for the {side} mailbox",
            hint=(f"{username} at {host}. The config names no password source, so type it "
                  f"here; it is kept in memory only and asked again next start."),
            password=True, placeholder="password or app password / authorization code")


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y confirms, n or escape declines."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self._question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._question, classes="dialog-title")
            yield Static("y yes · n / escape no", classes="dialog-keys")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)
