"""Pacing on a simulated clock: the presets per provider and the user's override, even
spacing, the minute / hour / day caps (the day counted across a restart from the
ledger), the slow-down after a 4xx, the ETA — and a whole campaign paced by the day's
cap, run in milliseconds.
"""

from __future__ import annotations

import pytest

from switchover.core.config import Account, NoticeSettings
from switchover.core.events import NoticeChanged
from switchover.core.notify.pacing import FIRST_BACKOFF, Pace, Pacer, pace_for
from tests.notify.campaign_support import SimClock, StandIn, engine_with, person


def _account(provider: str, username: str = "me@company.example") -> Account:
    return Account(side="new", provider=provider, imap=None, smtp=None, username=username)  # type: ignore[arg-type]


def test_presets_and_overrides():
    assert pace_for(_account("gmail"), NoticeSettings()).per_day == 2000          # Workspace
    assert pace_for(_account("gmail", "me@gmail.com"), NoticeSettings()).per_day == 500
    outlook = pace_for(_account("outlook"), NoticeSettings())
    assert (outlook.per_minute, outlook.per_day) == (30, 10000) and outlook.interval == pytest.approx(6.0)
    custom = pace_for(_account("custom"), NoticeSettings())
    assert custom.source == "the custom preset" and custom.per_day <= 500
    mine = pace_for(_account("qq"), NoticeSettings(per_hour=20, per_day=100))
    assert (mine.per_hour, mine.per_day, mine.source) == (20, 100, "notices.per_hour / per_day")
    assert "20 an hour, 100 a day" in mine.words()


async def test_even_spacing_and_the_hour_cap():
    clock = SimClock()
    pacer = Pacer(Pace(None, 60, 1000, "t"), clock.time, clock.sleep)
    times = []
    for _ in range(5):
        await pacer.wait()
        times.append(clock.now)
        pacer.sent()
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g == pytest.approx(60.0, abs=0.01) for g in gaps)


async def test_the_day_cap_holds_across_a_restart():
    clock = SimClock()
    start = clock.now
    history = [start - 3600 * h for h in (5, 4, 3)]          # three sent earlier today
    pacer = Pacer(Pace(None, 100, 3, "t"), clock.time, clock.sleep, history)
    assert pacer.next_slot() == pytest.approx(history[0] + 86400)
    assert pacer.eta(3) >= 86400 - 5 * 3600 - 1
    await pacer.wait()
    assert clock.now - start == pytest.approx(86400 - 5 * 3600, abs=1.0)


async def test_slow_down_doubles_then_resets():
    clock = SimClock()
    pacer = Pacer(Pace(None, 3600, 100000, "t"), clock.time, clock.sleep)
    assert pacer.slow_down() == FIRST_BACKOFF and pacer.slow_down() == 2 * FIRST_BACKOFF
    assert pacer.next_slot() == pytest.approx(clock.now + 2 * FIRST_BACKOFF)
    await pacer.wait()
    pacer.sent()
    assert pacer.slow_down() == FIRST_BACKOFF


async def test_a_campaign_paced_by_the_day_cap_runs_on_the_simulated_clock(
        make_engine, mailserver, old_user, new_user, smtp_server):
    clock = SimClock()
    people = StandIn(notice=[person(f"p{i}@example.net") for i in range(5)])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people, clock,
                            per_hour=60, per_day=3)
    when: list[float] = []
    eng.subscribe(lambda e: when.append(clock.now) if isinstance(e, NoticeChanged) and e.state == "sent" else None)
    result = await eng.notices.send("notice")
    assert result.tally.sent == 5 and smtp_server.taken == 5
    gaps = [b - a for a, b in zip(when, when[1:])]
    assert all(g >= 60 - 0.01 for g in gaps)
    assert when[3] - when[0] >= 86400 - 0.01                  # the 4th waits for the day to pass
