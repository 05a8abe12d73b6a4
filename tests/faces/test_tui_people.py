"""The People pane on a real engine (a small Dovecot mailbox scanned as the history scan
reads it): groups in order with one person's addresses together, language, notify and
the notice's state; n / N toggle notify for a person and for their group, t / l pick a
group / language (back to the guess too), f shows one group; the switched line."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from switchover.core.events import NoticeChanged
from switchover.tui.app import SwitchoverApp
from tests.people.mailbox import fill

pytestmark = pytest.mark.timeout(90)
CARLOS, GMAIL, WANG = "carlos@distribuidora-mx.com", "carlos.mendez1975@gmail.com", "wangwei@jinhua-factory.cn"


def text(table: Any, row: str, col: str) -> str:
    value = table.get_cell(row, col)
    return getattr(value, "plain", str(value))


async def settle(pilot: Any, pane: Any) -> None:
    """Let the pane's queued loads run (the serial runner has no join)."""
    await pilot.pause(0.1)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.3)


async def test_people_pane_groups_choices_and_trend(make_engine: Any, mailserver: Any, old_user: Any,
                                                    new_user: Any) -> None:
    fill(mailserver, old_user)
    eng = await make_engine(old_user, new_user)
    await eng.correspondents.scan_history()
    eng.publish(NoticeChanged(WANG, "notice", "sent", at=time.time() - 3 * 86400))
    await eng.bus.drain()
    await eng.correspondents.mark_switched(WANG, time.time() - 86400)

    app = SwitchoverApp(eng, start_background=False, initial_tab="people")
    async with app.run_test(size=(140, 40)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        pane = app.pane("people")
        table = pane.table
        await settle(pilot, pane)
        keys = [str(k.value) for k in table.rows]
        assert keys[:3] == [CARLOS, GMAIL, "ivan@torgservis.ru"]        # customers first, aliases together
        assert text(table, GMAIL, "address") == f"↳ {GMAIL}"
        assert (text(table, CARLOS, "group"), text(table, CARLOS, "lang"), text(table, CARLOS, "notify")) == \
            ("customer", "es", "yes")
        assert text(table, WANG, "status") == "switched"
        assert text(table, "growth@rank-top.biz", "notify") == "no"
        trend = str(pane.query_one("#people-trend").render())
        assert trend.startswith("switched: 1 of 8 (12%) · +1 this week")

        # n: the person; N: the whole group (customer → no), then back
        table.move_cursor(row=0)
        await pilot.press("n")
        await settle(pilot, pane)
        assert (await eng.correspondents.get(CARLOS)).choice_notify is False
        assert text(table, CARLOS, "notify") == "no"
        await pilot.press("N")
        await settle(pilot, pane)
        assert text(table, "ivan@torgservis.ru", "notify") == "no"
        assert {g: on for g, _n, _y, on in await eng.correspondents.group_counts()}["customer"] is False

        # t: pick a group (supplier), then back to the guess
        table.move_cursor(row=keys.index("ivan@torgservis.ru"))
        await pilot.press("t")
        await pilot.pause(0.2)
        assert app.screen.__class__.__name__ == "Picker"
        await pilot.press("down", "down", "enter")                        # guess, customer, supplier
        await settle(pilot, pane)
        assert (await eng.correspondents.get("ivan@torgservis.ru")).group == "supplier"
        assert text(table, "ivan@torgservis.ru", "group") == "supplier*"
        table.move_cursor(row=[str(k.value) for k in table.rows].index("ivan@torgservis.ru"))
        await pilot.press("t")
        await pilot.pause(0.2)
        await pilot.press("home", "enter")
        await settle(pilot, pane)
        assert (await eng.correspondents.get("ivan@torgservis.ru")).choice_group is None

        # l: language
        table.move_cursor(row=[str(k.value) for k in table.rows].index("ivan@torgservis.ru"))
        await pilot.press("l")
        await pilot.pause(0.2)
        await pilot.press("down", "enter")                                # guess, en
        await settle(pilot, pane)
        assert (await eng.correspondents.get("ivan@torgservis.ru")).language == "en"

        # f: one group
        await pilot.press("f")
        await pilot.pause(0.2)
        await pilot.press("down", "down", "enter")                        # everyone, customer, supplier
        await settle(pilot, pane)
        assert [str(k.value) for k in table.rows] == [WANG]


async def test_at_80_columns_the_footer_holds_every_people_key_and_quit(
        make_engine: Any, mailserver: Any, old_user: Any, new_user: Any) -> None:
    from textual.widgets._footer import FooterKey
    fill(mailserver, old_user)
    eng = await make_engine(old_user, new_user)
    await eng.correspondents.scan_history()
    app = SwitchoverApp(eng, start_background=False, initial_tab="people")
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 20)
        await settle(pilot, app.pane("people"))
        keys = list(app.screen.query(FooterKey))
        shown = [k.description for k in keys]
        assert {"Notify", "Notify group", "Group", "Lang", "Show", "Filter", "Quit", "Help"} <= set(shown), shown
        assert "More" not in shown and "Reload" not in shown        # everyone fits; reload is in help
        assert max(k.region.right for k in keys) <= 80, [(k.description, k.region) for k in keys]
