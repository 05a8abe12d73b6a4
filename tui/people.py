"""The people pane: correspondents the engine knows (who wrote, who was written to, who
was notified, who has switched to the new address) and the old mailbox's auto-reply.

Read page by page from SQLite; ``/`` filters, ``m`` loads more.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from switchover.core.errors import sentence
from switchover.core.events import ActionChanged, ArrivalSeen, Event
from switchover.core.transition.people import Correspondent

from .base import Pane, cell, plain_style, table_keys
from .words import when
from .prompts import TextPrompt

PAGE = 100
MAX_ROWS = 2000


def marks(c: Correspondent) -> str:
    words = []
    if c.customer:
        words.append("customer")
    if c.automated:
        words.append("automated")
    if c.switched:
        words.append("switched")
    elif c.notified:
        words.append("notified")
    return ", ".join(words)


class PeopleTable(DataTable):
    BINDINGS = table_keys("people")


class PeoplePane(Pane):
    HELP_TITLE = "People — correspondents of the old address"
    HELP_ABOUT = ("Who wrote to or was written from the old address, who has been told of "
                  "the new one, and who already writes to it (switched).")
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="people.filter"),
        Binding("m", "more", "More", id="people.more"),
        Binding("g", "reload", "Reload", id="people.reload"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = PAGE
        self.filter: str | None = None
        self.count = 0
        self._stale = False

    def compose(self) -> ComposeResult:
        yield self.message_line()
        yield Static("", id="people-autoreply", markup=False)
        yield PeopleTable(id="people-table", cursor_type="row")

    def on_mount(self) -> None:
        width = self.app.size.width
        wide = width >= 110
        table = self.table
        # narrow: the address takes what the fixed columns leave (5 columns' padding and the
        # scrollbar: 12); wide: a name column beside it
        if wide:  # 7 columns' padding (14) and the scrollbar (2) around the fixed widths
            address_w = max(30, width - 16 - (20 + 5 + 5 + 5 + 4 + 18))
        else:
            address_w = max(24, width - 12 - 15 - 18)
        table.add_column("Address", key="address", width=address_w)
        if wide:
            table.add_column("Name", key="name", width=20)
        table.add_column("From", key="from", width=5)
        table.add_column("To", key="to", width=5)
        table.add_column("Last", key="last", width=5)
        if wide:
            table.add_column("Lang", key="lang", width=4)
        status_w = 18
        table.add_column("Status", key="status", width=status_w)

    @property
    def table(self) -> DataTable:
        return self.query_one("#people-table", DataTable)

    async def load(self) -> None:
        """People from SQLite, and the auto-reply's state from the server (on start and
        on g; the people alone are re-read when arrivals or another process change them)."""
        await self.load_people()
        self.run_worker(self._autoreply, group="people-autoreply", exclusive=True)

    async def load_people(self) -> None:
        people = self.engine.correspondents
        rows = await self.attempt("people", lambda: people.list(
            offset=0, limit=self.limit, filter=self.filter))
        if rows is not None:
            self._show(rows)
            stats = await self.attempt("people stats", people.stats)
            self._say_stats(stats or {})

    def _say_stats(self, stats: dict) -> None:
        if not stats:
            self.say(f"{self.count} correspondents shown.")
            return
        parts = []
        for k, v in stats.items():
            if v is None:
                continue
            if k == "days_since_business_mail":
                parts.append(f"last business mail {v} days ago" if v else "business mail today")
            elif isinstance(v, int):
                parts.append(f"{v:,} {k.replace('_', ' ')}")
        if self.filter:
            parts.append(f"filter '{self.filter}'")
        self.say(" · ".join(parts))

    async def _autoreply(self) -> None:
        line = self.query_one("#people-autoreply", Static)
        try:
            status = await self.engine.autoreply.status()
        except Exception as exc:
            line.update(f"Auto-reply: unknown ({sentence(exc)})")
            return
        if not status.supported:
            text = "Auto-reply: no ManageSieve on the old server; switchover's reminders stand in"
        elif status.active:
            text = f"Auto-reply: active ({status.script_name})"
        else:
            text = "Auto-reply: off — `switchover autoreply on` installs it"
        if status.detail and status.supported:  # unsupported: the detail repeats the above
            text += f" · {status.detail}"
        line.update(text)

    def _cells(self, c: Correspondent) -> list[Text]:
        wide = "name" in self.table.columns
        values = [cell(c.address)]
        if wide:
            values.append(cell(c.name or ""))
        values += [cell(f"{c.messages_from:,}"), cell(f"{c.messages_to:,}"),
                   cell(when(c.last_seen, self.now(), with_time=False))]
        if wide:
            values.append(cell(c.language or ""))
        values.append(cell(marks(c), plain_style(self.app, "dim" if c.automated
                                                  else ("green" if c.switched else ""))))
        return values

    def _show(self, rows: list[Correspondent]) -> None:
        """Refill the table; a correspondent the person moved to stays selected (a
        reload comes every time the state file changes, e.g. beside a headless watch);
        on the first row the cursor stays on the first row."""
        table = self.table
        selected = None
        if table.row_count:
            try:
                selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            except Exception:
                selected = None
        at = table.cursor_row
        with self.app.batch_update():
            table.clear()
            for c in rows[:MAX_ROWS]:
                table.add_row(*self._cells(c), key=c.address)
            if table.row_count:
                try:
                    row = table.get_row_index(selected) if selected and at else at
                except Exception:
                    row = at
                table.move_cursor(row=min(row, table.row_count - 1), animate=False)
        self.count = len(rows)

    def handle_events(self, events: list[Event]) -> None:
        # new arrivals and sent reminders change who is known / notified / switched
        if any(isinstance(e, (ArrivalSeen, ActionChanged)) for e in events):
            self._stale = True

    def flush(self) -> None:
        if self._stale and self.visible_now:
            self._stale = False
            self.serial.run("load", self.load_people)

    def reload_if_stale(self) -> None:
        if self._stale_elsewhere and self.visible_now:
            self._stale_elsewhere = False
            self.serial.run("load", self.load_people)

    def action_reload(self) -> None:
        self.serial.run("load", self.load)

    def action_more(self) -> None:
        if self.count >= self.limit and self.limit < MAX_ROWS:
            self.limit += PAGE
            self.serial.run("load", self.load_people)
        else:
            self.sapp.notify("Everyone is shown.", timeout=3)

    def action_filter(self) -> None:
        def chosen(text: str | None) -> None:
            if text is not None:
                self.filter = text.strip() or None
                self.limit = PAGE
                self.serial.run("load", self.load_people)

        self.app.push_screen(TextPrompt("Show correspondents matching", self.filter or "",
                                        placeholder="part of an address or name; empty for all"),
                             chosen)
