"""Issue 9.2: mail that arrives between the migration and the first `watch` is in the
feed (and gets the automatic rules): the first watch starts where the migration last
read the folder, else at the transition's start date, else at UIDNEXT."""

from __future__ import annotations

import asyncio
import datetime as dt

from tests.support.arrivals import make_mail


async def test_first_watch_starts_at_the_migration_snapshot(make_engine, mailserver, old_user, new_user,
                                                            smtp_server):
    for i in range(3):
        mailserver.append(old_user, "INBOX", make_mail(f"h{i}@customer.com", old_user.address, f"history {i}"))
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition={"auto_forward": True})
    s = await eng.migration.run()
    assert s.ok and s.transferred == 3
    row = await eng.store.fetchone("SELECT uidvalidity, uidnext FROM folders WHERE side='old' AND name='INBOX'")
    assert row["uidvalidity"] and row["uidnext"] == 4
    # mail comes in after the migration read INBOX, before anyone watches
    for subject in ("after 1", "after 2"):
        await asyncio.to_thread(mailserver.deliver, old_user,
                                make_mail("Buyer <buyer@customer.com>", old_user.address, subject))
    assert await eng.monitor.catch_up() == 2
    feed = await eng.monitor.arrivals()
    assert sorted(a.subject for a in feed) == ["after 1", "after 2"]
    # they get the automatic rules like any arrival: forwarded, once, beside the migrated three
    assert await eng.actions.run_due() == 2
    subjects = sorted(m.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
                      for m in mailserver.messages(new_user, "INBOX"))
    assert subjects == ["after 1", "after 2", "history 0", "history 1", "history 2"]
    ids = await eng.store.fetchall("SELECT identity FROM arrivals WHERE side='old'")
    assert all(r["identity"] for r in ids)
    assert await eng.monitor.catch_up() == 0


async def test_other_uidvalidity_is_not_trusted(make_engine, mailserver, old_user, new_user):
    eng = await make_engine(old_user, new_user)
    await eng.store.execute(
        "INSERT INTO folders(side, name, uidvalidity, uidnext, state, updated) "
        "VALUES('old', 'INBOX', 1, 1, 'done', 0)")
    await asyncio.to_thread(mailserver.deliver, old_user, make_mail("a@c.com", old_user.address, "x"))
    assert await eng.monitor.catch_up() == 0       # a renumbered folder: baseline at UIDNEXT
    await asyncio.to_thread(mailserver.deliver, old_user, make_mail("a@c.com", old_user.address, "y"))
    assert await eng.monitor.catch_up() == 1


async def test_first_watch_without_migration_starts_at_the_start_date(make_engine, mailserver, old_user,
                                                                      new_user):
    old_date = dt.datetime(2020, 5, 1, 9, 0, tzinfo=dt.timezone.utc)
    for i in range(2):
        mailserver.append(old_user, "INBOX", make_mail("h@customer.com", old_user.address, f"2020 {i}"),
                          date=old_date)
    for subject in ("today 1", "today 2"):
        await asyncio.to_thread(mailserver.deliver, old_user, make_mail("b@customer.com", old_user.address, subject))
    start = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    eng = await make_engine(old_user, new_user, transition={"start": start})
    assert await eng.monitor.catch_up() == 2
    assert sorted(a.subject for a in await eng.monitor.arrivals()) == ["today 1", "today 2"]
    await asyncio.to_thread(mailserver.deliver, old_user, make_mail("b@customer.com", old_user.address, "later"))
    assert await eng.monitor.catch_up() == 1
    assert await eng.monitor.catch_up() == 0
