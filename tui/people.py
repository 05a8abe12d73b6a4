"""The people pane: correspondents the engine knows, by group (customer, supplier,
logistics, internal, business; automated, newsletter, bounce, cold, own), one person's
addresses together, their language, notify yes / no and the notice's state (not notified
/ queued / sent / bounced / switched), the switched trend, and the old mailbox's
auto-reply.

Read page by page from SQLite; ``n`` notify yes / no for the person, ``N`` for the
person's whole group, ``t`` / ``l`` pick their group / language, ``f`` shows one group,
``/`` filters by text, ``m`` loads more. A choice overrides switchover's guess; the
engine keeps it through every rescan.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, OptionList, Static
from textual.widgets.option_list import Option

from switchover.core.errors import sentence
from switchover.core.events import ActionChanged, ArrivalSeen, Event, NoticeChanged
from switchover.core.mail.language import LANGUAGES
from switchover.core.people.audience import GROUPS
from switchover.core.people.choices import Choice
from switchover.core.transition.people import Correspondent

from .base import Pane, cell, plain_style, table_keys
from .words import when
from .prompts import TextPrompt

PAGE = 100
MAX_ROWS = 2000


SPARK = "▁▂▃▄▅▆▇█"
STATE_STYLE = {"switched": "green", "bounced": "red", "sent": "", "queued": "yellow", "not notified": "dim"}


def marks(c: Correspondent) -> str:
    """The status cell: the notice's state, and a bounce's reason when it bounced."""
    if c.state == "bounced" and c.bounce_reason:
        return f"bounced: {c.bounce_reason}"
    return c.state


def sparkline(values: list[int]) -> str:
    """A row of block characters for a cumulative count (empty when nothing moved)."""
    if not values or max(values) == 0:
        return ""
    low, high = min(values), max(values)
    span = max(1, high - low)
    return "".join(SPARK[round((v - low) / span * (len(SPARK) - 1))] for v in values)


def switched_line(stats: dict[str, Any]) -> str:
    """"switched: 41 of 230 (18%) · +6 this week ▁▂▃▅▇" from the engine's stats."""
    total, switched = int(stats.get("total") or 0), int(stats.get("switched") or 0)
    if not total:
        return ""
    line = f"switched: {switched} of {total} ({switched * 100 // total}%)"
    if stats.get("switched_week"):
        line += f" · +{stats['switched_week']} this week"
    spark = sparkline(list(stats.get("trend") or []))
    return f"{line} {spark}" if spark else line


