"""Pilot tests of the dashboard's keyboard flows against the real engine and real servers
(tests/support/servers.py): tick a checklist item, plan and run a migration and watch its rows,
act on an arrival in the feed (forward, undo, forward again, remind).
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest

from tests.support.servers import write_config
from switchover.tui.app import SwitchoverApp
from tests.support.pilot import wait_until

pytestmark = pytest.mark.timeout(120)


def message(i: int, sender: str, to: str, subject: str | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = f"Customer {i} <{sender}>"
    m["To"] = to
    m["Subject"] = subject or f"Quote request {i}"
    m["Date"] = formatdate(localtime=True)
    m["Message-ID"] = make_msgid(domain="customer.example")
    m.set_content(f"Hello, please send the price list #{i}.\n\nRegards\n" + "x" * (i * 50))
    return m.as_bytes()


def cell_text(table, row_key: str, col: str) -> str:
    value = table.get_cell(row_key, col)
    return getattr(value, "plain", str(value))


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_no_config_says_run_init(tmp_path: Path) -> None:
    app = SwitchoverApp(config=tmp_path / "nothing.yaml")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "switchover init" in text
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_tick_note_and_provable_item(config_path: Path) -> None:
    app = SwitchoverApp(config=config_path, start_background=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        pane = app.pane("checklist")
        table = pane.table
        assert pane.selected_item().key == "request"      # first item under phase 1
        await pilot.press("space")
        await wait_until(pilot, lambda: cell_text(table, "request", "mark") == "[x]", what="tick")
        items = {i.key: i for i in await app.engine.checklist.items()}
        assert items["request"].state == "done" and items["request"].by == "person"

        # a note, typed into the prompt, persisted
        await pilot.press("n")
        await pilot.press(*"ask IT")
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.items["request"].note == "ask IT", what="note")

        # a provable item cannot be ticked by hand: the engine's sentence is shown
        await pilot.press("j", "j", "j")
        assert pane.selected_item().key == "login_old"
        await pilot.press("space")
        await wait_until(pilot, lambda: any("cannot be ticked" in n for n in notifications(app)),
                         what="refusal notification")
        assert cell_text(table, "login_old", "mark") == "[ ]"

        # untick with space again
        await pilot.press("k", "k", "k", "space")
        await wait_until(pilot, lambda: cell_text(table, "request", "mark") == "[ ]", what="untick")


async def test_migration_plan_start_rows_update(mailserver, old_user, new_user, config_path: Path) -> None:
    msgs = [message(i, f"c{i}@customer.example", old_user.address) for i in range(30)]
    mailserver.append_many(old_user, "INBOX", msgs[:18])
    mailserver.append_many(old_user, "Quotes", msgs[18:])
    app = SwitchoverApp(config=config_path, start_background=False, initial_tab="migration")
    async with app.run_test(size=(120, 40)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        pane = app.pane("migration")
        await pilot.press("p")
        await wait_until(pilot, lambda: "Quotes" in pane.rendered and "INBOX" in pane.rendered,
                         what="planned rows")
        assert pane.rendered["INBOX"][1] == "0/18"
        assert "planned" in pane.rendered["Quotes"][6]

        seen: set[tuple[str, ...]] = set()
        await pilot.press("s")

        def finished() -> bool:
            seen.update(tuple(v) for v in pane.rendered.values())
            return (pane.busy == "" and pane.rendered["INBOX"][1] == "18/18"
                    and pane.rendered["Quotes"][1] == "12/12")

        await wait_until(pilot, finished, timeout=60,
                         what=lambda: f"migration done: {pane.rendered} {pane.busy!r} "
                                      f"{pane.query_one('.pane-message').render()}")
        assert "done" in pane.rendered["INBOX"][6] or "verified" in pane.rendered["INBOX"][6]
        assert len(seen) >= 4            # rows went through several states on screen
        table = pane.table
        assert cell_text(table, "INBOX", "msgs") == "18/18"
        bar = app.query_one("#mig-progress")
        assert bar.progress == bar.total == 30

        # verify from the keyboard
        await pilot.press("v")
        await wait_until(pilot, lambda: "Verified" in str(pane.query_one(".pane-message").render())
                         or "differences" in str(pane.query_one(".pane-message").render()),
                         timeout=30, what="verify")
        assert "Verified" in str(pane.query_one(".pane-message").render())

        # back up from the keyboard: the prompt offers a directory next to the state file
        await pilot.press("b")
        prompt_input = app.screen.query_one("Input")
        assert prompt_input.value.startswith(str(config_path.parent))
        await pilot.press("enter")
        await wait_until(pilot, lambda: "Backup in" in str(pane.query_one(".pane-message").render())
                         and pane.busy == "", timeout=40, what="backup")
        assert "verified." in str(pane.query_one(".pane-message").render())
        backup_dir = Path(prompt_input.value)
        assert any(backup_dir.rglob("*.mbox")) or any(backup_dir.rglob("*.eml"))

    c = mailserver.client(new_user)
    try:
        c.select_folder("INBOX", readonly=True)
        assert len(c.search("ALL")) == 18
    finally:
        c.logout()


@pytest.fixture
def fast_config(tmp_path: Path, mailserver, old_user, new_user, smtp_server) -> Path:
    return write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                        server=mailserver, smtp=smtp_server,
                        transition={"undo_seconds": 2.0, "poll_seconds": 1.0})


async def test_feed_forward_undo_forward_remind(mailserver, old_user, new_user, smtp_server,
                                               fast_config: Path) -> None:
    app = SwitchoverApp(config=fast_config, initial_tab="feed")
    async with app.run_test(size=(120, 40)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        pane = app.pane("feed")
        # the monitor's first start begins the feed at UIDNEXT: deliver after it is watching
        await wait_until(pilot, lambda: app.status.connections["old"] == "connected",
                         timeout=20, what="monitor connected")
        await asyncio.to_thread(mailserver.deliver, old_user,
                                message(1, "maria@customer.example", old_user.address,
                                        "Pedido de muestras"),
                                "maria@customer.example")
        await wait_until(pilot, lambda: len(pane.order) == 1, timeout=20, what="arrival in feed")
        arrival_id = pane.order[0]
        key = str(arrival_id)
        table = pane.table
        assert cell_text(table, key, "subject") == "Pedido de muestras"
        assert app.status.unhandled == 1

        # forward, then undo inside the window: nothing is appended
        await pilot.press("f")
        await wait_until(pilot, lambda: "forward in" in cell_text(table, key, "action"),
                         what="undo countdown")
        await pilot.press("u")
        await wait_until(pilot, lambda: not pane.pending, what="undo")
        rows = await app.engine.actions.for_arrival(arrival_id)
        assert [r.state for r in rows] == ["cancelled"]
        assert "forward" not in cell_text(table, key, "action")

        # forward again and let it happen
        await pilot.press("f")
        await wait_until(pilot, lambda: cell_text(table, key, "action") == "forwarded",
                         timeout=30, what="forwarded")

        # remind the sender: a real reply leaves through SMTP
        await pilot.press("r")
        await wait_until(pilot, lambda: "reminded" in cell_text(table, key, "action"),
                         timeout=30, what="reminded")
        sent = await asyncio.to_thread(smtp_server.wait_for, 1)
        assert any("maria@customer.example" in rcpts for _, rcpts, _ in sent)

        # the preview shows the message text
        preview = str(app.query_one("#feed-preview").render())
        assert "price list #1" in preview

    c = mailserver.client(new_user)
    try:
        c.select_folder("INBOX", readonly=True)
        assert len(c.search("ALL")) == 1
    finally:
        c.logout()


async def test_masked_prompt_for_a_missing_password(tmp_path: Path, mailserver, old_user,
                                                   new_user, smtp_server, monkeypatch) -> None:
    monkeypatch.delenv("SWITCHOVER_TEST_UNSET", raising=False)
    path = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                        server=mailserver, smtp=smtp_server)
    # the old side names an environment variable that is not set: the app must ask
    import yaml
    data = yaml.safe_load(path.read_text())
    del data["old"]["password"]
    data["old"]["password_env"] = "SWITCHOVER_TEST_UNSET"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    app = SwitchoverApp(config=path, start_background=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.__class__.__name__ == "SecretPrompt"
                         and bool(app.screen.query("Input")), what="secret prompt")
        field = app.screen.query_one("Input")
        assert field.password is True
        await pilot.press(*old_user.password, "enter")
        await asyncio.wait_for(app.ready.wait(), 20)
        assert app.engine.needs_secret("old") is False
        assert app.engine.account("old").secret() == old_user.password
        # the typed secret reaches nothing persistent
        db = (tmp_path / "switchover.sqlite")
        if db.exists():
            assert old_user.password.encode() not in db.read_bytes()


async def test_help_palette_and_vim_keys_offline() -> None:
    """UI-only wiring (no server involved): F1 lists the focused pane's keys, the command
    palette offers the main actions, j/k move like the arrows, 1-4 switch panes."""
    from tests.support.tui_fake import FakeEngine, clock
    from switchover.tui.help import HelpScreen

    app = SwitchoverApp(FakeEngine(), clock=clock, start_background=False, initial_tab="feed")
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 10)
        feed = app.pane("feed")
        first = feed.selected_id()
        await pilot.press("j")
        assert feed.selected_id() != first
        await pilot.press("k")
        assert feed.selected_id() == first

        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        for words in ("Forward", "Remind", "Handled", "Undo", "Quit"):
            assert words in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Migration: plan (dry run)", "Migration: start", "Migration: verify",
                      "Back up the old mailbox", "Feed: forward selected", "Feed: undo"):
            assert title in titles

        await pilot.press("2")
        assert app.tabs.active == "migration"
        await pilot.press("4")
        assert app.tabs.active == "people"
        await pilot.press("question_mark")
        assert "People" in str(app.screen.query_one("#help-text").render())


def test_event_pump_coalesces_a_flood() -> None:
    """A copy publishing thousands of ticks reaches the screen as one value per folder."""
    from switchover.core.events import FolderProgress, LogLine
    from switchover.tui.pump import EventPump

    pump = EventPump()
    for i in range(5000):
        pump.push(FolderProgress("migrate", "INBOX", "INBOX", "copying", 5000, 0, done_messages=i + 1))
        if i % 1000 == 0:
            pump.push(LogLine("info", f"line {i}"))
    pump.push(FolderProgress("migrate", "Sent", "Sent", "copying", 10, 0, done_messages=3))
    events = pump.drain()
    ticks = [e for e in events if isinstance(e, FolderProgress)]
    assert [(t.source, t.done_messages) for t in ticks] == [("INBOX", 5000), ("Sent", 3)]
    assert len([e for e in events if isinstance(e, LogLine)]) == 5
    assert pump.drain() == []


async def test_no_color_cursor_and_plain_words(monkeypatch) -> None:
    """With NO_COLOR the cursor row is black on white (greys, not colours) and bold, and
    colour-only styles (a red 'bounce') fall back to plain attributes."""
    from rich.color import Color
    from textual.widgets import DataTable

    from tests.support.tui_fake import FakeEngine, clock
    from switchover.tui.base import plain_style

    monkeypatch.setenv("NO_COLOR", "1")
    app = SwitchoverApp(FakeEngine(), clock=clock, start_background=False, initial_tab="feed")
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 10)
        await pilot.pause()
        assert app.no_color
        table = app.query_one("#feed-table", DataTable)
        cursor = table.get_component_rich_style("datatable--cursor")
        assert cursor.bold
        assert cursor.bgcolor is not None and cursor.color is not None
        assert cursor.bgcolor.get_truecolor() == Color.parse("#ffffff").get_truecolor()
        assert plain_style(app, "bold red") == "bold"
        assert plain_style(app, "green") == ""


async def test_migration_pane_words_offline() -> None:
    """No '0 Bytes', no dataclass repr (a verification logs its own lines, as the CLI
    prints them), and another job's progress (the history scan) never replaces the
    migration's summary line; the log can be shown at 80 columns."""
    from switchover.core.events import JobProgress
    from switchover.core.progress import fmt_bytes
    from tests.support.tui_fake import FakeEngine, clock

    # the one way both faces write sizes: whole bytes below 1,000, never humanize's 'Bytes'
    assert fmt_bytes(0) == "0 B" and fmt_bytes(999) == "999 B" and fmt_bytes(3_900_000) == "3.9 MB"

    app = SwitchoverApp(FakeEngine(), clock=clock, start_background=False, initial_tab="migration")
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 10)
        await app.workers.wait_for_complete()
        pane = app.pane("migration")
        summary = app.query_one("#mig-summary")
        before = str(summary.render())
        assert "Bytes" not in before and " GB of " in before
        app.pump.push(JobProgress(job="scan", state="done", total_messages=2948,
                                  total_bytes=0, done_messages=2948, done_bytes=0))
        await pilot.pause(0.5)
        after = str(summary.render())
        assert after == before and "scan" not in after
        log = app.query_one("#mig-log")
        assert not log.display  # narrow: hidden until asked for
        await pilot.press("l")
        assert log.display
        # the fake migration is running: cancel is offered, plan/start leave the footer
        assert pane.check_action("cancel", ()) is True
        assert pane.check_action("plan", ()) is False

        # a verification that found a difference: the report's own lines in the log
        await pane._verify()
        logged = "\n".join(line.text for line in log.lines)
        assert "MISSING" in logged and "INBOX → INBOX: 670 / 669, 1 missing" in logged, logged
        assert "result: NOT OK, messages are missing" in logged
        assert "FolderVerify" not in logged and "Mismatch" not in logged
        assert "differences in 1 of 1 folders" in str(pane.query_one(".pane-message").render())
