"""The check schedule (core/wrapup/schedule.py): daily for four weeks, every 3 days to
day 60, weekly after; "last checked" is when a watch last caught up on the old inbox
(Dovecot), and what is overdue is said with the command that catches up."""

from __future__ import annotations

import datetime as dt

from switchover.core.wrapup.schedule import every_days, rhythm_lines, schedule_status

START = dt.date(2026, 12, 1)


def at(day: int, hour: int = 10) -> dt.datetime:
    """Transition day ``day`` (1 = the start) at ``hour``."""
    return dt.datetime.combine(START + dt.timedelta(days=day - 1), dt.time(hour))


def test_the_rhythm_goes_from_daily_to_weekly() -> None:
    assert [every_days(d) for d in (1, 28, 29, 60, 61, 200)] == [1, 1, 3, 3, 7, 7]
    lines = rhythm_lines(START, dt.date(2027, 3, 31))
    assert lines[0] == "days 1–28 (2026-12-01 to 2026-12-28): every day"
    assert lines[1] == "days 29–60 (2026-12-29 to 2027-01-29): every 3 days"
    assert lines[2].startswith("day 61 on (2027-01-30 on): every week, until the old account is closed")


def test_on_time_and_overdue_on_a_simulated_today() -> None:
    # day 5: daily; checked 3 hours ago → on time
    s = schedule_status(START, None, (at(5) - dt.timedelta(hours=3)).timestamp(), at(5))
    assert (s.day, s.every_days, s.overdue) == (5, 1, False)
    assert s.short() == "checked 3 h ago"
    assert s.next_due == at(5) + dt.timedelta(hours=21)
    assert "next by" in s.sentence()

    # day 40: every 3 days; checked 5 days ago → overdue by 2 days
    s = schedule_status(START, None, (at(40) - dt.timedelta(days=5)).timestamp(), at(40))
    assert (s.every_days, s.overdue) == (3, True)
    assert s.short() == "check overdue (2 days)"
    assert s.sentence() == ("Last checked 5 days ago (2027-01-04 10:00); the schedule wants a check every "
                            "3 days — run 'switchover watch --once' or open the dashboard.")

    # day 70: weekly; checked 6 days ago → still on time
    s = schedule_status(START, None, (at(70) - dt.timedelta(days=6)).timestamp(), at(70))
    assert (s.every_days, s.overdue) == (7, False) and s.short() == "checked 6 days ago"


def test_never_checked_and_not_started() -> None:
    s = schedule_status(START, None, None, at(3))
    assert s.overdue and s.short() == "old inbox never checked"
    assert "never been checked" in s.sentence() and "watch --once" in s.sentence()
    before = schedule_status(START, None, None, at(-4))
    assert not before.overdue and before.sentence().startswith("The transition starts on 2026-12-01")


async def test_a_catch_up_is_the_last_check(make_engine, old_user, new_user) -> None:
    today = dt.date.today()
    eng = await make_engine(old_user, new_user, transition={"start": (today - dt.timedelta(days=40)).isoformat()})
    before = await eng.schedule.status()
    assert before.last_checked is None and before.overdue and before.every_days == 3
    eng.monitor.learn_history = False
    await eng.monitor.catch_up()
    after = await eng.schedule.status()
    assert after.last_checked is not None and not after.overdue and after.watching
    assert after.short().startswith("checked ") and after.short().endswith(" ago")
    # five days later without a check: overdue, by two days
    later = await eng.schedule.status(dt.datetime.now() + dt.timedelta(days=5))
    assert later.overdue and later.short() == "check overdue (2 days)"
