"""The migration pane says what happened (issue 10.4, 10.5), against Dovecot:

- pause: "Pausing — finishing the batch in flight" until the engine has stopped sending,
  then "Paused"; cancel: "Cancelled", unfinished folders "cancelled" with their true
  counts, never "N errors";
- a complete migration run by the CLI in another process shows in the open dashboard
  (and after a restart) as finished — never "stopped before the end";
- a full new mailbox is one headline, not a line per message; an error's cause is shown
  whole.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from switchover.core.events import LogLine
from tests.support.proxy import Proxy
from tests.support.servers import write_config
from tests.faces.test_tui import message, wait_until
from tests.faces.test_tui_live import said, switchover
from switchover.tui.app import SwitchoverApp

pytestmark = pytest.mark.timeout(120)


def log_text(app: SwitchoverApp) -> str:
    return "\n".join(line.text for line in app.query_one("#mig-log").lines)


def squeezed(text: str) -> str:
    """Text without whitespace: a wrapped line still contains what it wraps."""
    return "".join(text.split())


async def test_pause_says_pausing_until_the_batch_ends_and_cancel_is_not_an_error(
        tmp_path: Path, mailserver, old_user, new_user) -> None:
    mailserver.append_many(old_user, "INBOX",
                           [message(i, f"c{i}@customer.example", old_user.address) for i in range(300)])
    # a slow link: the run lasts long enough to pause and cancel it by key
    with Proxy(mailserver.host, mailserver.imap_port, delay=0.003, rate=300_000) as proxy:
        via = {"imap": {"host": proxy.host, "port": proxy.port, "security": "none"}}
        cfg = write_config(tmp_path, old_user=old_user, new_user=new_user, server=mailserver,
                           old=via, new=via, migration={"batch_messages": 5})
        app = SwitchoverApp(config=cfg, start_background=False, initial_tab="migration")
        async with app.run_test(size=(120, 40)) as pilot:
            await asyncio.wait_for(app.ready.wait(), 20)
            pane = app.pane("migration")
            await pilot.press("s")
            await wait_until(pilot, lambda: "INBOX" in pane.rows and pane.rows["INBOX"].done_messages >= 10,
                             timeout=40, what="copying")
            history: list[str] = []
            say = pane.say
            pane.say = lambda text, **kw: (history.append(text), say(text, **kw))  # type: ignore[method-assign]
            await pilot.press("space")
            await wait_until(pilot, lambda: said(pane).startswith("Paused — nothing more is copied"),
                             timeout=20, what=lambda: said(pane))
            # said at once, before the engine had stopped sending: the batch in flight ends first
            assert history[0].startswith("Pausing — finishing the batch in flight"), history
            assert "paused" in str(app.query_one("#mig-summary").render())
            await pilot.press("space")                       # resume
            await wait_until(pilot, lambda: said(pane).startswith("Migrating"), timeout=10,
                             what="resumed")
            await pilot.press("c")
            await pilot.press("y")
            await wait_until(pilot, lambda: pane.busy == "" and pane.rendered["INBOX"][6] != "copying",
                             timeout=40, what=lambda: f"cancelled: {pane.rendered['INBOX']}")
            text = said(pane)
            assert text.startswith("Cancelled — "), text
            assert "error" not in text
            row = pane.rendered["INBOX"]
            done, total = (int(n.replace(",", "")) for n in row[1].split("/"))
            assert row[6] == "cancelled" and 0 < done < total == 300, row
            assert "error" not in " ".join(row)
            assert "cancelled" in str(app.query_one("#mig-summary").render())


async def test_a_complete_cli_migration_reads_finished_live_and_after_a_restart(
        mailserver, old_user, new_user, config_path: Path) -> None:
    mailserver.append_many(old_user, "INBOX",
                           [message(i, f"c{i}@customer.example", old_user.address) for i in range(12)])
    mailserver.append_many(old_user, "Projects/2024",
                           [message(i, f"p{i}@customer.example", old_user.address) for i in range(5)])
    app = SwitchoverApp(config=config_path, start_background=False, initial_tab="migration")
    async with app.run_test(size=(120, 40)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        pane = app.pane("migration")
        r = await asyncio.to_thread(switchover, config_path, "migrate")
        assert r.returncode == 0, r.stdout + r.stderr
        await wait_until(pilot, lambda: "The last migration finished" in said(pane), timeout=5,
                         what=lambda: f"'finished' in {said(pane)!r}")
        assert "stopped before the end" not in said(pane)
        assert pane.rendered["INBOX"][1] == "12/12"

    app = SwitchoverApp(config=config_path, start_background=False, initial_tab="migration")
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        pane = app.pane("migration")
        await wait_until(pilot, lambda: "finished" in said(pane), timeout=5, what=lambda: said(pane))
        assert "stopped before the end" not in said(pane)
        assert "stopped" not in str(app.query_one("#mig-summary").render())


async def test_a_full_mailbox_is_one_headline_and_causes_are_shown_whole(
        tmp_path: Path, mailserver, old_user) -> None:
    mailserver.require("quota")
    full = mailserver.add_user("full", quota_kb=40)
    mailserver.append_many(old_user, "INBOX",
                           [message(i, f"c{i}@customer.example", old_user.address) for i in range(60)])
    cfg = write_config(tmp_path, old_user=old_user, new_user=full, server=mailserver)
    app = SwitchoverApp(config=cfg, start_background=False, initial_tab="migration")
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        pane = app.pane("migration")
        await pilot.press("s")
        await wait_until(pilot, lambda: pane.busy == "" and "Migration finished" in said(pane),
                         timeout=60, what=lambda: said(pane))
        text = said(pane)
        assert "the new mailbox is full" in text and "messages not copied" in text, text

        assert "(l shows the log)" in text                  # 80 columns: the log is hidden
        await pilot.pause(0.5)
        assert said(pane) == text                           # the headline stays

        # a cause at the end of a long line is kept whole: the log wraps, never cuts
        cause = "the server said: [OVERQUOTA] Quota exceeded (mailbox for user is full)"
        app.engine.publish(LogLine("error", "Archive/2019 → 历史邮件-2025年前/Archive/2019: "
                                            "the copy stopped after 1,204 of 1,350 messages; " + cause))
        await pilot.press("l")
        await wait_until(pilot, lambda: squeezed(cause) in squeezed(log_text(app)), timeout=5,
                         what="the log line")
