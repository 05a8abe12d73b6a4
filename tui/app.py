"""The dashboard app: wires the engine's events to the four panes, the status line and
the keys. Kept thin — each pane lives in its own module, passwords and refused logins in
tui/logins.py.

It stays true beside another process on the same state file (a headless ``watch``, a
CLI ``migrate``): about once a second it asks SQLite whether someone else wrote
(``engine.changed_elsewhere``) and every pane re-reads what it shows. The counts are read
in one place (``refresh_counts``) for the status line and the feed alike.

Entry points: ``run_dashboard(config_path)`` (used by ``switchover`` with no command) and
``SwitchoverApp(engine=..., config=...)`` (tests, screenshots, the demo).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from switchover.core.errors import sentence
from switchover.core.events import ActionChanged, ArrivalSeen, ConnectionState

from .base import Pane, Serial
from .checklist import ChecklistPane
from .commands import palette_commands
from .feed import FeedPane
from .footer import BoundedFooter
from .help import help_for
from .logins import Logins
from .migration import MigrationPane
from .people import PeoplePane
from .pump import EventPump
from .status import StatusLine, transition_text

if TYPE_CHECKING:
    from switchover.core.config import Config
    from switchover.core.engine import Engine

TABS = (("checklist", "1 Checklist", ChecklistPane), ("migration", "2 Migration", MigrationPane),
        ("feed", "3 Feed", FeedPane), ("people", "4 People", PeoplePane))
#: how often queued engine events are applied to the screen (≥ 4 times a second)
DRAIN_SECONDS = 0.2
#: how often the state file is asked whether another process (a headless watch, a CLI
#: command) changed it; what is shown is re-read within about this long
ELSEWHERE_SECONDS = 1.0


class NoConfigScreen(Screen[None]):
    """Shown instead of the dashboard when there is no usable config."""

    # not in the footer: the dialog says "q quits" and the footer already shows ^q Quit
    BINDINGS = [Binding("q,escape", "app.quit", "Quit", show=False, id="noconfig.quit")]

    def __init__(self, path: Path | None, reason: str) -> None:
        super().__init__()
        self._path = path
        self._reason = reason

    def compose(self) -> ComposeResult:
        where = f" at {self._path}" if self._path else ""
        with Vertical(classes="dialog"):
            yield Static(f"No usable switchover config{where}.", classes="dialog-title",
                         markup=False)
            yield Static(self._reason, markup=False, classes="dialog-hint")
            yield Static("Run `switchover init` to answer a few questions and write one, or "
                         "start with `switchover --config PATH` (or set $SWITCHOVER_CONFIG). "
                         "`switchover demo` shows everything without a mail account.",
                         markup=False)
            yield Static("q quits", classes="dialog-keys")
        yield Footer()


class SwitchoverApp(Logins, App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "switchover"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("f1,question_mark", "help", "Help", id="app.help"),
        # shown only while a mailbox refuses its login or has no secret: the password prompt,
        # or the Sign in dialog of an OAuth2 mailbox (tui/logins.py)
        Binding("P", "password", "Sign in again", id="app.password"),
        Binding("1", "show_tab('checklist')", "Show checklist", show=False, id="app.tab1"),
        Binding("2", "show_tab('migration')", "Show migration", show=False, id="app.tab2"),
        Binding("3", "show_tab('feed')", "Show feed", show=False, id="app.tab3"),
        Binding("4", "show_tab('people')", "Show people", show=False, id="app.tab4"),
        # the change-notice campaign (tui/notices.py)
        Binding("C", "campaign", "Campaign", show=False, id="app.campaign"),
    ]

    def __init__(self, engine: "Engine | None" = None, config: "Config | str | Path | None" = None, *,
                 clock: Callable[[], dt.datetime] | None = None,
                 start_background: bool = True, initial_tab: str = "checklist") -> None:
        super().__init__()
        self.engine: Engine | None = engine
        self._quitting = False       # ctrl+q asked while a campaign sends (action_quit)
        self._config_arg = config
        self._owns_engine = False
        self.clock: Callable[[], dt.datetime] = clock or (lambda: dt.datetime.now().astimezone())
        self.start_background = start_background
        self.initial_tab = initial_tab
        self.pump = EventPump()
        self._unsubscribe: Callable[[], None] | None = None
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()      # set when the panes have loaded (tests wait on it)
        #: the old-side counts (unhandled, today, total, switched): one source for the
        #: status line and the feed's header, so they never disagree
        self.counts: dict[str, int] = {}
        self._polling = False
        self._background = False
        self._told_auth: set[str] = set()
        self.serial = Serial(self)

    # -- layout -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # kept as attributes: queries go to the active screen, which may be a dialog
        self._status = StatusLine(id="status")
        self._panes = {tab_id: cls(id=f"{tab_id}-pane", classes="pane") for tab_id, _, cls in TABS}
        self._tabs = TabbedContent(initial=self.initial_tab, id="tabs")
        yield self._status
        with self._tabs:
            for tab_id, label, cls in TABS:
                with TabPane(label, id=tab_id):
                    yield self._panes[tab_id]
        # compact, and ctrl+p lives in the help screen: every pane's keys fit in 80 columns
        yield BoundedFooter(compact=True, show_command_palette=False)

    @property
    def panes(self) -> list[Pane]:
        return list(self._panes.values())

    def pane(self, tab_id: str) -> Pane:
        return self._panes[tab_id]

    @property
    def status(self) -> StatusLine:
        return self._status

    @property
    def tabs(self) -> TabbedContent:
        return self._tabs

    # -- start and stop -----------------------------------------------------------------
    def on_mount(self) -> None:
        self.run_worker(self._start, group="app-start", exclusive=True)

    async def _start(self) -> None:
        if self.engine is None and not await self._open_engine():
            return
        engine = self.engine
        assert engine is not None
        self.refresh_bindings()           # the panes' keys act from now on
        self._unsubscribe = engine.subscribe(self.pump.push)
        for side in ("old", "new"):
            self.status.set_connection(side, engine.connection_state.get(side, "unknown"))
        self._refresh_day()
        self.set_interval(DRAIN_SECONDS, self._drain)
        self.set_interval(60, self._refresh_day)
        self.set_interval(30, self.refresh_counts)
        self.set_interval(ELSEWHERE_SECONDS, self._poll_elsewhere)
        complete = await self._ask_secrets()
        await asyncio.gather(*(p.load() for p in self.panes), return_exceptions=True)
        await self.refresh_counts()
        self._focus_tab(self.tabs.active)
        self.ready.set()
        if complete:
            self._start_background()

    def _start_background(self) -> None:
        """The watch, the actions runner and the login proofs (once every secret is known)."""
        if self._background or not self.start_background:
            return
        self._background = True
        self.run_worker(self._watch, group="monitor", exclusive=True)
        self.run_worker(self._start_actions, group="actions", exclusive=True)
        self.serial.run("proofs", self._prove_logins)

    async def _prove_logins(self) -> None:
        """Log in to both sides: the checklist's login items are proven with the server's
        own answer as evidence. A failure here does not take back a proof that an explicit
        check recorded (core/checklist.py says why); ``e`` in the checklist re-checks."""
        assert self.engine is not None
        checklist = self.engine.checklist
        try:
            await checklist.check_logins(explicit=False)
            await checklist.refresh_evidence()
        except Exception as exc:
            self.status.set_note(f"login check: {sentence(exc)}")

    async def _open_engine(self) -> bool:
        from switchover.core.config import find_config, load_config
        from switchover.core.engine import Engine

        arg = self._config_arg
        path: Path | None = None
        try:
            if arg is None or isinstance(arg, (str, Path)):
                path = find_config(arg)
                if not path.exists():
                    self.push_screen(NoConfigScreen(path, "The file does not exist."))
                    return False
                config = load_config(path)
            else:
                config = arg
            self.engine = await Engine.open(config)
            self._owns_engine = True
        except Exception as exc:
            self.push_screen(NoConfigScreen(path, sentence(exc)))
            return False
        return True

    async def _watch(self) -> None:
        """Keep the old-inbox monitor running; it reconnects by itself, this only
        restarts it if it ever returns with an error."""
        assert self.engine is not None
        while not self._stop.is_set():
            try:
                await self.engine.monitor.run(self._stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.status.set_note(f"watch: {sentence(exc)}")
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=60)
            except asyncio.TimeoutError:
                pass

    async def _start_actions(self) -> None:
        assert self.engine is not None
        try:
            await self.engine.actions.start()
        except Exception as exc:
            self.status.set_note(f"actions: {sentence(exc)}")

    async def on_unmount(self) -> None:
        self._stop.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        engine = self.engine
        if engine is None:
            return
        try:
            await asyncio.wait_for(engine.actions.stop(), timeout=5)
        except Exception:  # closing: what is recorded stays recorded
            pass
        if self._owns_engine:
            try:
                await asyncio.wait_for(engine.close(), timeout=10)
            except Exception:
                pass

    # -- engine events → screen ---------------------------------------------------------
    def _drain(self) -> None:
        if not self._status.is_mounted:
            return
        events = self.pump.drain()
        if events:
            for event in events:
                if isinstance(event, ConnectionState):
                    self._connection(event)
            for pane in self.panes:
                try:
                    pane.handle_events(events)
                except Exception as exc:  # one pane's bug must not stop the others
                    pane.say(f"display error: {sentence(exc)}", error=True)
            if any(isinstance(e, (ArrivalSeen, ActionChanged)) for e in events):
                self.serial.run("counts", self.refresh_counts)
        for pane in self.panes:
            try:
                pane.flush()
                pane.reload_if_stale()
            except Exception as exc:
                pane.say(f"display error: {sentence(exc)}", error=True)

    def _poll_elsewhere(self) -> None:
        if not self._polling and self.engine is not None:
            self._polling = True
            self.run_worker(self._check_elsewhere, group="elsewhere")

    async def _check_elsewhere(self) -> None:
        """Another process (a headless watch, a CLI migrate) wrote to the state file:
        every pane re-reads what it shows, and the counts are read once for all."""
        assert self.engine is not None
        try:
            changed = await self.engine.changed_elsewhere()
        except Exception:
            changed = False
        finally:
            self._polling = False
        if not changed:
            return
        for pane in self.panes:
            pane.changed_elsewhere()
        await self.refresh_counts()

    def _refresh_day(self) -> None:
        if self.engine is None:
            return
        transition = self.engine.config.transition
        start, close = transition.start, transition.close_date
        today = self.clock().date()
        self.status.set_transition(transition_text(start, close, today),
                                   transition_text(start, close, today, short=True))

    async def refresh_counts(self) -> dict[str, int]:
        """Read the counts once and show them everywhere they appear."""
        if self.engine is None:
            return self.counts
        try:
            counts = await self.engine.monitor.counts()
        except Exception:
            return self.counts
        self.counts = dict(counts)
        self.status.set_counts(int(self.counts.get("unhandled", 0)))
        feed = self._panes.get("feed")
        if isinstance(feed, FeedPane) and feed.is_attached:
            try:
                feed.show_counts()
            except NoMatches:  # closing: the feed's widgets are going away
                pass
        return self.counts

    def notify(self, message: str, *, title: str = "", severity: Any = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Notifications carry server words and user data ('[AUTHENTICATIONFAILED] …',
        a subject in brackets): shown literally unless a caller asks for markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # -- tabs, help, palette ------------------------------------------------------------
    def action_show_tab(self, tab_id: str) -> None:
        self.tabs.active = tab_id
        self._focus_tab(tab_id)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._focus_tab(event.pane.id or "")

    def _focus_tab(self, tab_id: str) -> None:
        try:
            pane = self.pane(tab_id)
        except Exception:
            return
        tables = pane.query("DataTable")
        if tables:
            tables.first().focus()
        pane.flush()  # a hidden pane skipped its repaints; catch up now

    @property
    def active_pane(self) -> Pane | None:
        try:
            return self.pane(self.tabs.active)
        except Exception:
            return None

    def action_quit(self) -> None:
        """Quit; a campaign that is sending stops between two messages first (a quit in
        the middle of one would leave it 'sending', or in doubt if its data had left). The
        wait runs apart, so the screen stays alive and a second ctrl+q quits at once."""
        engine = self.engine
        if self._quitting or engine is None or not engine.notices.sending:
            self.exit()
            return
        self._quitting = True
        self.notify("Stopping the campaign after the message in flight … "
                    "(ctrl+q again: do not wait for the stop)", timeout=30)
        self.run_worker(self._quit_after_campaign(engine), group="quit", exclusive=True)

    async def _quit_after_campaign(self, engine: "Engine") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while engine.notices.sending and loop.time() < deadline:
            engine.notices.cancel()
            await asyncio.sleep(0.1)
        self.exit()

    def action_help(self) -> None:
        self.push_screen(help_for(self, self.screen, self.active_pane))

    def action_campaign(self) -> None:
        """The change-notice campaign screen (tui/notices.py)."""
        if self.engine is None:
            return
        from .notices import NoticesScreen
        self.push_screen(NoticesScreen(self.engine))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if self.engine is not None:
            yield from palette_commands(self)


def run_dashboard(config_path: str | Path | None = None, *, mouse: bool = True) -> int:
    """Open the dashboard for the config at ``config_path`` (or $SWITCHOVER_CONFIG, or
    ./switchover.yaml). Returns a process exit code."""
    app = SwitchoverApp(config=config_path)
    app.run(mouse=mouse)
    return 0
