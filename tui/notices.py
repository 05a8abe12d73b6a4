"""The campaign screen (``n`` or the palette): the change notice's counts per state, the
running campaign's progress and ETA, every person with their notice's state, and a
preview of the selected person's notice — the exact text part that goes (the HTML part
is shown as text). Keys: t test, s send (after a confirmation naming how many and the
pace), p pause / resume, f final reminder, d decide a notice in doubt.

Everything is the engine's (``engine.notices``, core/notify/); the screen only shows it
and asks. A campaign runs in an app worker, so closing the screen does not stop it;
opening it again shows it running (p pauses it).
"""

from __future__ import annotations

import email
import email.policy
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

from switchover.core.errors import sentence
from switchover.core.events import CampaignProgress, Event, NoticeChanged
from switchover.core.progress import fmt_eta

from .base import Serial, table_keys

if TYPE_CHECKING:
    from switchover.core.engine import Engine
    from switchover.core.notify.status import Status

#: how often the counts are read again while the screen is open (seconds)
REFRESH_SECONDS = 0.5


class Ask(ModalScreen[str | None]):
    """A question with one-letter answers: ``answers`` maps a key to what it returns."""

    BINDINGS = [Binding("escape", "answer('')", "Cancel", id="notices.ask.cancel")]

    def __init__(self, title: str, body: str, answers: dict[str, str]) -> None:
        super().__init__()
        self._title, self._body, self.answers = title, body, answers

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._title, classes="dialog-title", markup=False)
            yield Static(self._body, markup=False, id="ask-body")
            keys = " · ".join(f"{k} {v}" for k, v in self.answers.items())
            yield Static(f"{keys} · escape cancel", classes="dialog-keys", markup=False)

    def on_key(self, event: Any) -> None:
        if event.key in self.answers:
            event.stop()
            self.dismiss(self.answers[event.key])

    def action_answer(self, value: str) -> None:
        self.dismiss(value or None)


