"""The help screen (F1 / ?): the keys of the focused pane — all of them, also those the
footer hides while they cannot act — then the table's moving keys and the global ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

if TYPE_CHECKING:
    from .base import Pane

#: the table's own keys worth listing (after the pane's): moving, not the rest
NAV_KEYS = {"Cursor up": "Up", "Up": "Up", "Cursor down": "Down", "Down": "Down",
            "Page up": "Page up", "Page down": "Page down", "Top": "First row",
            "Bottom": "Last row"}


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


def help_for(app: App, screen: Screen, pane: "Pane | None") -> HelpScreen:
    """The help screen for ``pane`` on ``screen``: the pane's keys, the table's moving
    keys, then the keys that work everywhere."""
    pane_keys: dict[str, list[str]] = {}
    nav_keys: dict[str, list[str]] = {}
    global_keys: dict[str, list[str]] = {}
    for key, active in screen.active_bindings.items():
        b = active.binding
        if not b.description:
            continue
        label = key_label(app, key)
        if active.node in (app, screen):
            what = "Command palette" if b.description == "palette" else b.description
            global_keys.setdefault(what, []).append(label)
        elif isinstance(active.node, DataTable):
            what = NAV_KEYS.get(b.description)
            if what:  # left/right, select, page left ... do nothing useful here
                nav_keys.setdefault(what, []).append(label)
    # every key of the pane, also those that cannot act right now (the footer hides
    # those: cancel only while something runs) — help tells what exists
    for b in pane.BINDINGS if pane is not None else []:
        if isinstance(b, Binding) and b.description:
            # the footer's label is short; the tooltip, when given, says it whole
            pane_keys.setdefault(b.tooltip or b.description, []).append(key_label(app, b.key))
    title = pane.HELP_TITLE if pane is not None else "switchover"
    about = pane.HELP_ABOUT if pane is not None else ""
    return HelpScreen(
        title, [(", ".join(dict.fromkeys(k)), d) for d, k in pane_keys.items()]
        + [(", ".join(dict.fromkeys(k)), d) for d, k in nav_keys.items()],
        [(", ".join(dict.fromkeys(k)), d) for d, k in global_keys.items()], about)
