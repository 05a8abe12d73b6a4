"""The status line: connection state of both mailboxes, the transition day, when the old
inbox was last checked (or that a check is overdue, core/wrapup/schedule.py), unhandled
arrivals. Words, not only colours, so it reads the same with NO_COLOR."""

from __future__ import annotations

import datetime as dt
import time

from rich.text import Text
from textual.widgets import Static

from .base import plain_style

#: the schedule's words are re-read at most this often (the app's count refreshes drive it)
SCHEDULE_SECONDS = 20.0

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
        self.schedule = ""          # 'checked 2 h ago' / 'check overdue (3 days)'
        self.overdue = False
        self._schedule_read = 0.0
        self._reading = False

    def set_connection(self, side: str, state: str) -> None:
        if self.connections.get(side) != state:
            self.connections[side] = state
            self._render_line()

    def set_counts(self, unhandled: int | None) -> None:
        if unhandled != self.unhandled:
            self.unhandled = unhandled
            self._render_line()
        self.refresh_schedule()

    def set_schedule(self, text: str, overdue: bool) -> None:
        if (text, overdue) != (self.schedule, self.overdue):
            self.schedule, self.overdue = text, overdue
            self._render_line()

    def refresh_schedule(self, *, force: bool = False) -> None:
        """Re-read the check schedule (the app refreshes the counts every 30 s and after
        arrivals; this rides along, at most every SCHEDULE_SECONDS)."""
        if self._reading or (not force and time.monotonic() - self._schedule_read < SCHEDULE_SECONDS):
            return
        engine = getattr(self.app, "engine", None)
        schedule = getattr(engine, "schedule", None)
        if schedule is None:
            return
        self._reading = True
        self._schedule_read = time.monotonic()
        self.run_worker(self._read_schedule(schedule), group="status-schedule")

    async def _read_schedule(self, schedule: object) -> None:
        from .closing import local_now
        try:
            status = await schedule.status(local_now(self.app.clock))  # type: ignore[attr-defined]
            self.set_schedule(status.short(), status.overdue)
        except Exception:      # the status line never fails the app; the next refresh retries
            pass
        finally:
            self._reading = False

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
        """The widest arrangement that fits: the long day and the schedule, else the
        short day, else the schedule only when a check is overdue (then in place of the
        day on the narrowest screens); the unhandled count always stays."""
        width = self.size.width or 80
        overdue = self.schedule if self.overdue else ""
        choices = [(self.transition, self.schedule), (self.transition_short, self.schedule),
                   (self.transition_short, overdue), ("", overdue) if overdue else
                   (self.transition_short, "")]
        for day, schedule in choices:
            line = self._line(day, schedule, narrow=width < 100)
            if line.cell_len <= width:
                break
        self.update(line)

    def _line(self, day: str, schedule: str, *, narrow: bool) -> Text:
        line = Text(no_wrap=True, overflow="ellipsis")
        for side in ("old", "new"):
            state = self.connections.get(side, "unknown")
            mark, style = _STATES.get(state, ("?", "dim"))
            line.append(f"{side} ")
            line.append(f"{mark} {state}", style=plain_style(self.app, style))
            line.append(" │ " if narrow else "  ", style="dim")
        if not narrow:
            line.append("│ ", style="dim")
        parts = [(day, "")] if day else []
        if schedule:
            parts.append((schedule, "bold" if self.overdue else ""))
        if self.unhandled is not None:
            parts.append((f"{self.unhandled} unhandled", "bold" if self.unhandled else ""))
        if self.note:
            parts.append((self.note, "italic"))
        for i, (text, style) in enumerate(parts):
            if i:
                line.append(" │ ", style="dim")
            line.append(text, style=style)
        return line
