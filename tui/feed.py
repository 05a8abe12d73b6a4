"""The old-inbox feed: arrivals newest first (paged from SQLite), a preview of the
selected one, and one key each to forward it, remind its sender or mark it handled.

Every action is requested from the engine, which records it first and waits an undo
window (config.transition.undo_seconds) before carrying it out; the row shows the
countdown and ``u`` cancels it. A stray key therefore never sends mail irrevocably.
"""

from __future__ import annotations

from functools import partial

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.widgets import DataTable, Static

from core.events import ActionChanged, ArrivalSeen, Event

from .base import Pane, cell, clip, person_error, plain_style, table_keys

PAGE = 50
#: the feed never holds more than this many rows in memory; older ones stay in SQLite
MAX_ROWS = 1000
COLUMNS = ("time", "sender", "subject", "badge", "action")
KIND_WORDS = {
    "forward": ("forward", "forwarding", "forwarded"),
    "remind": ("remind", "reminding", "reminded"),
    "handled": ("handle", "handling", "handled"),
}
BADGE_STYLES = {"customer": "bold", "new sender": "bold", "bounce": "bold red", "spam": "dim",
                "automated": "dim", "switched": "green", "notified": "cyan"}


@dataclass
class Pending:
    action_id: int
    arrival_id: int
    kind: str
    deadline: float           # time.monotonic() when the engine will carry it out


def when(value: Any, now: dt.datetime, *, with_time: bool = True) -> str:
    """Short local time in 5 columns: '14:02' today, '11-24' this year, '2025' before."""
    if value is None or value == "":
        return ""
    stamp: dt.datetime | None = None
    if isinstance(value, str) and len(value) == 10:
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            pass
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        if value == now.date():
            return "today"
        return value.strftime("%m-%d") if value.year == now.year else str(value.year)
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, (int, float)):
        stamp = dt.datetime.fromtimestamp(value, tz=now.tzinfo or dt.timezone.utc)
    elif isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value)
        except ValueError:
            try:
                from email.utils import parsedate_to_datetime
                stamp = parsedate_to_datetime(value)
            except Exception:
                return clip(value, 11)
    if stamp is None:
        return ""
    if stamp.tzinfo is not None and now.tzinfo is not None:
        stamp = stamp.astimezone(now.tzinfo)
    if stamp.date() == now.date():
        return stamp.strftime("%H:%M") if with_time else "today"
    if stamp.year == now.year:
        return stamp.strftime("%m-%d")
    return str(stamp.year)


