"""The dashboard's preflight (``p`` in the checklist): it runs the engine's preflight in a
worker against Dovecot, aiosmtpd and a dnslib responder, shows the report with a verdict
word on every line, and the checklist items it proved tick themselves."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from switchover.tui.app import SwitchoverApp
from switchover.tui.preflight import PreflightScreen
from tests.prepare.preflight_dns import Responder, good_zone
from tests.support.servers import DOMAIN, write_config
from tests.support.pilot import screen_text, wait_until

pytestmark = pytest.mark.timeout(90)


async def test_p_runs_the_preflight_and_shows_verdict_words(tmp_path: Path, mailserver, old_user, new_user,
                                                            smtp_server) -> None:
    with Responder(good_zone(DOMAIN, dmarc="v=DMARC1; p=none")) as ns:
        path = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                            server=mailserver, smtp=smtp_server, dns={"nameservers": [ns.spec]})
        app = SwitchoverApp(config=path, start_background=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await asyncio.wait_for(app.ready.wait(), 20)
            await pilot.press("p")
            await wait_until(pilot, lambda: isinstance(app.screen, PreflightScreen),
                             timeout=30, what="the screen")
            screen = app.screen
            await wait_until(pilot, lambda: screen.report is not None, timeout=30, what="the report")
            text = screen_text(app, "\n")
            for section in ("Logins", "Fit", "Round trip", "DNS", "Address"):
                assert section in text, text
            assert "ok            old: logged in as" in text, text
            assert "warn          DMARC: p=none" in text, text          # a word, not a colour
            assert "Nothing blocks the switch" in text, text
            # a second press while nothing runs runs it again; while it runs, it is refused
            smtp_server.reply_delay = 1.0             # the second run takes a few seconds
            await pilot.press("r")
            assert screen.running
            await pilot.press("r")
            await wait_until(pilot, lambda: any("already running" in n.message for n in app._notifications),
                             timeout=30, what=lambda: str([n.message for n in app._notifications]))
            await wait_until(pilot, lambda: not screen.running, timeout=30, what="the second run")
            smtp_server.reply_delay = 0.0
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, PreflightScreen),
                             timeout=30, what="closed")
            pane = app.pane("checklist")
            await wait_until(pilot, lambda: pane.items["sendtest"].state == "done"
                             and pane.items["setup"].state == "done", timeout=30, what="the proofs")
    with sqlite3.connect(tmp_path / "switchover.sqlite") as db:
        rows = db.execute("SELECT COUNT(*) FROM preflight_sends WHERE state = 'arrived' AND deleted = 1").fetchone()[0]
    assert rows == 6                                 # two runs, three legs each, all cleaned up
