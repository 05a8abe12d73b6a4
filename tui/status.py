"""The status line: connection state of both mailboxes, the transition day, unhandled
arrivals. Words, not only colours, so it reads the same with NO_COLOR."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.widgets import Static

from .base import plain_style

# state → (mark, style); the mark carries the meaning when colour is off
_STATES = {
    "connected": ("●", "green"),
    "idle": ("●", "green"),
    "connecting": ("○", "yellow"),
    "reconnecting": ("○", "yellow"),
    "auth failed": ("✗", "bold red"),
    "offline": ("✗", "bold red"),
    "no password": ("✗", "bold yellow"),
}


def transition_text(start: dt.date | None, close: dt.date | None, today: dt.date,
                    short: bool = False) -> str:
    """'transition day 12 of 92, closes 2027-02-28' (or what is known of it); the short
    form 'day 12/92 → 2027-02-28' fits an 80-column status line."""
    if close is None and start is None:
        return "transition dates not set"
    if start is None:
        left = (close - today).days  # type: ignore[operator]
        return f"old mailbox closes {close.isoformat()} ({left} days)"  # type: ignore[union-attr]
    if today < start:
        return f"transition starts {start.isoformat()}"
    n = (today - start).days + 1
    if close is None:
        return f"transition day {n}"
    m = (close - start).days + 1
    if today > close:
        return f"transition over, closed {close.isoformat()}"
    if short:
        return f"day {n}/{m} → {close.isoformat()}"
    return f"transition day {n} of {m}, closes {close.isoformat()}"


class StatusLine(Static):
    """One line; the app feeds it with ``set_connection`` / ``set_counts`` / ``refresh_day``."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.connections: dict[str, str] = {"old": "unknown", "new": "unknown"}
        self.transition = ""
        self.transition_short = ""
        self.unhandled: int | None = None
        self.note = ""

    def set_connection(self, side: str, state: str) -> None:
        if self.connections.get(side) != state:
            self.connections[side] = state
            self._render_line()

    def set_counts(self, unhandled: int | None) -> None:
        if unhandled != self.unhandled:
            self.unhandled = unhandled
            self._render_line()

    def set_transition(self, text: str, short: str = "") -> None:
        if (text, short) != (self.transition, self.transition_short):
            self.transition, self.transition_short = text, short or text
            self._render_line()

    def on_resize(self) -> None:
        self._render_line()

    def set_note(self, text: str) -> None:
        if text != self.note:
            self.note = text
            self._render_line()

    def _render_line(self) -> None:
        narrow = self.size.width < 100
        line = Text(no_wrap=True, overflow="ellipsis")
        for side in ("old", "new"):
            state = self.connections.get(side, "unknown")
            mark, style = _STATES.get(state, ("?", "dim"))
            line.append(f"{side} ")
            line.append(f"{mark} {state}", style=plain_style(self.app, style))
            line.append(" │ " if narrow else "  ", style="dim")
        if not narrow:
            line.append("│ ", style="dim")
        line.append(self.transition_short if narrow else self.transition)
        if self.unhandled is not None:
            line.append(" │ ", style="dim")
            line.append(f"{self.unhandled} unhandled",
                        style="bold" if self.unhandled else "")
        if self.note:
            line.append(" │ ", style="dim")
            line.append(self.note, style="italic")
        self.update(line)