def preview_text(raw: bytes) -> str:
    """The headers a person sees and the text part; the HTML part as text."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    head = "\n".join(f"{h}: {msg[h]}" for h in ("From", "To", "Reply-To", "Subject") if msg[h])
    plain = msg.get_body(("plain",)) if hasattr(msg, "get_body") else None
    if plain is not None:
        body = plain.get_content()
    else:
        html = msg.get_body(("html",)) if hasattr(msg, "get_body") else None
        from bs4 import BeautifulSoup
        body = BeautifulSoup(html.get_content(), "html.parser").get_text("\n") if html is not None else ""
    return f"{head}\n\n{body.strip()}"


def counts_text(status: "Status") -> Text:
    text = Text()
    for c in status.campaigns:
        if c.campaign.startswith("test"):
            continue
        text.append(c.line() + "\n")
    if not text.plain:
        text.append("Nothing queued or sent yet: t sends a test to your own addresses, s the notice.\n")
    text.append(f"switched {status.switched} of {status.notified} notified ({status.share:.0%}) · "
                f"still writing to the old address {len(status.still_old)} · bounced {len(status.bounced)} · "
                f"in doubt {len(status.doubts)}")
    return text


def progress_text(ev: CampaignProgress | None) -> str:
    if ev is None:
        return "No campaign is running."
    line = (f"{ev.campaign}: {ev.sent}/{ev.total} sent · {ev.failed} failed · {ev.doubt} in doubt · "
            f"{ev.rate_per_hour:,.0f}/h · ETA {fmt_eta(ev.eta_seconds)} · {ev.state}")
    return line + (f" — {ev.detail}" if ev.detail else "")


#: narrower than this, the preview goes under the list instead of beside it
STACK_BELOW = 130


class NoticesScreen(Screen[None]):
    """The campaign: counts, progress, people, preview."""

    DEFAULT_CSS = """
    NoticesScreen { layout: vertical; }
    NoticesScreen #notices-counts { height: auto; padding: 0 1; }
    NoticesScreen #notices-progress { height: auto; padding: 0 1; }
    NoticesScreen #notices-message { height: auto; padding: 0 1; color: $warning; }
    NoticesScreen #notices-body { height: 1fr; }
    NoticesScreen #notices-table { width: 1fr; min-width: 30; }
    /* the text part is wrapped at 76 columns: 76 + padding + border + scrollbar */
    NoticesScreen #notices-scroll { width: 82; max-width: 70%; border-left: solid $primary; }
    NoticesScreen #notices-preview { padding: 0 1; }
    /* narrower than list + 76-column text: the text goes under the list, whole lines */
    NoticesScreen.-stacked #notices-body { layout: vertical; }
    NoticesScreen.-stacked #notices-table { width: 1fr; height: 1fr; min-width: 0; }
    NoticesScreen.-stacked #notices-scroll { width: 1fr; max-width: 100%; height: 1fr;
                                             border-left: none; border-top: solid $primary; }
    NoticesScreen #notices-keys { height: 1; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Close", id="notices.close"),
        Binding("t", "test", "Test", id="notices.test"),
        Binding("s", "send", "Send", id="notices.send"),
        Binding("p", "pause", "Pause", id="notices.pause"),
        Binding("f", "final", "Final reminder", id="notices.final"),
        Binding("d", "doubt", "Decide a doubt", id="notices.doubt"),
        *table_keys("notices"),
    ]

    def __init__(self, engine: "Engine") -> None:
        super().__init__()
        self.engine = engine
        self.serial = Serial(self)
        self.progress: CampaignProgress | None = None
        self.rows: list[tuple[str, str, str, str]] = []     # (address, campaign, state, language)
        self.status: Status | None = None
        self.message = ""
        self._unsubscribe: Any = None
        self._dirty = True

    def compose(self) -> ComposeResult:
        yield Static("Change notice — campaign", classes="dialog-title")
        yield Static("Reading the state file …", id="notices-counts", markup=False)
        yield Static(progress_text(None), id="notices-progress", markup=False)
        yield Static("", id="notices-message", markup=False)
        with Horizontal(id="notices-body"):
            yield DataTable(id="notices-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="notices-scroll"):
                yield Static("", id="notices-preview", markup=False)
        yield Static("t test · s send · p pause · f final reminder · d decide a doubt · escape close",
                     id="notices-keys", markup=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # short columns first: the address (last) is the part a narrow screen cuts
        table.add_columns("state", "campaign", "lang", "address")
        self._unsubscribe = self.engine.subscribe(self._on_event)
        self.progress = None
        self.set_interval(REFRESH_SECONDS, self._tick)
        self.serial.run("load", self._load)
        table.focus()

    def on_resize(self, event: Any) -> None:
        # the list wants ~48 columns beside the 82 of the text; below that, one above the other
        self.set_class(event.size.width < STACK_BELOW, "-stacked")

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, CampaignProgress):
            self.progress = ev
            self._dirty = True
        elif isinstance(ev, NoticeChanged):
            self._dirty = True

    def _tick(self) -> None:
        self.query_one("#notices-progress", Static).update(progress_text(self.progress))
        if self._dirty:
            self._dirty = False
            self.serial.run("load", self._load)

    async def _load(self) -> None:
        notices = self.engine.notices
        try:
            status = await notices.status(scan=False)
            rows = [(r.address, r.campaign, r.state, r.language) for r in await notices.ledger.rows()
                    if not r.campaign.startswith("test")]
            queued = {a for a, c, _, _ in rows if c == "notice"}
            waiting = [(p.address, "notice", "not queued", p.language)
                       for p in await notices.people.audience("notice") if p.address not in queued]
        except Exception as exc:
            self.say(f"The campaign could not be read: {sentence(exc)}")
            return
        self.status = status
        self.query_one("#notices-counts", Static).update(counts_text(status))
        new_rows = rows + waiting
        if new_rows != self.rows:
            self._fill(new_rows)

    def _fill(self, rows: list[tuple[str, str, str, str]]) -> None:
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for i, (address, campaign, state, lang) in enumerate(rows):
            table.add_row(state, campaign, lang, address, key=f"{i}")
        self.rows = rows
        if rows:
            table.move_cursor(row=min(max(keep, 0), len(rows) - 1))
            self._show_preview()

    def selected(self) -> tuple[str, str, str, str] | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_preview()

    def _show_preview(self) -> None:
        row = self.selected()
        if row is not None:
            self.serial.run("preview", lambda: self._preview(row[0], row[1]))

    async def _preview(self, address: str, campaign: str) -> None:
        try:
            raw = await self.engine.notices.preview(address, campaign)
            text = preview_text(raw)
            row = await self.engine.notices.ledger.find(campaign, address)
            if row is not None and row.state in ("bounced", "doubt", "failed"):
                text = f"{row.state.upper()}: {row.bounce or row.reply}\n\n{text}"
        except Exception as exc:
            text = f"No preview: {sentence(exc)}"
        self.query_one("#notices-preview", Static).update(text)

    def say(self, text: str) -> None:
        self.message = text
        self.query_one("#notices-message", Static).update(text)

    # -- actions ------------------------------------------------------------------------
    def action_close(self) -> None:
        self.dismiss(None)

    def action_cursor_down(self) -> None:
        self.query_one(DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(DataTable).action_cursor_up()

    def action_test(self) -> None:
        if self.engine.notices.sending:
            self.say("A campaign is sending; the test waits until it ends.")
            return
        self.say("Sending the test notices to your own addresses …")
        self.app.run_worker(self._test(), group="notices-test", exclusive=True)

    async def _test(self) -> None:
        try:
            results = await self.engine.notices.test(timeout=120)
        except Exception as exc:
            self.say(f"The test could not be sent: {sentence(exc)}")
            return
        parts = [f"{r.language} {r.side}: " + (f"{r.seconds:.1f} s" if r.seconds is not None
                                                else f"NOT ARRIVED ({r.state})") for r in results]
        self.say("Test: " + "; ".join(parts))
        self._dirty = True

    def action_send(self) -> None:
        self._ask_send("notice")

    def action_final(self) -> None:
        self._ask_send("final")

    def _ask_send(self, campaign: str) -> None:
        if self.engine.notices.sending:
            self.say("A campaign is already sending (p pauses it).")
            return
        self.app.run_worker(self._confirm(campaign), group="notices-plan", exclusive=True)

    async def _confirm(self, campaign: str) -> None:
        try:
            plan = await self.engine.notices.plan(campaign)
        except Exception as exc:
            self.say(sentence(exc))
            return
        if plan.count == 0:
            self.say(f"Nobody is waiting for the {campaign} campaign.")
            return
        body = (f"Send the {campaign} to {plan.count} people, one message each, at up to "
                f"{plan.pace.words()}: about {fmt_eta(plan.eta_seconds)}.")
        answer = await self.app.push_screen_wait(Ask(f"Send the {campaign}?", body, {"y": "send", "n": "no"}))
        if answer == "send":
            self.app.run_worker(self._send(campaign), group="notices-send", exclusive=True)

    async def _send(self, campaign: str) -> None:
        try:
            result = await self.engine.notices.send(campaign)
        except Exception as exc:
            self.say(sentence(exc))
            return
        self.say(" ".join(result.lines()))
        self._dirty = True

    def action_pause(self) -> None:
        run = self.engine.notices.run
        if run is None:
            self.say("No campaign is running.")
            return
        self.engine.notices.pause()
        self.say("Paused; p goes on." if run.paused else "Going on.")

    def action_doubt(self) -> None:
        row = self.selected()
        if row is None or row[2] != "doubt":
            self.say("Select a notice in doubt (state 'doubt') first.")
            return
        self.app.run_worker(self._decide(row[0], row[1]), group="notices-doubt", exclusive=True)

    async def _decide(self, address: str, campaign: str) -> None:
        body = (f"The server took the {campaign} to {address} but never answered. Did it arrive? "
                f"Ask them, or look in their reply. Sending it again uses the same Message-ID.")
        answer = await self.app.push_screen_wait(
            Ask("A notice in doubt", body, {"a": "it arrived", "r": "send it again"}))
        if not answer:
            return
        try:
            row = await self.engine.notices.settle(address, answer == "it arrived", campaign)
        except Exception as exc:
            self.say(sentence(exc))
            return
        self.say(f"The {row.campaign} to {row.address}: {row.state}.")
        self._dirty = True
