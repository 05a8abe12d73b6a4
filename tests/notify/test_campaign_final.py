"""The final reminder: allowed from ``notices.final_reminder_days`` before the close date
(earlier: one sentence naming the day, exit 2; ``now`` overrides), sent to those the
people's owner names — with the real people facet: notified, not switched, still writing
to the old address — and the checklist's "Final reminder sent".
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from switchover.core.errors import SwitchoverError
from switchover.core.people.choices import Choice
from tests.notify.campaign_support import SimClock, StandIn, engine_with, person, sent_to

pytestmark = pytest.mark.timeout(60)


def _transition(close_in_days: int) -> dict[str, str]:
    return {"start": "2020-01-01", "close_date": (dt.date.today() + dt.timedelta(days=close_in_days)).isoformat()}


async def test_final_reminder_waits_for_its_day(make_engine, mailserver, old_user, new_user, smtp_server):
    clock = SimClock()
    people = StandIn(final=[person("late@example.net")])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people, clock,
                            transition=_transition(30), final_reminder_days=14)
    opens = dt.date.today() + dt.timedelta(days=16)
    with pytest.raises(SwitchoverError, match=f"can go from {opens.isoformat()}") as e:
        await eng.notices.send("final")
    assert e.value.exit_code == 2 and smtp_server.taken == 0
    clock.now += 16 * 86400                                   # the day has come
    result = await eng.notices.send("final")
    assert result.tally.sent == 1 and sent_to(smtp_server, "late@example.net")
    await eng.bus.drain()
    item = await eng.checklist.item("final_reminder")
    assert item.state == "done" and "final reminder: sent 1, bounced 0 of 1" in item.evidence


async def test_final_reminder_goes_only_to_those_not_switched_who_still_write_to_the_old_address(
        make_engine, mailserver, old_user, new_user, smtp_server):
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=_transition(10),
                            notices={"per_hour": 36000, "per_day": 100000})
    people = eng.correspondents
    addresses = ["moved@example.net", "stuck@example.net", "quiet@example.net"]
    for a in addresses:
        await people.note_arrival(a, a.split("@")[0].title(), "en", False, time.time() - 30 * 86400)
        await people.choose(a, Choice(group="customer", notify=True))
    assert sorted(p.address for p in await people.audience("notice")) == sorted(addresses)
    assert (await eng.notices.send("notice")).tally.sent == 3
    await eng.bus.drain()                                     # the people's owner keeps "notified"
    later = time.time() + 60
    await people.mark_switched("moved@example.net", later)
    await people.note_arrival("stuck@example.net", "Stuck", "en", False, later)
    await people.note_arrival("moved@example.net", "Moved", "en", False, later + 1)
    smtp_server.clear()
    result = await eng.notices.send("final")
    assert result.tally.sent == 1 and [r[1] for r in smtp_server.messages] == [["stuck@example.net"]]
    status = await eng.notices.status(scan=False)
    assert (status.notified, status.switched) == (3, 1)
    assert status.still_old == ["stuck@example.net"]