class Picker(ModalScreen[str | None]):
    """Pick one of a few values (a group, a language, a filter); escape: none."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="picker.cancel")]
    DEFAULT_CSS = """
    Picker { align: center middle; }
    Picker OptionList { height: auto; max-height: 16; }
    """

    def __init__(self, title: str, options: list[tuple[str, str]], current: str = "") -> None:
        super().__init__()
        self.title_text, self.options, self.current = title, options, current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield OptionList(*[Option(label, id=value or "-") for value, label in self.options], id="picker")
            yield Static("enter choose · escape cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        picker = self.query_one(OptionList)
        ids = [v for v, _ in self.options]
        picker.highlighted = ids.index(self.current) if self.current in ids else 0
        picker.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss("" if event.option.id == "-" else event.option.id)   # "": back to the guess / all

    def action_cancel(self) -> None:
        self.dismiss(None)


class PeopleTable(DataTable):
    BINDINGS = table_keys("people")


class PeoplePane(Pane):
    DEFAULT_CSS = """
    #people-trend { padding: 0 1; }
    """
    HELP_TITLE = "People — correspondents of the old address"
    HELP_ABOUT = ("Who wrote to or was written from the old address, by group, with their "
                  "language; who will be told of the new address (notify), who has been, and "
                  "who already writes to it (switched). Your choices override switchover's "
                  "guesses and survive every rescan.")
    BINDINGS = [
        # short labels: the footer holds them all in 80 columns; help shows the tooltips
        Binding("n", "notify", "Notify", tooltip="Notify this person: yes / no", id="people.notify"),
        Binding("N", "notify_group", "Notify group", tooltip="Notify this person's whole group: yes / no",
                id="people.notify_group"),
        Binding("t", "group", "Group", tooltip="Put this person in another group", id="people.group"),
        Binding("l", "language", "Lang", tooltip="The language of this person's notice",
                id="people.language"),
        Binding("f", "show_group", "Show", tooltip="Show one group only (or everyone)",
                id="people.show_group"),
        Binding("slash", "filter", "Filter", tooltip="Show the people whose address or name holds a text", id="people.filter"),
        Binding("m", "more", "More", tooltip="Show the next page of people", id="people.more"),
        Binding("g", "reload", "Reload", show=False, tooltip="Read the people again", id="people.reload"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = PAGE
        self.filter: str | None = None
        self.count = 0
        self._stale = False
        self.rows: dict[str, Correspondent] = {}

    def compose(self) -> ComposeResult:
        yield self.message_line()
        yield Static("", id="people-trend", markup=False)
        yield Static("", id="people-autoreply", markup=False)
        yield PeopleTable(id="people-table", cursor_type="row")

    def on_mount(self) -> None:
        width = self.app.size.width
        wide = width >= 110
        table = self.table
        # fixed widths: group 10, lang 4, notify 6, from 5, state 14 (+ name 18, to 5, last 5
        # when wide); each column pads 2, the scrollbar takes 2
        if wide:
            address_w = max(30, width - 2 * 10 - 2 - (18 + 10 + 4 + 6 + 5 + 5 + 5 + 16))
        else:
            address_w = max(22, width - 2 * 7 - 2 - (10 + 4 + 6 + 5 + 14))
        table.add_column("Address", key="address", width=address_w)
        if wide:
            table.add_column("Name", key="name", width=18)
        table.add_column("Group", key="group", width=10)
        table.add_column("Lang", key="lang", width=4)
        table.add_column("Notify", key="notify", width=6)
        table.add_column("From", key="from", width=5)
        if wide:
            table.add_column("To", key="to", width=5)
            table.add_column("Last", key="last", width=5)
        table.add_column("State", key="status", width=16 if wide else 14)

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
            offset=0, limit=self.limit, filter=self.filter, order="group"))
        if rows is not None:
            self._show(rows)
            stats = await self.attempt("people stats", people.stats)
            self._say_stats(stats or {})

    def _say_stats(self, stats: dict) -> None:
        trend = self.query_one("#people-trend", Static)
        trend.update(switched_line(stats))
        if not stats:
            self.say(f"{self.count} correspondents shown.")
            return
        parts = []
        groups = stats.get("groups") or {}
        if groups:
            parts.append(" · ".join(f"{g} {n:,}" for g, n in groups.items()))
        if groups:   # the switched line below says how many people in all
            parts += [f"{k} {stats[k]:,}" for k in ("notify", "notified", "bounced") if stats.get(k)]
        else:
            parts += [f"{v:,} {k.replace('_', ' ')}" for k, v in stats.items()
                      if isinstance(v, int) and not isinstance(v, bool)]
        if self.filter:
            parts.append(f"showing '{self.filter}'")
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

    def _cells(self, c: Correspondent, alias: bool) -> list[Text]:
        wide = "name" in self.table.columns
        robot = c.group in ("automated", "newsletter", "bounce", "own")
        values = [cell(("↳ " if alias else "") + c.address, plain_style(self.app, "dim") if robot else None)]
        if wide:
            values.append(cell(c.name or ""))
        chosen = "*" if c.choice_group else ""
        values += [cell(c.group + chosen), cell(c.language or "–"),
                   cell("yes" if c.notify else "no", plain_style(self.app, "" if c.notify else "dim")),
                   cell(f"{c.messages_from:,}")]
        if wide:
            values += [cell(f"{c.messages_to:,}"), cell(when(c.last_seen, self.now(), with_time=False))]
        values.append(cell(marks(c), plain_style(self.app, STATE_STYLE.get(c.state, ""))))
        return values

    def selected(self) -> Correspondent | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None
        return self.rows.get(str(key))

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
            self.rows = {}
            last_key = ""
            for c in rows[:MAX_ROWS]:
                alias = bool(c.alias_key) and c.alias_key == last_key   # one person's next address
                last_key = c.alias_key
                self.rows[c.address] = c
                table.add_row(*self._cells(c, alias), key=c.address)
            if table.row_count:
                try:
                    row = table.get_row_index(selected) if selected and at else at
                except Exception:
                    row = at
                table.move_cursor(row=min(row, table.row_count - 1), animate=False)
        self.count = len(rows)
        self.refresh_bindings()         # "m More" shows only while there is more

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not super().check_action(action, parameters):
            return False
        if action == "more":             # hidden (False) when everyone is shown
            return self.count >= self.limit and self.limit < MAX_ROWS
        return True

    def handle_events(self, events: list[Event]) -> None:
        # new arrivals and sent reminders change who is known / notified / switched
        if any(isinstance(e, (ArrivalSeen, ActionChanged, NoticeChanged)) for e in events):
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

    # -- the user's choices -----------------------------------------------------------------
    async def _done(self, what: str, fn: Any) -> bool:
        """Await ``fn()``; True when it worked (else the pane says why)."""
        try:
            await fn()
        except Exception as exc:
            self.say(f"{what}: {sentence(exc)}", error=True)
            return False
        return True

    def _choose(self, c: Correspondent, choice: Choice, said: str) -> None:
        async def run() -> None:
            if await self._done("choice", lambda: self.engine.correspondents.choose(c.address, choice)):
                await self.load_people()
                self.sapp.notify(said, timeout=3)
        self.serial.run("choose", run)

    def action_notify(self) -> None:
        c = self.selected()
        if c is not None:
            self._choose(c, Choice(notify=not c.notify),
                         f"{c.address}: {'not notified' if c.notify else 'notified'} (your choice).")

    def action_notify_group(self) -> None:
        c = self.selected()
        if c is None:
            return
        group = c.group

        async def run() -> None:
            people = self.engine.correspondents
            counts = await self.attempt("groups", people.group_counts)
            if counts is None:
                return
            now = next((on for g, _n, _yes, on in counts if g == group), True)
            if await self._done("group", lambda: people.set_group_notify(group, not now)):
                await self.load_people()
                self.sapp.notify(f"Group {group}: {'notified' if not now else 'not notified'} "
                                 f"(people's own choices still win).", timeout=4)
        self.serial.run("choose", run)

    def action_group(self) -> None:
        c = self.selected()
        if c is None:
            return
        options = [("", f"switchover's guess ({c.group_guess or 'business'}) — {c.evidence}")]
        options += [(g, g) for g in GROUPS]

        def chosen(value: str | None) -> None:
            if value is not None:
                self._choose(c, Choice(group=value or None), f"{c.address}: group {value or c.group_guess}.")
        self.app.push_screen(Picker(f"Group of {c.address}", options, c.choice_group or ""), chosen)

    def action_language(self) -> None:
        c = self.selected()
        if c is None:
            return
        options = [("", f"switchover's guess ({c.language_guess or 'none'}) — from what they write")]
        options += [(code, code) for code in LANGUAGES]

        def chosen(value: str | None) -> None:
            if value is not None:
                self._choose(c, Choice(language=value or None),
                             f"{c.address}: language {value or c.language_guess or 'guess'}.")
        self.app.push_screen(Picker(f"Language of {c.address}", options, c.choice_language or ""), chosen)

    def action_show_group(self) -> None:
        options = [("", "everyone")] + [(f"group:{g}", g) for g in GROUPS]

        def chosen(value: str | None) -> None:
            if value is not None:
                self.filter = value or None
                self.limit = PAGE
                self.serial.run("load", self.load_people)
        self.app.push_screen(Picker("Show one group", options, self.filter or ""), chosen)
