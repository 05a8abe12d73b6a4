"""Pilot tests of the checklist's letter and scan screens (tui/letter.py, tui/scan.py)
against the real engine, Dovecot and real files: l shows the letter measured from the
old mailbox, t switches the language, w writes it and ticks "request"; s lists the places
that still show the old address and r scans again, showing what was fixed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from switchover.tui.app import SwitchoverApp
from switchover.tui.letter import LetterScreen
from switchover.tui.scan import ScanScreen
from tests.support.pilot import wait_until

pytestmark = pytest.mark.timeout(120)


def status(app: Any, widget_id: str) -> str:
    return str(app.screen.query_one(widget_id).render())


async def test_letter_screen_languages_and_write(config_path: Path) -> None:
    app = SwitchoverApp(config=config_path, start_background=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        assert app.pane("checklist").selected_item().key == "request"
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LetterScreen), what="letter screen")
        screen = app.screen
        md = screen.query_one("#letter-md")
        await wait_until(pilot, lambda: md.source.startswith("# Request to change"), what="English letter")
        # no dates, no quota in this config: said on the status line
        await wait_until(pilot, lambda: "placeholders" in status(app, "#letter-status"), what="gaps")
        await pilot.press("t")
        await wait_until(pilot, lambda: md.source.startswith("# 关于更换工作邮箱的申请"), what="Chinese letter")
        assert "此致" in md.source
        await wait_until(pilot, lambda: "中文" in status(app, "#letter-status"), what="status in zh")
        await pilot.press("w")
        written = config_path.parent / "change-request.zh.md"
        await wait_until(pilot, written.exists, what="the written letter")
        assert written.read_text(encoding="utf-8") == md.source
        await wait_until(pilot, lambda: "written to" in status(app, "#letter-status"), what="status")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, LetterScreen), what="back")
        await app.engine.bus.drain()
        request = await app.engine.checklist.item("request")
        assert request.state == "done" and request.by == "engine"


async def test_scan_screen_lists_places_and_rescans(config_path: Path, old_user: Any, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "quote.md").write_text(f"Quotation\n\nReply to {old_user.address}\n")
    (docs / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    app = SwitchoverApp(config=config_path, start_background=False)
    async with app.run_test(size=(120, 32)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ScanScreen), what="scan screen")
        await wait_until(pilot, lambda: "No scan yet" in status(app, "#scan-status"), what="no scan yet")

        await app.engine.scan.run([str(docs)])
        await pilot.press("escape", "s")
        await wait_until(pilot, lambda: isinstance(app.screen, ScanScreen), what="scan screen again")
        table = app.screen.query_one("#scan-table")
        await wait_until(pilot, lambda: table.row_count == 2, what="two rows")
        assert "1 place still shows" in status(app, "#scan-status")
        assert "could not be read" in status(app, "#scan-status")

        (docs / "quote.md").write_text("Quotation\n\nReply to the new address\n")
        (docs / "old.doc").unlink()
        await pilot.press("r")
        await wait_until(pilot, lambda: "1 fixed" in status(app, "#scan-status"), what="rescan")
        assert table.row_count == 0 and "found nowhere" in status(app, "#scan-status")
