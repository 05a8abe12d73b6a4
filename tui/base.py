"""What every pane shares: the engine, a message line, workers that re-read state.

A pane calls the engine's facets directly (``self.engine.migration.plan()``); a call may
fail (server down, wrong password), and each pane turns that into the engine's one
sentence for it (core.errors.sentence) in its own message line instead of letting it
take the app down. A pane's keys act only once the engine is open (``Pane.check_action``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from rich.text import Text
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.containers import Vertical
from textual.widgets import Static

from switchover.core.errors import sentence
from switchover.core.events import Event


def table_keys(pane: str) -> list[Binding]:
    """The keys every pane's table shares: j/k beside the arrows, and home/end to the
    first/last row (DataTable's own home/end scroll sideways). Ids stay per pane so each
    can be remapped on its own."""
    return [
        Binding("j", "cursor_down", "Down", show=False, id=f"{pane}.down"),
        Binding("k", "cursor_up", "Up", show=False, id=f"{pane}.up"),
        Binding("home", "scroll_top", "Top", show=False, id=f"{pane}.top"),
        Binding("end", "scroll_bottom", "Bottom", show=False, id=f"{pane}.bottom"),
    ]


if TYPE_CHECKING:
    from switchover.core.engine import Engine

    from .app import SwitchoverApp

T = TypeVar("T")


class Serial:
    """Workers that re-read the state file, one at a time per group, the latest request
    winning. A request while one runs is kept and run once when it ends — the running
    one is never cancelled: a read cut off mid-query leaves its SQLite statement open,
    which pins a stale snapshot and makes the next write of the connection fail with
    "database is locked" (so ``exclusive=True`` is not used for reads)."""

    def __init__(self, node: Any) -> None:
        self._node = node
        self._running: set[str] = set()
        self._again: dict[str, Callable[[], Awaitable[Any]]] = {}

    def run(self, group: str, work: Callable[[], Awaitable[Any]]) -> None:
        if group in self._running:
            self._again[group] = work
            return
        self._running.add(group)

        async def loop() -> None:
            nxt: Callable[[], Awaitable[Any]] | None = work
            try:
                while nxt is not None:
                    try:
                        await nxt()
                    except NoMatches:
                        return  # the app is closing: the pane's widgets are going away
                    except Exception:
                        if getattr(self._node, "is_attached", True):
                            raise
                        return
                    nxt = self._again.pop(group, None)
            finally:
                self._running.discard(group)
                self._again.pop(group, None)

        self._node.run_worker(loop, group=group)

    def busy(self, group: str) -> bool:
        return group in self._running


class Pane(Vertical):
    """Base of the four panes. Subclasses implement ``load`` and ``handle_events``."""

    #: shown as the first line of the help screen for this pane
    HELP_TITLE = ""
    HELP_ABOUT = ""

    @property
    def serial(self) -> Serial:
        if "_serial" not in self.__dict__:
            self._serial = Serial(self)
        return self._serial

    @property
    def sapp(self) -> "SwitchoverApp":
        return self.app  # type: ignore[return-value]

    @property
    def engine(self) -> "Engine":
        """The open engine. Panes load only after the app opened it, and their keys act
        only while it is open (``check_action``), so it is never None where it is used."""
        engine = self.sapp.engine
        assert engine is not None, "a pane reached for the engine before it was open"
        return engine

    def now(self) -> dt.datetime:
        return self.sapp.clock()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No key of a pane acts before the engine is open (a key pressed while the app
        starts, or behind the no-config screen). Panes extend this with their own rules."""
        return self.sapp.engine is not None

    async def attempt(self, what: str, fn: Callable[[], Awaitable[T]]) -> T | None:
        """Await ``fn()``; on failure show '<what>: <sentence>' and return None."""
        try:
            return await fn()
        except Exception as exc:
            self.say(f"{what}: {sentence(exc)}", error=True)
            return None

    def say(self, text: str, *, error: bool = False) -> None:
        try:
            line = self.query_one(".pane-message", Static)
        except Exception:
            return
        line.update(text)
        line.set_class(error, "-error")

    def message_line(self) -> Static:
        return Static("", classes="pane-message", markup=False)

    @property
    def visible_now(self) -> bool:
        """True when this pane is on screen (hidden tabs skip their repaints)."""
        if not self.is_mounted:
            return False
        return all(getattr(node, "display", True) for node in self.ancestors_with_self)

    async def load(self) -> None:  # pragma: no cover - overridden
        """Read the pane's state from the engine (SQLite) — on start and on demand."""

    def handle_events(self, events: list[Event]) -> None:  # pragma: no cover - overridden
        """Take a drained batch of engine events (already coalesced)."""

    def flush(self) -> None:
        """Apply what ``handle_events`` collected, if the pane is visible."""

    #: another process (a headless watch, a CLI command) wrote to the state file
    _stale_elsewhere = False

    def changed_elsewhere(self) -> None:
        """Another process changed the state file: re-read what is shown (now if the pane
        is visible, else when it is shown)."""
        self._stale_elsewhere = True

    def reload_if_stale(self) -> None:
        if self._stale_elsewhere and self.visible_now:
            self._stale_elsewhere = False
            self.serial.run("load", self.load)


_ATTRIBUTES = {"bold", "dim", "italic", "underline", "reverse", "strike", "not"}


def plain_style(app: object, style: str) -> str:
    """With NO_COLOR, Textual turns colours into greys — 'bold red' becomes a dark grey
    that vanishes on a dark background. Keep only the attributes then (bold stays bold)."""
    if not style or not getattr(app, "no_color", False):
        return style
    return " ".join(w for w in style.split() if w in _ATTRIBUTES)


def cell(value: object, style: str = "") -> Text:
    """A table cell that shows user data literally (a subject's '[...]' is not markup)."""
    return Text("" if value is None else str(value), style=style, no_wrap=True,
                overflow="ellipsis")


def clip(value: str | None, width: int) -> str:
    value = (value or "").replace("\n", " ").replace("\r", " ")
    return value if len(value) <= width else value[: max(0, width - 1)] + "…"
