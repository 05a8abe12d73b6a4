"""Snapshot tests of the dashboard (pytest-textual-snapshot): each pane at 80×24 and
120×40, the help screen, the no-config screen, the reminder confirm (a list sender's
warning above the reminder as it would go) and the question a send in doubt asks.

The data comes from tests/support/tui_fake.py (fixed records, a frozen clock) so the pictures are
deterministic; the keyboard flows against real servers are in test_tui.py. Update with
`pytest tests/faces/test_snapshots.py --snapshot-update` — only after looking at the result.
"""

from __future__ import annotations

import pytest

from tests.support.tui_fake import FakeEngine, clock
from switchover.tui.app import SwitchoverApp

PANES = ("checklist", "migration", "feed", "people")
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


def _app(tab: str) -> SwitchoverApp:
    return SwitchoverApp(FakeEngine(), clock=clock, start_background=False, initial_tab=tab)


async def _settle(pilot) -> None:
    app = pilot.app
    await app.ready.wait()
    await app.workers.wait_for_complete()
    await pilot.pause(0.3)
    await app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("tab", PANES)
def test_pane(snap_compare, tab: str, size: tuple[int, int]) -> None:
    assert snap_compare(_app(tab), terminal_size=size, run_before=_settle)


def test_feed_help_80x24(snap_compare) -> None:
    async def run_before(pilot) -> None:
        await _settle(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(_app("feed"), terminal_size=(80, 24), run_before=run_before)


def test_no_config_80x24(snap_compare, tmp_path) -> None:
    app = SwitchoverApp(config=tmp_path / "missing.yaml", clock=clock)

    async def run_before(pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        # the path is a tmp dir: keep the picture stable
        screen = pilot.app.screen
        screen._path = "./switchover.yaml"
        await screen.recompose()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_feed_no_color_80x24(snap_compare, monkeypatch) -> None:
    """Over plain SSH with NO_COLOR: states and badges still read as words."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(_app("feed"), terminal_size=(80, 24), run_before=_settle)


async def _until_dialog(pilot) -> None:
    """The key's worker waits for the answer: wait for the dialog, not for the worker."""
    from textual.screen import ModalScreen

    for _ in range(50):
        if isinstance(pilot.app.screen, ModalScreen):
            break
        await pilot.pause(0.1)
    await pilot.pause(0.3)


def test_remind_list_sender_confirm_80x24(snap_compare) -> None:
    """r on an automated sender: the warning, then To / Subject / language / the text."""
    async def run_before(pilot) -> None:
        await _settle(pilot)
        feed = pilot.app.pane("feed")
        feed.table.move_cursor(row=feed.order.index(5))   # Alibaba.com's digest
        await pilot.pause()
        await pilot.press("r")
        await _until_dialog(pilot)

    assert snap_compare(_app("feed"), terminal_size=(80, 24), run_before=run_before)


def test_feed_doubt_80x24(snap_compare) -> None:
    """A reminder in doubt: the row, the message line, the d key, then its question."""
    async def run_before(pilot) -> None:
        await _settle(pilot)
        feed = pilot.app.pane("feed")
        feed.table.move_cursor(row=feed.order.index(2))
        await pilot.pause(0.3)
        await pilot.press("d")
        await _until_dialog(pilot)

    assert snap_compare(_app("feed"), terminal_size=(80, 24), run_before=run_before)
