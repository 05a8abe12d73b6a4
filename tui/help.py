"""The help screen (F1 / ?): the keys of the focused pane, then the global ones."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from rich.markup import escape
from textual.app import App
from textual.widgets import Static


def key_label(app: App, key: str) -> str:
    return ", ".join(app.get_key_display(Binding(k.strip(), "")) for k in key.split(","))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close", id="help.close")]

    def __init__(self, title: str, pane_keys: list[tuple[str, str]],
                 global_keys: list[tuple[str, str]], about: str = "") -> None:
        super().__init__()
        self._title = title
        self._pane_keys = pane_keys
        self._global_keys = global_keys
        self._about = about

    def compose(self) -> ComposeResult:
        lines = [f"[b]{self._title}[/b]"]
        if self._about:
            lines += ["", escape(self._about)]
        lines += [""] + [f"  {escape(k):<14} {escape(d)}" for k, d in self._pane_keys]
        lines += ["", "[b]Everywhere[/b]", ""] + [f"  {escape(k):<14} {escape(d)}" for k, d in self._global_keys]
        lines += ["", "escape closes this help"]
        with VerticalScroll(classes="dialog help"):
            yield Static("\n".join(lines), markup=True, id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)
