"""Closing readiness (core/wrapup/closing.py) against Dovecot: not yet while business mail
is recent, an arrival waits, no final backup exists and the transition is young — with
the earliest safe closing date computed from those; ready once everything is settled
(arrivals handled, a verified backup after the last arrival, dates in the past)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support.arrivals import add_arrival, message

pytestmark = pytest.mark.timeout(60)

TODAY = dt.date.today()


def days(n: int) -> str:
    return (TODAY + dt.timedelta(days=n)).isoformat()


def by_key(readiness) -> dict:
    return {r.key: r for r in readiness.reasons}


async def test_not_yet_with_its_reasons_and_the_earliest_date(make_engine, mailserver, old_user, new_user) -> None:
    eng = await make_engine(old_user, new_user, transition={"start": days(-10), "close_date": days(50)})
    eng.monitor.learn_history = False
    await eng.monitor.catch_up()                       # the old inbox was checked just now
    await add_arrival(eng, mailserver, old_user, message(old_user.address))

    r = await eng.closing.readiness()
    assert r.verdict == "not yet" and r.exit_code == 1
    reasons = by_key(r)
    assert reasons["quiet"].verdict == "not yet" and reasons["quiet"].until == TODAY + dt.timedelta(days=30)
    assert reasons["unhandled"].verdict == "not yet" and "1 of 1 arrivals" in reasons["unhandled"].text
    assert reasons["final_backup"].verdict == "not yet" and "No backup has been verified" in reasons["final_backup"].text
    assert reasons["final_reminder"].verdict == "not yet"
    assert reasons["watch"].verdict == "not yet" and reasons["watch"].until == TODAY + dt.timedelta(days=80)
    assert reasons["close_date"].verdict == "not yet"
    assert reasons["switched"].verdict == "note"
    # the latest of: last business mail + 30, start + 90, the announced close date
    assert r.earliest == TODAY + dt.timedelta(days=80)
    assert r.headline().startswith(f"not yet — earliest safe closing date {TODAY + dt.timedelta(days=80)}")
    # the checklist's 'close' item (a person's tick) shows the verdict as its evidence
    close = await eng.checklist.item("close")
    assert close.state == "open" and "closing readiness" in close.evidence and "not yet" in close.evidence


async def test_unknown_when_the_old_inbox_was_not_checked_lately(make_engine, old_user, new_user) -> None:
    eng = await make_engine(old_user, new_user, transition={"start": days(-200), "close_date": days(-100)})
    r = await eng.closing.readiness()
    assert by_key(r)["quiet"].verdict == "unknown" and "never been checked" in by_key(r)["quiet"].text
    eng.monitor.learn_history = False
    await eng.monitor.catch_up()
    r = await eng.closing.readiness(dt.datetime.now() + dt.timedelta(days=10))   # not checked for 10 days
    quiet = by_key(r)["quiet"]
    assert quiet.verdict == "unknown" and "last checked 10 days ago" in quiet.text


async def test_ready_once_everything_is_settled(make_engine, mailserver, old_user, new_user, tmp_path) -> None:
    eng = await make_engine(old_user, new_user, transition={"start": days(-120), "close_date": days(-5)})
    eng.monitor.learn_history = False
    first = await add_arrival(eng, mailserver, old_user, message(old_user.address))
    second = await add_arrival(eng, mailserver, old_user, message(old_user.address, subject="Order 18",
                                                                   sender="Bo Chen <bo@example.net>"))
    # simulated time: these arrived 40 days ago
    await eng.store.run("UPDATE arrivals SET seen_at=seen_at-? WHERE id IN (?, ?)", (40 * 86400, first, second))
    await eng.monitor.catch_up()
    not_yet = await eng.closing.readiness()
    assert not_yet.verdict == "not yet"
    assert {k for k, v in by_key(not_yet).items() if v.verdict == "not yet"} == {
        "unhandled", "final_reminder", "final_backup"}
    assert not_yet.earliest == TODAY        # time no longer holds it back: only what is left to do

    await eng.arrivals.mark_handled(first)
    await eng.arrivals.mark_handled(second)
    await eng.checklist.prove("final_reminder", True, "final reminder campaign done (test)")
    backup = tmp_path / "final"
    await eng.backups.backup(backup)
    assert (await eng.backups.verify_backup(backup)).ok

    r = await eng.closing.readiness()
    assert r.verdict == "ready" and r.exit_code == 0, [x for x in r.reasons if x.verdict != "ok"]
    reasons = by_key(r)
    assert "No business mail for 40 days" in reasons["quiet"].text
    assert "after the last arrival" in reasons["final_backup"].text
    assert r.earliest == TODAY
    assert r.as_dict()["verdict"] == "ready"

    # a new arrival after the backup: the final backup no longer covers everything
    await add_arrival(eng, mailserver, old_user, message(old_user.address, sender="Li Lei <li.lei@example.com>"))
    again = by_key(await eng.closing.readiness())
    assert again["final_backup"].verdict == "not yet" and "older than the last arrival" in again["final_backup"].text
    assert again["still_writing"].verdict in ("ok", "not yet")
