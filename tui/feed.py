"""The old-inbox feed: arrivals newest first, a preview of the selected one, and one key
each to forward it, remind its sender or mark it handled.

The table is a window of ``PAGE`` rows read from SQLite, never the whole history: the
dashboard stays open for months and the arrivals stay on disk. With the cursor on the
newest row the feed follows new arrivals like ``tail -f``; anywhere else the rows under
the cursor stay where they are and the message line says "N new above" until ``home``
(or moving up to the top) shows them. Running past either edge of the window moves it.

What the keys do (forward, remind, handled, undo, retry, a send in doubt, the reminder
shown before it goes) lives in tui/feed_actions.py.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.widgets import DataTable, Static

from switchover.core.errors import sentence
from switchover.core.events import ActionChanged, ArrivalSeen, Event
from switchover.core.transition.arrivals import Arrival

from .base import Pane, cell, clip, plain_style, table_keys
from .feed_actions import FeedActions, Pending
from .words import NOUNS, action_text, full_date, in_doubt, when

#: rows held in memory: a window over SQLite
PAGE = 100
#: rows the window moves when the cursor runs past one of its edges
STEP = 50
COLUMNS = ("time", "sender", "subject", "badge", "action")
BADGE_STYLES = {"customer": "bold", "new sender": "bold", "bounce": "bold red", "spam": "dim",
                "automated": "dim", "switched": "green", "notified": "cyan"}


class FeedTable(DataTable):
    """The feed's rows; moving past the first or last row moves the window over SQLite."""

    BINDINGS = table_keys("feed")

    @property
    def feed(self) -> "FeedPane":
        return next(a for a in self.ancestors if isinstance(a, FeedPane))

    def action_cursor_down(self) -> None:
        if self.row_count and self.cursor_row >= self.row_count - 1 and self.feed.has_older:
            self.feed.page(+1)
        else:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.cursor_row <= 0 and self.feed.window_start > 0:
            self.feed.page(-1)
        else:
            super().action_cursor_up()

    def action_page_down(self) -> None:
        if self.row_count and self.cursor_row >= self.row_count - 1 and self.feed.has_older:
            self.feed.page(+1)
        else:
            super().action_page_down()

    def action_page_up(self) -> None:
        if self.cursor_row <= 0 and self.feed.window_start > 0:
            self.feed.page(-1)
        else:
            super().action_page_up()

    def action_scroll_top(self) -> None:
        self.feed.go_newest()

    def action_scroll_bottom(self) -> None:
        self.feed.go_oldest()


