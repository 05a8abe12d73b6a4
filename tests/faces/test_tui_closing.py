"""The dashboard's wrap-up (Pilot, real engine on Dovecot): the status line says when the
old inbox was last checked and that a check is overdue (tui/status.py), and ``c`` in the
checklist opens the closing panel with the engine's verdict and its reasons
(tui/closing.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from switchover.tui.app import SwitchoverApp
from switchover.tui.closing import ClosingScreen
from tests.support.arrivals import add_arrival, message

pytestmark = pytest.mark.timeout(90)


async def _until(pilot, cond, timeout: float = 15) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        await pilot.pause(0.1)


def _plain(widget) -> str:
    return getattr(widget.render(), "plain", str(widget.render()))


async def test_overdue_check_and_the_closing_panel(make_engine, mailserver, old_user, new_user) -> None:
    today = dt.date.today()
    eng = await make_engine(old_user, new_user, transition={"start": (today - dt.timedelta(days=40)).isoformat()})
    eng.monitor.learn_history = False
    await eng.monitor.catch_up()                      # checked now …
    await add_arrival(eng, mailserver, old_user, message(old_user.address))
    five_days_on = dt.datetime.now().astimezone() + dt.timedelta(days=5)    # … and seen 5 days later

    app = SwitchoverApp(eng, clock=lambda: five_days_on, start_background=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        await _until(pilot, lambda: app.status.overdue)
        assert app.status.schedule == "check overdue (2 days)"
        assert "check overdue (2 days)" in _plain(app.status)

        await pilot.press("c")
        await _until(pilot, lambda: isinstance(app.screen, ClosingScreen) and app.screen.readiness is not None)
        screen = app.screen
        assert screen.readiness.verdict == "not yet"
        text = _plain(screen.query_one("#closing-text"))
        assert text.startswith("Closing the old mailbox: not yet")
        assert "NOT YET  1 of 1 arrivals on the old address still wait" in text
        assert "UNKNOWN  " not in text
        assert "Checks: Last checked 5 days ago" in text and "a check every 3 days" in text
        await pilot.press("escape")
        await _until(pilot, lambda: not isinstance(app.screen, ClosingScreen))
        # the checklist's 'close' item (a person's tick) shows the verdict as its evidence
        await _until(pilot, lambda: "closing readiness" in app.pane("checklist").items["close"].evidence)


async def test_narrow_status_line_puts_an_overdue_check_first(make_engine, old_user, new_user) -> None:
    eng = await make_engine(old_user, new_user, transition={"start": dt.date.today().isoformat()})
    app = SwitchoverApp(eng, clock=lambda: dt.datetime.now().astimezone(), start_background=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        await _until(pilot, lambda: app.status.schedule != "")
        assert app.status.schedule == "old inbox never checked" and app.status.overdue
        line = _plain(app.status)
        assert "old inbox never checked" in line and "day 1/" not in line
