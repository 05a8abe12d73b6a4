"""The dashboard stays true while it is open for months (issue 10.1–10.3).

- Beside a headless ``switchover watch`` (the README's setup) — a real second process on
  the same state file, against Dovecot — what that process records reaches the open
  dashboard within about a second, and the feed's header and the status line read the
  same counts.
- A burst of arrivals: with the cursor on the newest row the feed follows like
  ``tail -f``; elsewhere it stays put and says "N new above"; home shows them.
- The feed holds a bounded window over SQLite, and the footer does not keep the keys of
  every rebuild alive (the leak behind 32 KB per arrival). bench/tui_memory.py measures
  RSS over 50,000 arrivals.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faces.test_tui import cell_text, message, wait_until
from tests.support.tui_fake import bare_config, record_arrivals
from switchover.tui.app import SwitchoverApp
from switchover.tui.feed import PAGE

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def switchover(cfg: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``switchover ARGV`` in its own process (as a headless watch or a CLI user runs it)."""
    env = {k: v for k, v in os.environ.items() if k != "SWITCHOVER_CONFIG"}
    r = subprocess.run([sys.executable, "-m", "switchover", "--config", str(cfg), *argv],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r


def said(pane) -> str:
    return str(pane.query_one(".pane-message").render())


def top_id(feed) -> int | None:
    """The arrival in the top row on screen (not the table's first row)."""
    table = feed.table
    if not table.row_count:
        return None
    row = min(round(table.scroll_y), table.row_count - 1)
    return int(table.coordinate_to_cell_key((row, 0)).row_key.value)


async def test_a_headless_watch_in_another_process_reaches_the_open_dashboard(
        mailserver, old_user, config_path: Path) -> None:
    app = SwitchoverApp(config=config_path, start_background=False, initial_tab="feed")
    async with app.run_test(size=(100, 30)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        feed = app.pane("feed")
        # the watch's first run sets where it starts; then mail comes and it records it
        await asyncio.to_thread(switchover, config_path, "watch", "--once")
        for i in range(3):
            await asyncio.to_thread(mailserver.deliver, old_user,
                                    message(i, f"buyer{i}@customer.example", old_user.address,
                                            f"Order {i}"), f"buyer{i}@customer.example")
        r = await asyncio.to_thread(switchover, config_path, "watch", "--once")
        assert r.returncode == 0, r.stdout + r.stderr
        recorded = time.monotonic()
        await wait_until(pilot, lambda: len(feed.order) == 3, timeout=5,
                         what=lambda: f"3 arrivals in the feed, got {feed.order} ({r.stdout})")
        assert time.monotonic() - recorded < 3.0
        assert cell_text(feed.table, str(feed.order[0]), "subject") == "Order 2"
        # one source for both: the header and the status line say the same
        await wait_until(pilot, lambda: app.status.unhandled == 3, timeout=3, what="status count")
        assert "3 unhandled" in said(feed) and "3 in all" in said(feed)
        assert app.counts["unhandled"] == app.status.unhandled == 3

        # a CLI tick in another process shows in the checklist too
        await asyncio.to_thread(switchover, config_path, "checklist", "tick", "approval")
        checklist = app.pane("checklist")
        await pilot.press("1")
        await wait_until(pilot, lambda: checklist.items["approval"].state == "done", timeout=4,
                         what="the tick from the other process")
        assert cell_text(checklist.table, "approval", "mark") == "[x]"


async def test_a_burst_is_followed_from_the_newest_row_and_counted_from_elsewhere(tmp_path: Path) -> None:
    app = SwitchoverApp(config=bare_config(tmp_path), start_background=False, initial_tab="feed")
    async with app.run_test(size=(100, 30)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        feed = app.pane("feed")
        engine = app.engine
        uid = 1
        # 1,500 in the issue; here 300 in quick batches, as the monitor records them
        for _ in range(10):
            ids = await record_arrivals(engine.store, uid, 30, publish=engine.publish)
            uid += 30
            await pilot.pause(0.05)
        newest = ids[-1]
        # the window and the feed's own count have both caught up (a load that read the
        # count before the last batch landed would count that batch as new above later)
        await wait_until(pilot, lambda: top_id(feed) == newest and "300 in all" in said(feed)
                         and feed.total == 300,
                         timeout=5, what=lambda: f"top row {top_id(feed)} == newest {newest}, "
                                                 f"feed total {feed.total}")
        assert feed.selected_id() == newest
        assert "new above" not in said(feed) and len(feed.order) <= PAGE

        # away from the newest row the view stays put and says what came above
        await pilot.press("j", "j", "j")
        chosen = feed.selected_id()
        await record_arrivals(engine.store, uid, 41, publish=engine.publish)
        uid += 41
        await wait_until(pilot, lambda: "41 new above" in said(feed), timeout=5,
                         what=lambda: f"'41 new above' in {said(feed)!r}")
        assert feed.selected_id() == chosen
        assert top_id(feed) == newest                       # the rows on screen did not move
        assert f"{app.status.unhandled} unhandled" in said(feed)

        # home shows them, and the feed follows again
        await pilot.press("home")
        await wait_until(pilot, lambda: top_id(feed) == newest + 41 and feed.selected_id() == newest + 41,
                         timeout=5, what="home shows the newest")
        assert "new above" not in said(feed)
        await record_arrivals(engine.store, uid, 5, publish=engine.publish)
        await wait_until(pilot, lambda: feed.selected_id() == newest + 46, timeout=5,
                         what="following the newest after home")


async def test_arrivals_written_by_another_connection_move_the_window_too(tmp_path: Path) -> None:
    """No event at all (another process wrote): the data_version poll finds them, and a
    cursor away from the top still keeps its rows and counts what came."""
    from switchover.core.store import Store

    app = SwitchoverApp(config=bare_config(tmp_path), start_background=False, initial_tab="feed")
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        feed = app.pane("feed")
        other = await Store.open(app.engine.config.state)
        try:
            await record_arrivals(other, 1, 20)
            await wait_until(pilot, lambda: len(feed.order) == 20, timeout=4, what="20 rows")
            await pilot.press("j")
            chosen = feed.selected_id()
            await record_arrivals(other, 21, 7)
            await wait_until(pilot, lambda: "7 new above" in said(feed), timeout=4,
                             what=lambda: said(feed))
            assert feed.selected_id() == chosen
        finally:
            await other.close()


async def test_the_window_moves_past_its_edges(tmp_path: Path) -> None:
    app = SwitchoverApp(config=bare_config(tmp_path), start_background=False, initial_tab="feed")
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        feed = app.pane("feed")
        ids = await record_arrivals(app.engine.store, 1, 260, publish=app.engine.publish)
        await wait_until(pilot, lambda: "260 in all" in said(feed) and top_id(feed) == ids[-1],
                         timeout=5, what="260 arrivals")
        rows = feed.table.row_count
        assert rows <= PAGE < 260                           # a window, not every arrival
        feed.table.move_cursor(row=rows - 1)
        await pilot.pause()
        assert feed.selected_id() == ids[-rows]
        await pilot.press("j")                              # past the window's last row
        await wait_until(pilot, lambda: feed.selected_id() == ids[-rows - 1], timeout=5,
                         what="the next older arrival")
        assert feed.table.row_count <= PAGE
        await pilot.press("end")
        await wait_until(pilot, lambda: feed.selected_id() == ids[0], timeout=5, what="the oldest")
        await pilot.press("home")
        await wait_until(pilot, lambda: feed.selected_id() == ids[-1] and feed.window_start == 0,
                         timeout=5, what="the newest again")


async def test_the_footer_does_not_keep_old_keys_alive(tmp_path: Path) -> None:
    """Textual's Footer data-binds each key it builds and forgets them only when its
    `compact` changes: every rebuild used to stay in memory (issue 10.3)."""
    from switchover.tui.footer import BoundedFooter

    app = SwitchoverApp(config=bare_config(tmp_path), start_background=False, initial_tab="feed")
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        footer = app.query_one(BoundedFooter)
        before = footer.rebuilds
        for batch in range(20):
            await record_arrivals(app.engine.store, 1 + batch * 10, 10, publish=app.engine.publish)
            await pilot.pause(0.25)
        # keys whose state changed rebuild it; a flood of arrivals does not
        assert footer.rebuilds - before < 10
        for _ in range(15):                                 # rebuilds that change something
            await pilot.press("2")
            await pilot.pause(0.05)
            await pilot.press("3")
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        assert footer.rebuilds - before >= 10               # those did rebuild it
        # Textual's own record of the keys bound to `compact` (read by BoundedFooter too)
        watchers = getattr(footer, "__watchers")["compact"]
        assert len(watchers) <= len(footer.children) + 2, (len(watchers), len(footer.children))
