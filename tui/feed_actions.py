"""What the feed's keys do with an arrival: forward, remind, handled, undo, retry, settle
a send in doubt, show the reminder before it goes (``FeedActions``, mixed into
``FeedPane``).

Every action is requested from the engine, which records it first and waits an undo
window (config.transition.undo_seconds) before carrying it out; the row shows the
countdown and ``u`` cancels it. A reminder to a list or automated sender is shown with
the engine's warning and needs a ``y``; ``m`` shows any reminder exactly as it would go
(To, Subject, language, text). A send whose outcome is unknown ("in doubt") is never
retried blindly: ``d`` asks the person whether it arrived, or sends it again.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text

from switchover.core.errors import sentence
from switchover.core.transition.actions import NeedsConfirmation, Preview
from switchover.core.transition.arrivals import Arrival

from .base import clip
from .prompts import ConfirmScreen, DoubtScreen
from .words import KIND_WORDS, NOUNS

if TYPE_CHECKING:
    from switchover.core.engine import Engine
    from switchover.core.transition.actions import Actions

@dataclass
class Pending:
    action_id: int
    arrival_id: int
    kind: str
    deadline: float           # time.monotonic() when the engine will carry it out


def preview_text(p: Preview) -> Text:
    """A reminder exactly as it will go: To, Subject, language, then the text itself."""
    text = Text()
    for label, value in (("To", p.to), ("Subject", p.subject), ("Language", p.language)):
        text.append(f"{label}: ", style="bold")
        text.append(f"{value}\n")
    text.append("\n")
    text.append(p.text)
    return text


class FeedActions:
    """The feed's action keys; expects the FeedPane's ``engine``, ``arrivals``,
    ``pending``, ``selected_id``, ``say``, ``_update_row``, ``_dirty_ids`` and ``flush``."""

    engine: "Engine"
    arrivals: dict[int, Arrival]
    pending: dict[int, Pending]
    _dirty_ids: set[int]

    def _tick_pending(self) -> None:
        if not self.pending:
            return
        now = time.monotonic()
        for p in list(self.pending.values()):
            self._update_row(p.arrival_id)
            if now > p.deadline + 30:  # the engine never reported back; stop counting
                self.pending.pop(p.action_id, None)
        if not self.pending:
            self.show_counts()
            self.refresh_bindings()

    # -- actions ------------------------------------------------------------------------
    def action_act(self, kind: str) -> None:
        arrival_id = self.selected_id()
        if arrival_id is None:
            return
        if kind == "remind":
            self.run_worker(partial(self._remind, arrival_id), group="feed-act")
        else:
            self.run_worker(partial(self._request, arrival_id, kind), group="feed-act")

    async def _remind(self, arrival_id: int, *, show_first: bool = False,
                      warning: str | None = None) -> None:
        """A reminder to a list or automated sender is shown and needs a yes; with
        ``show_first`` (the m key) any reminder is shown first."""
        actions = self.engine.actions
        if warning is None:
            warning = await self._remind_warning(actions, arrival_id)
        if warning or show_first:
            preview = await self._reminder_preview(actions, arrival_id)
            if preview is None and not warning:
                return
            a = self.arrivals.get(arrival_id)
            who = (a.sender_name or a.sender) if a is not None else f"arrival #{arrival_id}"
            body: str | Text = preview_text(preview) if preview is not None else ""
            yes = await self.app.push_screen_wait(ConfirmScreen(
                f"Send this reminder to {clip(who, 40)}?", body, warning=warning or "",
                yes="send", no="don't send", scroll=True))
            if not yes:
                self.say("No reminder sent.")
                return
        await self._request(arrival_id, "remind", confirmed=bool(warning))

    async def _remind_warning(self, actions: "Actions", arrival_id: int) -> str | None:
        try:
            return await actions.remind_warning(arrival_id)
        except Exception as exc:
            self.sapp.notify(sentence(exc), title="remind", severity="warning", timeout=8)
            return None

    async def _reminder_preview(self, actions: "Actions", arrival_id: int) -> Preview | None:
        try:
            return await actions.preview(arrival_id, "remind")
        except Exception as exc:
            self.sapp.notify(sentence(exc), title="remind", severity="warning", timeout=8)
            return None

    async def _request(self, arrival_id: int, kind: str, *, confirmed: bool = False) -> None:
        actions = self.engine.actions
        try:
            action_id = await actions.request(arrival_id, kind, confirmed=confirmed)
            row = await actions.get(action_id)
        except NeedsConfirmation as exc:
            # the engine found a list / robot sender the warning check missed: ask
            self.run_worker(partial(self._remind, arrival_id, warning=exc.warning),
                            group="feed-act")
            return
        except Exception as exc:
            self.sapp.notify(sentence(exc), title=kind, severity="warning", timeout=8)
            return
        undo = self.engine.config.transition.undo_seconds
        verb, doing, done = KIND_WORDS.get(kind, (kind, kind, kind))
        if row.state != "pending":
            # the engine returned the live action already recorded: never a second one
            self.sapp.notify(f"Already {done if row.state == 'done' else doing}.", timeout=4)
        elif undo > 0:
            left = row.not_before - time.time()
            self.pending[action_id] = Pending(action_id, arrival_id, kind,
                                              time.monotonic() + max(0.0, left))
            a = self.arrivals.get(arrival_id)
            if a is not None:  # show the countdown now, before the engine's event arrives
                self.arrivals[arrival_id] = dataclasses.replace(
                    a, actions={**a.actions, kind: "pending"})
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
        try:
            ok = await self.engine.actions.cancel(p.action_id)
        except Exception as exc:
            self.sapp.notify(sentence(exc), title="undo", severity="warning")
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
        actions = self.engine.actions
        rows = await self.attempt("retry", lambda: actions.for_arrival(arrival_id)) or []
        failed = [r for r in rows if r.state == "failed"]
        if not failed:
            self.sapp.notify("No failed action on this message.", timeout=3)
            return
        for row in failed:
            await self.attempt("retry", lambda: actions.retry(row.id))
        self._dirty_ids.add(arrival_id)
        self.flush()

    def action_doubt(self) -> None:
        arrival_id = self.selected_id()
        if arrival_id is not None:
            self.run_worker(partial(self._doubt, arrival_id), group="feed-act")

    async def _doubt(self, arrival_id: int) -> None:
        """Ask whether a send in doubt arrived; mark it delivered or send it again."""
        actions = self.engine.actions
        rows = await self.attempt("in doubt", lambda: actions.for_arrival(arrival_id)) or []
        doubtful = [r for r in rows if r.state == "doubt"]
        if not doubtful:
            self.sapp.notify("Nothing on this message is in doubt.", timeout=3)
            return
        for row in doubtful:
            verb = NOUNS.get(row.kind, row.kind)
            to = row.recipient or "the recipient"
            body = (f"The {verb} to {to} was handed to the server, but its answer never came "
                    f"(the connection dropped or timed out), so switchover does not know whether "
                    f"it went out. It is not sent again by itself.\n\nCheck the Sent folder or ask "
                    f"{to}. If it arrived, say so; if not, send it again.")
            choice = await self.app.push_screen_wait(DoubtScreen(
                f"Did the {verb} to {clip(to, 40)} arrive?", body))
            if choice is None:
                self.say(f"The {verb} stays in doubt; d decides later.")
                continue
            delivered = choice == "delivered"
            try:
                await actions.resolve_doubt(row.id, delivered)
            except Exception as exc:
                self.sapp.notify(sentence(exc), title=verb, severity="warning", timeout=8)
                continue
            self.say(f"The {verb} is marked delivered." if delivered
                     else f"The {verb} goes out again now (the same message, so a copy that "
                          f"did arrive is recognisable).")
        self._dirty_ids.add(arrival_id)
        self.flush()

    def action_more(self) -> None:
        """Show the reminder ``r`` would send for the selected arrival (y sends it)."""
        arrival_id = self.selected_id()
        if arrival_id is not None:
            self.run_worker(partial(self._remind, arrival_id, show_first=True), group="feed-act")