class FeedPane(FeedActions, Pane):
    HELP_TITLE = "Feed — what still arrives at the old address"
    HELP_ABOUT = ("f, r and h wait a few seconds before they act (shown in the row); "
                  "u undoes the last one within that window. On the newest row the feed "
                  "follows new mail; elsewhere it stays put and says how many are new above "
                  "(home shows them). m shows the reminder r would send.")
    BINDINGS = [
        Binding("f", "act('forward')", "Forward", id="feed.forward"),
        Binding("r", "act('remind')", "Remind", id="feed.remind"),
        Binding("h", "act('handled')", "Handled", id="feed.handled"),
        Binding("u", "undo", "Undo", id="feed.undo"),
        Binding("t", "retry", "Retry", id="feed.retry"),
        Binding("d", "doubt", "In doubt", id="feed.doubt"),
        Binding("m", "more", "Reminder", id="feed.more"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals: dict[int, Arrival] = {}
        self.order: list[int] = []
        #: rows above the window (newest first): 0 while the newest row is in it
        self.window_start = 0
        #: old-side arrivals in SQLite at the last load (from the app's counts)
        self.total: int | None = None
        #: arrivals that came while the cursor was away from the newest row
        self.unseen = 0
        self.following = True
        self.pending: dict[int, Pending] = {}
        self.preview_id: int | None = None
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

    @property
    def has_older(self) -> bool:
        return self.total is None or self.window_start + len(self.order) < self.total

    def selected(self) -> Arrival | None:
        arrival_id = self.selected_id()
        return self.arrivals.get(arrival_id) if arrival_id is not None else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # keys that cannot act on the selected row leave the footer (False hides): the
        # feed's keys then fit in 80 columns; help lists them all
        if not super().check_action(action, parameters):
            return False
        if action == "undo":
            return bool(self.pending)
        a = self.selected()
        if action == "retry":
            return a is not None and "failed" in a.actions.values()
        if action == "doubt":
            return a is not None and bool(in_doubt(a))
        if action in ("act", "more"):
            return True if a is not None else None
        return True

    # -- loading ------------------------------------------------------------------------
    async def load(self) -> None:
        monitor = self.engine.monitor
        counts = await self.sapp.refresh_counts()
        total = counts.get("total") if counts else None
        if total is not None:
            if self.total is not None and total > self.total and not self.following:
                # the rows under the cursor stay put: the window moves down with them
                grown = total - self.total
                self.window_start += grown
                self.unseen += grown
            self.total = total
            if self.window_start and self.window_start >= total:
                self.window_start = max(0, total - PAGE)
        rows = await self.attempt("feed", lambda: monitor.arrivals(
            side="old", offset=self.window_start, limit=PAGE))
        if rows is None:
            return
        self._show(rows)
        if not rows:
            self.say("Nothing has arrived at the old address yet; new mail shows here within "
                     "seconds.")
        else:
            self.show_counts()

    def show_counts(self) -> None:
        """The message line: what is new above, then the app's counts (the same numbers
        the status line shows)."""
        c = self.sapp.counts
        if self.pending or not c:  # while an undo window is open its hint stays
            return
        a = self.selected()
        doubt = in_doubt(a) if a is not None else []
        if doubt:
            self.say(f"The {NOUNS.get(doubt[0], doubt[0])} of this message is in doubt — "
                     f"did it arrive? d decides.", error=True)
            return
        parts = []
        if self.unseen:
            parts.append(f"↑ {self.unseen:,} new above — home shows them")
        switched = c.get("switched", 0)
        parts.append(f"{c.get('unhandled', 0):,} unhandled · {c.get('today', 0):,} today · "
                     f"{c.get('total', 0):,} in all · {switched:,} "
                     f"{'sender' if switched == 1 else 'senders'} switched")
        self.say(" · ".join(parts))

    def _cells(self, a: Arrival) -> tuple[Text, ...]:
        pending = {p.kind: p.deadline - time.monotonic()
                   for p in self.pending.values() if p.arrival_id == a.id}
        handled = a.state == "handled" or a.actions.get("handled") == "done"
        style = "dim" if handled else ""
        return (
            cell(when(a.seen_at or a.date, self.now()), style),
            cell(a.sender_name or a.sender, style),
            cell(a.subject or "(no subject)", style),
            cell(a.badge, plain_style(self.app, BADGE_STYLES.get(a.badge, "")) if not handled else "dim"),
            cell(action_text(a.actions, a.state, pending), "italic" if pending else style),
        )

    def _show(self, rows: list[Arrival], *, cursor: int | None = None) -> None:
        """Put ``rows`` (the window) on screen. Following: the cursor on the newest row.
        Otherwise the selected arrival stays selected at the same place on screen (or
        the cursor goes to row ``cursor``)."""
        if not self.is_attached:  # the app is closing
            return
        table = self.table
        ids = [a.id for a in rows]
        self.arrivals = {a.id: a for a in rows}
        selected = self.selected_id()
        with self.app.batch_update():
            if ids == self.order and cursor is None:
                for a in rows:
                    self._update_row(a.id)
            else:
                at = table.cursor_row
                on_screen = at - round(table.scroll_y)
                table.clear()
                for a in rows:
                    table.add_row(*self._cells(a), key=str(a.id))
                self.order = ids
                if cursor is not None:
                    target = cursor
                elif self.following:
                    target = 0
                elif selected in self.arrivals:
                    target = ids.index(selected)
                else:
                    target = at
                target = max(0, min(target, len(ids) - 1))
                if ids:
                    table.move_cursor(row=target, animate=False, scroll=False)
                    top = 0 if self.following else max(0, target - max(0, on_screen))
                    table.call_after_refresh(table.scroll_to, y=top, animate=False, force=True)
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

    # -- moving the window --------------------------------------------------------------
    def page(self, direction: int) -> None:
        """Move the window one STEP older (+1) or newer (-1); the cursor continues on the
        row after (or before) the one it was on."""
        if direction > 0:
            if not self.order:
                return
            last = self.order[-1]
            self.window_start += STEP
            self.serial.run("load", partial(self._load_window, after=last))
        else:
            first = self.order[0] if self.order else None
            self.window_start = max(0, self.window_start - STEP)
            self.serial.run("load", partial(self._load_window, before=first))

    def go_newest(self) -> None:
        self.window_start = 0
        self.unseen = 0
        self.following = True
        self.serial.run("load", partial(self._load_window, cursor=0))

    def go_oldest(self) -> None:
        self.following = False
        if self.total is not None:
            self.window_start = max(0, self.total - PAGE)
        self.serial.run("load", partial(self._load_window, cursor=PAGE))

    async def _load_window(self, *, after: int | None = None, before: int | None = None,
                           cursor: int | None = None) -> None:
        monitor = self.engine.monitor
        rows = await self.attempt("feed", lambda: monitor.arrivals(
            side="old", offset=self.window_start, limit=PAGE))
        if rows is None:
            return
        ids = [a.id for a in rows]
        if after in ids:
            cursor = min(ids.index(after) + 1, len(ids) - 1)
        elif before in ids:
            cursor = max(ids.index(before) - 1, 0)
        self._show(rows, cursor=cursor if cursor is not None else 0)
        self.show_counts()

    # -- preview ------------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is not self.table:
            return
        at_top = event.cursor_row == 0 and self.window_start == 0
        if at_top:
            self.unseen = 0
        self.following = at_top
        self.refresh_bindings()
        self.show_counts()
        self._preview()

    def _preview(self) -> None:
        arrival_id = self.selected_id()
        self.preview_id = arrival_id
        if arrival_id is None:
            self.query_one("#feed-preview", Static).update("")
            return
        self.serial.run("preview", partial(self._load_preview, arrival_id))

    async def _load_preview(self, arrival_id: int) -> None:
        a = self.arrivals.get(arrival_id)
        if a is None:
            return
        try:
            body = await self.engine.monitor.body_text(arrival_id)
        except Exception as exc:
            body = a.preview or f"(the message text could not be read: {sentence(exc)})"
        if self.preview_id != arrival_id:
            return
        text = Text()
        for kind in in_doubt(a):
            text.append(f"The {NOUNS.get(kind, kind)} is in doubt — did it arrive? d decides "
                        f"(it arrived / send it again).\n", style="bold")
        sender = f"{a.sender_name} <{a.sender}>" if a.sender_name else a.sender
        text.append("From: ", style="bold")
        text.append(sender + "\n")
        if a.recipients:
            text.append("To: ", style="bold")
            text.append(clip(", ".join(a.recipients), 200) + "\n")
        text.append("Subject: ", style="bold")
        text.append(a.subject + "\n")
        text.append("Date: ", style="bold")
        text.append(full_date(a.date) + "\n")
        extra = [a.badge]
        if a.language:
            extra.append(f"language {a.language}")
        if a.folder != "INBOX":
            extra.append(f"in {a.folder}")
        text.append(" · ".join(x for x in extra if x) + "\n\n", style="italic")
        text.append((body or a.preview)[:4000])
        self.query_one("#feed-preview", Static).update(text)

    # -- events -------------------------------------------------------------------------
    def handle_events(self, events: list[Event]) -> None:
        relevant = False
        for event in events:
            if isinstance(event, ArrivalSeen) and event.side == "old":
                self._reload_wanted = True
            elif isinstance(event, ActionChanged) and event.arrival_id is not None:
                relevant = True
                if event.state != "pending":
                    self.pending.pop(event.action_id, None)
                if event.state == "failed":
                    self.sapp.notify(f"{event.kind} failed: {event.detail or 'see the row'}",
                                     severity="error", timeout=10)
                elif event.state == "doubt":
                    self.sapp.notify(f"The {NOUNS.get(event.kind, event.kind)} of arrival "
                                     f"#{event.arrival_id} is in "
                                     f"doubt — did it arrive? d in the feed decides.",
                                     severity="warning", timeout=15)
                self._dirty_ids.add(event.arrival_id)
        if relevant:  # the footer only changes when what it would show changes
            self.refresh_bindings()

    def changed_elsewhere(self) -> None:
        self._reload_wanted = True

    def flush(self) -> None:
        # the feed reloads even when hidden: its window must move with new arrivals so
        # that "N new above" is right when it is shown again (one page query, bounded)
        if not (self._reload_wanted or self._dirty_ids):
            return
        if self._reload_wanted:
            self._reload_wanted = False
            self._dirty_ids.clear()
            self.serial.run("load", self.load)
        else:
            ids, self._dirty_ids = self._dirty_ids, set()
            self.run_worker(partial(self._refresh_ids, ids), group="feed-rows")

    async def _refresh_ids(self, ids: set[int]) -> None:
        monitor = self.engine.monitor
        for arrival_id in ids:
            if arrival_id not in self.arrivals:
                continue
            fresh = await self.attempt("feed", lambda: monitor.arrival(arrival_id))
            if fresh is not None:
                self.arrivals[arrival_id] = fresh
                self._update_row(arrival_id)
                if arrival_id == self.preview_id:
                    self._preview()
                    self.show_counts()  # the message line speaks of the selected row now
        await self.sapp.refresh_counts()
        self.refresh_bindings()
