"""The campaign screen (Pilot, real engine on Dovecot + aiosmtpd, the people given by a
stand-in): C opens it from any pane, the people wait "not queued" with a preview of the
selected person's exact text, s asks (naming how many and the pace) then sends each
person one message, p without a campaign says so, d settles a notice in doubt, and
the palette offers the screen."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from switchover.tui.app import SwitchoverApp
from switchover.tui.commands import palette_commands
from switchover.tui.notices import Ask, NoticesScreen
from tests.notify.campaign_support import StandIn, engine_with, person, sent_to
from tests.support.pilot import wait_until

pytestmark = pytest.mark.timeout(90)


def plain(widget: Any) -> str:
    return getattr(widget.render(), "plain", str(widget.render()))


async def test_campaign_screen_previews_asks_and_sends(make_engine, mailserver, old_user, new_user,
                                                       smtp_server) -> None:
    people = StandIn(notice=[person("ana@example.net", "es", name="Ana Ruiz"), person("li@example.net", "zh"),
                             person("bob@example.net")])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people)
    eng.notices.clock, eng.notices.sleep = time.time, asyncio.sleep        # the screen runs on real time
    app = SwitchoverApp(eng, start_background=False)
    async with app.run_test(size=(140, 40)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        await pilot.press("C")
        await wait_until(pilot, lambda: isinstance(app.screen, NoticesScreen) and len(app.screen.rows) == 3)
        screen = app.screen
        assert [r[2] for r in screen.rows] == ["not queued"] * 3
        await wait_until(pilot, lambda: "To: Ana Ruiz <ana@example.net>" in plain(screen.query_one("#notices-preview")))
        assert "Reply-To:" in plain(screen.query_one("#notices-preview"))

        await pilot.press("p")
        assert screen.message == "No campaign is running."

        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, Ask))
        body = plain(app.screen.query_one("#ask-body"))
        assert "to 3 people, one message each" in body and "an hour" in body
        await pilot.press("y")
        await wait_until(pilot, lambda: smtp_server.taken == 3 and "sent 3" in screen.message)
        await wait_until(pilot, lambda: [r[2] for r in screen.rows] == ["sent"] * 3)
        assert "notice" in plain(screen.query_one("#notices-counts"))
        for addr in ("ana@example.net", "li@example.net", "bob@example.net"):
            assert len(sent_to(smtp_server, addr)) == 1
        await pilot.press("s")
        await wait_until(pilot, lambda: "Nobody is waiting" in screen.message)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, NoticesScreen))
        command = next(c for c in palette_commands(app) if c.title == "Campaign: the change notice")
        app.call_later(command.callback)             # as the palette runs it
        await wait_until(pilot, lambda: isinstance(app.screen, NoticesScreen))


async def test_d_decides_a_notice_in_doubt(make_engine, mailserver, old_user, new_user, smtp_server) -> None:
    people = StandIn(notice=[person("slow@example.net")])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people)
    eng.notices.postman.data_timeout = 1.0
    smtp_server.reply_delay = 2.0
    assert (await eng.notices.send("notice")).tally.doubt == 1
    smtp_server.reply_delay = 0.0
    app = SwitchoverApp(eng, start_background=False)
    async with app.run_test(size=(140, 40)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        await pilot.press("C")
        await wait_until(pilot, lambda: isinstance(app.screen, NoticesScreen) and app.screen.rows)
        screen = app.screen
        assert screen.rows[0][2] == "doubt" and "in doubt 1" in plain(screen.query_one("#notices-counts"))
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, Ask))
        await pilot.press("a")
        await wait_until(pilot, lambda: screen.rows and screen.rows[0][2] == "sent")
        assert smtp_server.taken == 1 and "sent" in screen.message


async def test_quitting_while_a_campaign_sends_stops_it_between_two_messages(
        make_engine, mailserver, old_user, new_user, smtp_server) -> None:
    people = StandIn(notice=[person(f"q{i}@example.net") for i in range(6)])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people)
    eng.notices.clock, eng.notices.sleep = time.time, asyncio.sleep
    smtp_server.reply_delay = 0.6             # every message takes a while to be answered
    app = SwitchoverApp(eng, start_background=False)
    async with app.run_test(size=(140, 40)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        await pilot.press("C")
        await wait_until(pilot, lambda: isinstance(app.screen, NoticesScreen) and len(app.screen.rows) == 6)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, Ask))
        await pilot.press("y")
        await wait_until(pilot, lambda: smtp_server.taken >= 1)      # the server holds a message now
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not eng.notices.sending)
    states = [r.state for r in await eng.notices.ledger.rows("notice")]
    assert "sending" not in states and "doubt" not in states, states
    assert 1 <= states.count("sent") < 6 and states.count("sent") + states.count("queued") == 6
    assert states.count("sent") == smtp_server.taken


async def test_a_row_a_gone_process_left_before_its_data_shows_queued_not_sending(
        make_engine, mailserver, old_user, new_user, smtp_server) -> None:
    from switchover.core.mail.compose import new_message_id
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, StandIn())
    ledger = eng.notices.ledger
    await ledger.enqueue("notice", [person("gone@example.net")], [new_message_id(new_user.address)])
    claimed = await ledger.claim((await ledger.rows("notice"))[0].id)
    assert claimed is not None
    # what a process killed between the claim and the data leaves: claimed by a pid now gone
    await eng.store.execute("UPDATE notices SET claimed_by=? WHERE id=?", (2 ** 22 + 12345, claimed.id))
    await eng.notices.status(scan=False)          # what the campaign screen reads
    assert [r.state for r in await ledger.rows("notice")] == ["queued"]
    assert smtp_server.taken == 0
