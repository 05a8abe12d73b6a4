"""Acting on arrivals and on logins from the dashboard (issue 10.6–10.8), with the real
engine against Dovecot and aiosmtpd:

- ``r`` on a list / automated sender shows the warning and the reminder exactly as it
  would go, and sends nothing without a ``y``; ``m`` shows any reminder first;
- a send in doubt says so in the feed, and ``d`` settles it (it arrived / send again);
- a mistyped password is typed again with ``P`` and the watch reconnects at once; the
  prompt names an unset ``password_env``; a failed dashboard login leaves a proof that
  ``switchover check`` recorded; ``e`` says what it found.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest
import yaml

from switchover.core.events import ActionChanged
from tests.support.servers import write_config
from tests.faces.test_tui import cell_text, message, notifications, wait_until
from tests.support.pilot import screen_text
from tests.faces.test_tui_live import ROOT, said
from tests.support.tui_fake import bare_config, record_arrivals
from switchover.tui.app import SwitchoverApp
from switchover.tui.prompts import ConfirmScreen, DoubtScreen, SecretPrompt

pytestmark = pytest.mark.timeout(120)


def list_mail(to: str) -> bytes:
    m = EmailMessage()
    m["From"] = "Trade Digest <digest@lists.b2b.example>"
    m["To"] = to
    m["Subject"] = "Your weekly buyer digest"
    m["Date"] = formatdate(localtime=True)
    m["Message-ID"] = make_msgid(domain="lists.b2b.example")
    m["List-Unsubscribe"] = "<mailto:leave@lists.b2b.example>"
    m["Precedence"] = "bulk"
    m.set_content("Top buyer requests this week ...")
    return m.as_bytes()


def row_of(feed, subject: str) -> int:
    for row, arrival_id in enumerate(feed.order):
        if feed.arrivals[arrival_id].subject == subject:
            return row
    raise AssertionError(f"no row with subject {subject!r}")


@pytest.fixture
def fast_config(tmp_path: Path, mailserver, old_user, new_user, smtp_server) -> Path:
    return write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                        server=mailserver, smtp=smtp_server,
                        transition={"undo_seconds": 1.0, "poll_seconds": 1.0})


async def test_remind_a_list_sender_warns_shows_the_reminder_and_needs_a_yes(
        mailserver, old_user, smtp_server, fast_config: Path) -> None:
    app = SwitchoverApp(config=fast_config, initial_tab="feed")
    async with app.run_test(size=(100, 30)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        feed = app.pane("feed")
        engine = app.engine
        await wait_until(pilot, lambda: app.status.connections["old"] == "connected",
                         timeout=20, what="monitor connected")
        await asyncio.to_thread(mailserver.deliver, old_user, list_mail(old_user.address),
                                "digest@lists.b2b.example")
        await asyncio.to_thread(mailserver.deliver, old_user,
                                message(1, "ana@customer.example", old_user.address, "Pedido de amostras"),
                                "ana@customer.example")
        await wait_until(pilot, lambda: len(feed.order) == 2, timeout=20, what="two arrivals")

        # the list: r warns and shows the reminder; n sends nothing
        feed.table.move_cursor(row=row_of(feed, "Your weekly buyer digest"))
        await pilot.pause()
        listed = feed.selected_id()
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the warning")
        warning = str(app.screen.query_one("#confirm-warning").render())
        assert "list or an automated sender" in warning or "robot" in warning, warning
        preview = await engine.actions.preview(listed, "remind")
        body = str(app.screen.query_one("#confirm-body").render())
        for line in (f"To: {preview.to}", f"Subject: {preview.subject}", f"Language: {preview.language}"):
            assert line in body
        assert preview.text.strip().splitlines()[0] in body
        await pilot.press("n")
        await pilot.pause(0.3)
        assert await engine.actions.for_arrival(listed) == []
        assert "No reminder sent" in said(feed)

        # y sends it (after the undo window): confirmed by the person
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the warning again")
        await pilot.press("y")
        await wait_until(pilot, lambda: "reminded" in cell_text(feed.table, str(listed), "action"),
                         timeout=30, what="reminded")
        sent = await asyncio.to_thread(smtp_server.wait_for, 1)
        assert any("digest@lists.b2b.example" in rcpts for _, rcpts, _ in sent)

        # a person: m shows the reminder first (escape: nothing), r goes straight to the undo window
        feed.table.move_cursor(row=row_of(feed, "Pedido de amostras"))
        await pilot.pause()
        person = feed.selected_id()
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the preview")
        assert not app.screen.query("#confirm-warning")
        expected = await engine.actions.preview(person, "remind")
        assert f"To: {expected.to}" in str(app.screen.query_one("#confirm-body").render())
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert await engine.actions.for_arrival(person) == []
        await pilot.press("r")
        await wait_until(pilot, lambda: "remind in" in cell_text(feed.table, str(person), "action"),
                         timeout=5, what="the undo countdown")
        assert not isinstance(app.screen, ConfirmScreen)


async def test_a_send_in_doubt_is_shown_and_settled_by_the_person(tmp_path: Path) -> None:
    app = SwitchoverApp(config=bare_config(tmp_path), start_background=False, initial_tab="feed")
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        feed = app.pane("feed")
        engine = app.engine
        first, second = await record_arrivals(engine.store, 1, 2, publish=engine.publish)
        await wait_until(pilot, lambda: len(feed.order) == 2, timeout=5, what="two arrivals")
        doubtful = []
        for arrival_id in (first, second):
            action_id = await engine.actions.request(arrival_id, "remind", delay=3600)
            # what the runner records when the server took DATA but its answer never came
            await engine.store.run("UPDATE actions SET state='doubt', outcome=? WHERE id=?",
                                   ("no answer to the end of DATA after 600 s", action_id))
            engine.publish(ActionChanged(action_id, arrival_id, "remind", "doubt",
                                         "no answer to the end of DATA"))
            doubtful.append(action_id)
        await wait_until(pilot, lambda: cell_text(feed.table, str(second), "action") == "remind in doubt",
                         timeout=5, what="the doubt in the row")
        assert feed.selected_id() == second
        await wait_until(pilot, lambda: "in doubt — did it arrive? d decides" in said(feed),
                         timeout=5, what="the message line")
        assert feed.check_action("doubt", ()) is True

        # it arrived: marked delivered, nothing sent
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, DoubtScreen), what="the question")
        assert "buyer2@customer2.example" in screen_text(app)
        await pilot.press("y")
        await wait_until(pilot, lambda: cell_text(feed.table, str(second), "action") == "reminded",
                         timeout=5, what="marked delivered")
        assert (await engine.actions.get(doubtful[1])).state == "done"

        # it did not: sent again (a new attempt, the old one recorded as not delivered)
        await pilot.press("j")
        assert feed.selected_id() == first
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, DoubtScreen), what="the question")
        await pilot.press("s")
        await wait_until(pilot, lambda: "doubt" not in cell_text(feed.table, str(first), "action"),
                         timeout=5, what="settled")
        rows = await engine.actions.for_arrival(first)
        assert [r.state for r in rows] == ["failed", "pending"]


async def test_a_mistyped_password_is_typed_again_and_a_checked_proof_stands(
        tmp_path: Path, mailserver, old_user, new_user, smtp_server, monkeypatch) -> None:
    var = "SWITCHOVER_TEST_OLD_PASSWORD"
    monkeypatch.delenv(var, raising=False)
    path = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                        server=mailserver, smtp=smtp_server, transition={"poll_seconds": 1.0})
    data = yaml.safe_load(path.read_text())
    del data["old"]["password"]
    data["old"]["password_env"] = var
    path.write_text(yaml.safe_dump(data, allow_unicode=True))

    # `switchover check` proves the login (the variable set for that command only)
    env = {**{k: v for k, v in os.environ.items() if k != "SWITCHOVER_CONFIG"}, var: old_user.password}
    r = subprocess.run([sys.executable, "-m", "switchover", "--config", str(path), "check"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr

    app = SwitchoverApp(config=path)
    async with app.run_test(size=(100, 30)) as pilot:
        # the prompt names the unset variable
        await wait_until(pilot, lambda: isinstance(app.screen, SecretPrompt), what="the prompt")
        assert f"${var}" in screen_text(app)
        await pilot.press(*"wrong-password", "enter")
        await asyncio.wait_for(app.ready.wait(), 20)
        await wait_until(pilot, lambda: app.status.connections["old"] == "auth failed", timeout=20,
                         what="the refused login")
        await wait_until(pilot, lambda: any("P types the password again" in n for n in notifications(app)),
                         timeout=5, what="the offer")
        assert app.check_action("password", ()) is True

        # the dashboard's failed login leaves the proof of `switchover check` standing
        await wait_until(pilot, lambda: "last attempt" in app.pane("checklist").items["login_old"].evidence,
                         timeout=20, what="the failure noted")
        item = await app.engine.checklist.item("login_old")
        assert item.state == "done" and item.by == "engine" and "failed" in item.evidence

        # type it again: the watch reconnects at once (no restart)
        await pilot.press("P")
        await wait_until(pilot, lambda: isinstance(app.screen, SecretPrompt), what="the prompt again")
        assert f"${var}" in screen_text(app)
        await pilot.press(*old_user.password, "enter")
        await wait_until(pilot, lambda: app.status.connections["old"] == "connected", timeout=15,
                         what=lambda: f"connected, is {app.status.connections['old']}")
        assert app.check_action("password", ()) is False
        await wait_until(pilot, lambda: "last attempt" not in app.pane("checklist").items["login_old"].evidence,
                         timeout=20, what="proved again")

        # e says what it found
        await pilot.press("1", "e")
        await wait_until(pilot, lambda: any("Old mailbox login works" in n for n in notifications(app)),
                         timeout=30, what="the re-check's findings")
        found = next(n for n in notifications(app) if "Old mailbox login works" in n)
        assert "ok · Old mailbox login works" in found and "ok · New mailbox login works" in found
        assert "Re-checked" in said(app.pane("checklist"))