def full_date(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M %z").strip()
    return "" if value is None else str(value)


def action_text(actions: dict[str, str] | None, state: str | None,
                pending: dict[str, float] | None = None) -> str:
    """The action cell: 'forward in 4s · u undo', 'forwarded, reminded', 'remind failed'."""
    parts: list[str] = []
    pending = pending or {}
    for kind, st in (actions or {}).items():
        verb, doing, done = KIND_WORDS.get(kind, (kind, kind, kind))
        if kind in pending:
            parts.append(f"{verb} in {max(0, int(pending[kind] + 0.999))}s (u)")
        elif st == "done":
            parts.append(done)
        elif st == "running":
            parts.append(doing + "…")
        elif st == "pending":
            parts.append(f"{verb} queued")
        elif st == "failed":
            parts.append(f"{verb} failed (t)")  # fits the 18-column cell; help: t retries
        elif st == "cancelled":
            continue
        else:
            parts.append(f"{verb} {st}")
    if not parts and state and state not in ("new", "unhandled", "open"):
        parts.append(state)
    return ", ".join(parts)


class FeedTable(DataTable):
    BINDINGS = table_keys("feed")


class FeedPane(Pane):
    HELP_TITLE = "Feed — what still arrives at the old address"
    HELP_ABOUT = ("f, r and h wait a few seconds before they act (shown in the row); "
                  "u undoes the last one within that window.")
    BINDINGS = [
        Binding("f", "act('forward')", "Forward", id="feed.forward"),
        Binding("r", "act('remind')", "Remind", id="feed.remind"),
        Binding("h", "act('handled')", "Handled", id="feed.handled"),
        Binding("u", "undo", "Undo", id="feed.undo"),
        Binding("t", "retry", "Retry", id="feed.retry"),
        Binding("m", "more", "More", id="feed.more"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals: dict[int, Any] = {}
        self.order: list[int] = []
        self.limit = PAGE
        self.pending: dict[int, Pending] = {}
        self.preview_id: int | None = None
        self.counts: dict[str, int] = {}
        self._dirty_ids: set[int] = set()
        self._reload_wanted = False

    def compose(self) -> ComposeResult:
        yield self.message_line()
        with Container(classes="split"):
            yield FeedTable(id="feed-table", cursor_type="row")
            with VerticalScroll(id="feed-preview-box", classes="detail"):
                yield Static("", id="feed-preview", markup=False)

    def on_mount(self) -> None:
        table = self.table
        width = self.app.size.width
        # wide: the table takes 2/3 beside the preview; the subject gets what is left
        table_w = width * 2 // 3 if width >= 110 else width
        table.add_column("Time", key="time", width=5)
        table.add_column("From", key="sender", width=14)
        table.add_column("Subject", key="subject", width=max(12, table_w - 5 - 14 - 10 - 18 - 12))
        table.add_column("Badge", key="badge", width=10)
        table.add_column("Action", key="action", width=18)
        self.set_interval(0.5, self._tick_pending)

    @property
    def table(self) -> DataTable:
        return self.query_one("#feed-table", DataTable)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "undo":
            return True if self.pending else None
        if action in ("act", "retry"):
            return True if self.order else None
        return True

    # -- loading ------------------------------------------------------------------------
    async def load(self) -> None:
        monitor = self.facet("monitor")
        if monitor is None:
            return
        rows = await self.attempt("feed", lambda: monitor.arrivals(side="old", offset=0,
                                                                    limit=self.limit))
        if rows is None:
            return
        self._show(rows)
        counts = await self.attempt("feed counts", monitor.counts)
        if counts:
            self.counts = dict(counts)
        if not rows:
            self.say("Nothing has arrived at the old address yet; new mail shows here within "
                     "seconds.")
        else:
            self._say_counts()

    def _say_counts(self) -> None:
        c = self.counts
        if c and not self.pending:  # while an undo window is open its hint stays
            switched = c.get("switched", 0)
            self.say(f"{c.get('unhandled', 0)} unhandled · {c.get('today', 0)} today · "
                     f"{c.get('total', 0)} in all · {switched} {'sender' if switched == 1 else 'senders'} switched")

    def _cells(self, a: Any) -> tuple[Text, ...]:
        pending = {p.kind: p.deadline - time.monotonic()
                   for p in self.pending.values() if p.arrival_id == a.id}
        handled = (a.state == "handled") or (a.actions or {}).get("handled") == "done"
        style = "dim" if handled else ""
        who = a.sender_name or a.sender or ""
        return (
            cell(when(a.seen_at or a.date, self.now()), style),
            cell(who, style),
            cell(a.subject or "(no subject)", style),
            cell(a.badge or "", plain_style(self.app, BADGE_STYLES.get(a.badge or "", ""))
                 if not handled else "dim"),
            cell(action_text(a.actions, a.state, pending), "italic" if pending else style),
        )

    def _show(self, rows: list[Any]) -> None:
        table = self.table
        rows = rows[:MAX_ROWS]
        ids = [a.id for a in rows]
        self.arrivals = {a.id: a for a in rows}
        selected = self.selected_id()
        with self.app.batch_update():
            if ids == self.order:
                for a in rows:
                    self._update_row(a.id)
            else:
                at = table.cursor_row
                table.clear()
                for a in rows:
                    table.add_row(*self._cells(a), key=str(a.id))
                self.order = ids
                if selected in self.arrivals:
                    table.move_cursor(row=ids.index(selected), animate=False)
                elif ids:  # the selected one left the page: stay where the cursor was
                    table.move_cursor(row=min(at, len(ids) - 1), animate=False)
        self.refresh_bindings()
        if self.selected_id() != self.preview_id:
            self._preview()

    def _update_row(self, arrival_id: int) -> None:
        a = self.arrivals.get(arrival_id)
        if a is None:
            return
        try:
            for col, value in zip(COLUMNS, self._cells(a)):
                self.table.update_cell(str(arrival_id), col, value)
        except Exception:
            pass

    def selected_id(self) -> int | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        except Exception:
            return None
        return int(row_key.value) if row_key.value is not None else None

    # -- preview ------------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.table:
            self._preview()

    def _preview(self) -> None:
        arrival_id = self.selected_id()
        self.preview_id = arrival_id
        if arrival_id is None:
            self.query_one("#feed-preview", Static).update("")
            return
        self.run_worker(partial(self._load_preview, arrival_id), group="feed-preview", exclusive=True)

    async def _load_preview(self, arrival_id: int) -> None:
        monitor = self.facet("monitor")
        a = self.arrivals.get(arrival_id)
        if monitor is None or a is None:
            return
        try:
            body = await monitor.body_text(arrival_id)
        except Exception as exc:
            body = a.preview or f"(the message text could not be read: {person_error(exc)})"
        if self.preview_id != arrival_id:
            return
        text = Text()
        sender = f"{a.sender_name} <{a.sender}>" if a.sender_name else (a.sender or "")
        text.append("From: ", style="bold")
        text.append(sender + "\n")
        if a.recipients:
            text.append("To: ", style="bold")
            text.append(clip(a.recipients if isinstance(a.recipients, str)
                             else ", ".join(a.recipients), 200) + "\n")
        text.append("Subject: ", style="bold")
        text.append((a.subject or "") + "\n")
        text.append("Date: ", style="bold")
        text.append(full_date(a.date) + "\n")
        extra = [a.badge or ""]
        if a.language:
            extra.append(f"language {a.language}")
        if a.folder and a.folder != "INBOX":
            extra.append(f"in {a.folder}")
        text.append(" · ".join(x for x in extra if x) + "\n\n", style="italic")
        text.append((body or a.preview or "")[:4000])
        self.query_one("#feed-preview", Static).update(text)

    # -- events -------------------------------------------------------------------------
    def handle_events(self, events: list[Event]) -> None:
        relevant = False
        for event in events:
            if isinstance(event, ArrivalSeen) and event.side == "old":
                self._reload_wanted = True
                relevant = True
            elif isinstance(event, ActionChanged) and event.arrival_id is not None:
                relevant = True
                if event.state != "pending":
                    self.pending.pop(event.action_id, None)
                if event.state == "failed":
                    self.sapp.notify(f"{event.kind} failed: {event.detail or 'see the row'}",
                                     severity="error", timeout=10)
                self._dirty_ids.add(event.arrival_id)
        if relevant:  # the footer is rebuilt on every refresh: only when keys may change
            self.refresh_bindings()

    def flush(self) -> None:
        if not (self._reload_wanted or self._dirty_ids):
            return
        if self._reload_wanted:
            self._reload_wanted = False
            self._dirty_ids.clear()
            self.run_worker(self.load, group="feed-load", exclusive=True)
        else:
            ids, self._dirty_ids = self._dirty_ids, set()
            self.run_worker(partial(self._refresh_ids, ids), group="feed-rows")

    async def _refresh_ids(self, ids: set[int]) -> None:
        monitor = self.facet("monitor")
        if monitor is None:
            return
        for arrival_id in ids:
            if arrival_id not in self.arrivals:
                continue
            fresh = await self.attempt("feed", lambda: monitor.arrival(arrival_id))
            if fresh is not None:
                self.arrivals[arrival_id] = fresh
                self._update_row(arrival_id)
        counts = await self.attempt("feed counts", monitor.counts)
        if counts:
            self.counts = dict(counts)
            self._say_counts()

    def _tick_pending(self) -> None:
        now = time.monotonic()
        for p in list(self.pending.values()):
            self._update_row(p.arrival_id)
            if now > p.deadline + 30:  # the engine never reported back; stop counting
                self.pending.pop(p.action_id, None)

    # -- actions ------------------------------------------------------------------------
    def action_act(self, kind: str) -> None:
        arrival_id = self.selected_id()
        if arrival_id is not None:
            self.run_worker(partial(self._request, arrival_id, kind), group="feed-act")

    async def _request(self, arrival_id: int, kind: str) -> None:
        actions = self.facet("actions")
        if actions is None:
            return
        try:
            action_id = await actions.request(arrival_id, kind)
        except Exception as exc:
            self.sapp.notify(person_error(exc), title=kind, severity="warning", timeout=8)
            return
        undo = float(getattr(getattr(self.engine.config, "transition", None), "undo_seconds", 5.0))
        row = None
        getter = getattr(actions, "get", None)
        if getter is not None:
            try:
                row = await getter(action_id)
            except Exception:
                row = None
        verb, doing, done = KIND_WORDS.get(kind, (kind, kind, kind))
        if row is not None and row.state != "pending":
            # the engine returned the live action already recorded: never a second one
            self.sapp.notify(f"Already {done if row.state == 'done' else doing}.", timeout=4)
        elif action_id is not None and undo > 0:
            left = (row.not_before - time.time()) if row is not None else undo
            self.pending[action_id] = Pending(action_id, arrival_id, kind,
                                              time.monotonic() + max(0.0, left))
            a = self.arrivals.get(arrival_id)
            if a is not None:  # show the countdown now, before the engine's event arrives
                try:
                    self.arrivals[arrival_id] = dataclasses.replace(
                        a, actions={**(a.actions or {}), kind: "pending"})
                except Exception:
                    pass
            self.say(f"{doing} in {max(0.0, left):.0f} s — u to undo")
        self._update_row(arrival_id)
        self._dirty_ids.add(arrival_id)
        self.refresh_bindings()

    def action_undo(self) -> None:
        if not self.pending:
            self.sapp.notify("Nothing to undo.", timeout=3)
            return
        selected = self.selected_id()
        mine = [p for p in self.pending.values() if p.arrival_id == selected]
        target = (mine or list(self.pending.values()))[-1]
        self.run_worker(partial(self._undo, target), group="feed-act")

    async def _undo(self, p: Pending) -> None:
        actions = self.facet("actions")
        if actions is None:
            return
        try:
            ok = await actions.cancel(p.action_id)
        except Exception as exc:
            self.sapp.notify(person_error(exc), title="undo", severity="warning")
            return
        self.pending.pop(p.action_id, None)
        if ok:
            self.say(f"{KIND_WORDS.get(p.kind, (p.kind,))[0]} undone.")
        else:
            self.sapp.notify(f"Too late to undo the {p.kind}: it has already started.",
                             severity="warning")
        self._dirty_ids.add(p.arrival_id)
        self.refresh_bindings()
        self.flush()

    def action_retry(self) -> None:
        arrival_id = self.selected_id()
        if arrival_id is not None:
            self.run_worker(partial(self._retry, arrival_id), group="feed-act")

    async def _retry(self, arrival_id: int) -> None:
        actions = self.facet("actions")
        if actions is None:
            return
        rows = await self.attempt("retry", lambda: actions.for_arrival(arrival_id)) or []
        failed = [r for r in rows if r.state == "failed"]
        if not failed:
            self.sapp.notify("No failed action on this message.", timeout=3)
            return
        for row in failed:
            await self.attempt("retry", lambda: actions.retry(row.id))
        self._dirty_ids.add(arrival_id)
        self.flush()

    def action_more(self) -> None:
        if self.limit < MAX_ROWS and len(self.order) >= self.limit:
            self.limit = min(MAX_ROWS, self.limit + PAGE)
            self.run_worker(self.load, group="feed-load", exclusive=True)
        else:
            self.sapp.notify("All arrivals are shown." if len(self.order) < self.limit
                             else f"The feed shows the newest {MAX_ROWS}.", timeout=3)

