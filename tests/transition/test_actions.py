"""core/transition/actions.py against real servers: forward (IMAP and SMTP ways), remind, undo,
retries, crash reconciliation and the automatic RFC 3834 rules."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time

import pytest

from switchover.core.events import ActionChanged
from tests.support.arrivals import TRANSITION, add_arrival, inbox, message


@pytest.fixture
async def eng(make_engine, old_user, new_user, smtp_server):
    return await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION)


async def test_forward_imap_byte_identical_once(eng, mailserver, old_user, new_user, smtp_server):
    raw = message(old_user.address, body="Bare LF inside:\nand 8-bit: 你好")
    aid = await add_arrival(eng, mailserver, old_user, raw)
    events: list[ActionChanged] = []
    eng.subscribe(lambda ev: events.append(ev) if isinstance(ev, ActionChanged) else None)
    ids = await asyncio.gather(*(eng.actions.request(aid, "forward", delay=0) for _ in range(3)))
    assert len(set(ids)) == 1
    assert await eng.actions.run_due() == 1
    assert await eng.actions.run_due() == 0
    assert (await eng.actions.get(ids[0])).state == "done", (await eng.actions.get(ids[0])).outcome
    assert await eng.actions.request(aid, "forward", delay=0) == ids[0]     # done: no second
    assert await eng.actions.run_due() == 0
    original = inbox(mailserver, old_user)[-1]
    assert inbox(mailserver, new_user) == [original]
    dates = []
    for user in (old_user, new_user):
        c = mailserver.client(user)
        c.normalise_times = False
        c.select_folder("INBOX", readonly=True)
        dates.append(list(c.fetch(c.search(["ALL"]), ["INTERNALDATE"]).values())[-1][b"INTERNALDATE"])
        c.logout()
    assert dates[0] == dates[1]
    (row,) = await eng.actions.for_arrival(aid)
    assert row.state == "done" and row.attempts == 1 and "new INBOX" in row.outcome
    assert [e.state for e in events if e.action_id == row.id] == ["pending", "running", "done"]
    # the original stays unread in the old mailbox (BODY.PEEK)
    c = mailserver.client(old_user)
    c.select_folder("INBOX", readonly=True)
    assert all(b"\\Seen" not in f for f in c.get_flags(c.search(["ALL"])).values())
    c.logout()
    assert not smtp_server.messages


async def test_reconcile_after_kill_never_copies_twice(eng, mailserver, old_user, new_user):
    raw = message(old_user.address)
    aid = await add_arrival(eng, mailserver, old_user, raw)
    # killed after the append, before the mark: the copy is there, the row says running
    action = await eng.actions.request(aid, "forward", delay=0)
    original = inbox(mailserver, old_user)[-1]
    mailserver.append(new_user, "INBOX", original)
    await eng.store.execute("UPDATE actions SET state='running', started=?, attempts=1, "
                            "outcome='pid 999999999' WHERE id=?", (time.time() - 5, action))
    await eng.actions.reconcile()
    assert await eng.actions.run_due() == 0
    assert inbox(mailserver, new_user) == [original]
    row = (await eng.actions.for_arrival(aid))[0]
    assert row.state == "done" and "restart" in row.outcome

    # killed after the record, before the append: reconcile finds nothing, runs it once
    raw2 = message(old_user.address, subject="second")
    aid2 = await add_arrival(eng, mailserver, old_user, raw2)
    action2 = await eng.actions.request(aid2, "forward", delay=0)
    await eng.store.execute("UPDATE actions SET state='running', started=?, attempts=1, "
                            "outcome='pid 999999999' WHERE id=?", (time.time() - 5, action2))
    await eng.actions.reconcile()
    assert await eng.actions.run_due() == 1
    assert await eng.actions.run_due() == 0
    assert len(inbox(mailserver, new_user)) == 2


async def test_forward_smtp_as_attachment(make_engine, mailserver, old_user, new_user, smtp_server):
    eng = await make_engine(old_user, new_user, smtp=smtp_server,
                            transition={**TRANSITION, "forward_method": "smtp"})
    raw = message(old_user.address, subject="Invoice 9")
    aid = await add_arrival(eng, mailserver, old_user, raw)
    await eng.actions.request(aid, "forward", delay=0)
    assert await eng.actions.run_due() == 1
    mail_from, rcpts, sent = smtp_server.wait_for(1)[0]
    assert rcpts == [new_user.address] and mail_from == new_user.address
    msg = email.message_from_bytes(sent, policy=email.policy.default)
    assert msg["Subject"] == "Fwd: Invoice 9"
    (row,) = await eng.actions.for_arrival(aid)
    # the arrival, not the action, is named: a preview (before any action exists)
    # shows the same message; the Message-ID identifies the send
    assert msg["X-Switchover-Arrival"] == str(aid)
    assert msg["Message-ID"] == (await eng.store.fetchone(
        "SELECT sent_message_id FROM actions WHERE id=?", (row.id,)))[0]
    att = [p for p in msg.iter_parts() if p.get_content_type() == "message/rfc822"]
    assert len(att) == 1
    inner = att[0].get_payload()[0]
    original = inbox(mailserver, old_user)[-1]
    assert inner["Message-ID"] == email.message_from_bytes(original)["Message-ID"]
    # delivered into the new INBOX; reconcile would find it by the action header
    assert await eng.actions.outcomes.found_on_server(await eng.actions.get(row.id))


async def test_remind_chinese_threaded(eng, mailserver, old_user, new_user, smtp_server):
    raw = message(old_user.address, sender="=?utf-8?b?5p2O6Zu3?= <li.lei@example.cn>",
                  subject="Re: 报价单", body="您好，请尽快把新的报价单发给我们。谢谢！",
                  mid="<orig-1@example.cn>")
    aid = await add_arrival(eng, mailserver, old_user, raw, sender="li.lei@example.cn")
    action = await eng.actions.request(aid, "remind", delay=0)
    assert await eng.actions.run_due() == 1
    mail_from, rcpts, sent = smtp_server.wait_for(1)[0]
    assert rcpts == ["li.lei@example.cn"] and mail_from == old_user.address
    msg = email.message_from_bytes(sent, policy=email.policy.default)
    assert msg["Subject"] == "Re: 报价单"          # no "Re: Re:"
    assert b"=?utf-8?" in sent.split(b"\r\n\r\n")[0]   # RFC 2047 on the wire
    assert msg["In-Reply-To"] == "<orig-1@example.cn>"
    assert msg["References"] == "<root@example.com> <orig-1@example.cn>"
    assert "Auto-Submitted" not in msg                  # a person asked for it
    body = msg.get_content()
    assert new_user.address in body and "2027年3月31日" in body and "李雷" in body
    row = await eng.store.fetchone("SELECT * FROM actions WHERE id=?", (action,))
    assert msg["Message-ID"] == row["sent_message_id"] and row["state"] == "done"
    corr = await eng.store.fetchone("SELECT last_reminded FROM correspondents WHERE address=?",
                                    ("li.lei@example.cn",))
    assert corr["last_reminded"] > time.time() - 60
    # a copy of the reminder sits in the old Sent folder, and reconcile knows it
    c = mailserver.client(old_user)
    c.select_folder("Sent", readonly=True)
    assert len(c.search(["HEADER", "Message-ID", row["sent_message_id"]])) == 1
    c.logout()
    assert await eng.actions.outcomes.found_on_server(await eng.actions.get(action))
    # killed after sending (no marker written): reconcile finds it in Sent, sends nothing
    await eng.store.execute("UPDATE actions SET state='running', outcome='pid 999999999' WHERE id=?",
                            (action,))
    await eng.actions.reconcile()
    assert await eng.actions.run_due() == 0
    assert (await eng.actions.get(action)).state == "done" and len(smtp_server.messages) == 1
    # killed after the marker: done straight away
    await eng.store.execute("UPDATE actions SET state='running', outcome=? WHERE id=?",
                            ("pid 999999999; delivered: sent", action))
    await eng.actions.reconcile()
    assert (await eng.actions.get(action)).state == "done" and len(smtp_server.messages) == 1
    # forward + remind both done → the arrival is handled
    await eng.actions.request(aid, "forward", delay=0)
    await eng.actions.run_due()
    assert (await eng.arrivals.get(aid)).state == "handled"


async def test_undo_and_background_runner(eng, mailserver, old_user, new_user, smtp_server):
    aid = await add_arrival(eng, mailserver, old_user, message(old_user.address))
    events: list[ActionChanged] = []
    eng.subscribe(lambda ev: events.append(ev) if isinstance(ev, ActionChanged) else None)
    await eng.actions.start()
    try:
        action = await eng.actions.request(aid, "remind", delay=1)
        await asyncio.sleep(0.3)
        assert await eng.actions.cancel(action)
        await asyncio.sleep(1.2)
        assert not smtp_server.messages
        assert (await eng.actions.for_arrival(aid))[0].state == "cancelled"
        assert not await eng.actions.cancel(action)
        # a new request after an undo is a new action; the runner carries it out
        again = await eng.actions.request(aid, "remind", delay=0)
        assert again != action
        for _ in range(40):
            if (await eng.actions.get(again)).state == "done":
                break
            await asyncio.sleep(0.1)
        assert (await eng.actions.get(again)).state == "done"
        assert len(smtp_server.wait_for(1)) == 1
        handled = await eng.actions.request(aid, "handled", delay=0)
        for _ in range(40):
            if (await eng.actions.get(handled)).state == "done":
                break
            await asyncio.sleep(0.1)
        assert (await eng.store.fetchone("SELECT state FROM arrivals WHERE id=?", (aid,)))["state"] == "handled"
    finally:
        await eng.actions.stop()
    assert ("cancelled" in {e.state for e in events if e.action_id == action})


async def test_failure_words_and_retry(eng, mailserver, old_user, smtp_server):
    aid = await add_arrival(eng, mailserver, old_user, message(old_user.address,
                                                               sender="Bob <bob@example.org>"))
    smtp_server.reject["bob@example.org"] = "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown"
    action = await eng.actions.request(aid, "remind", delay=0)
    await eng.actions.run_due()
    row = await eng.actions.get(action)
    assert row.state == "failed" and "550" in row.outcome and "User unknown" in row.outcome
    assert row.attempts == 1
    # a temporary refusal goes back to pending with a later time, saying why
    smtp_server.reject.clear()
    smtp_server.fail_data = "451 4.7.1 Please try again later"
    second = await eng.actions.retry(action)
    assert second != action and await eng.actions.retry(action) == second
    await eng.actions.run_due()
    row2 = await eng.actions.get(second)
    assert row2.state == "pending" and "451" in row2.outcome and row2.not_before > time.time() + 10
    smtp_server.fail_data = None
    await eng.store.execute("UPDATE actions SET not_before=0 WHERE id=?", (second,))
    assert await eng.actions.run_due() == 1
    row2 = await eng.actions.get(second)
    assert row2.state == "done" and row2.attempts == 2
    assert len(smtp_server.wait_for(1)) == 1


async def test_automatic_rules_rfc3834(make_engine, mailserver, old_user, new_user, smtp_server):
    eng = await make_engine(old_user, new_user, smtp=smtp_server,
                            transition={**TRANSITION, "auto_forward": True, "auto_remind": True,
                                        "remind_every_days": 7})
    old = old_user.address
    cases = {
        "list": message(old, sender="news@lists.example.com", extra="List-Id: <news.example.com>\r\n"),
        "auto-submitted": message(old, sender="Ops <ops@example.net>", extra="Auto-Submitted: auto-generated\r\n"),
        "bounce": message(old, sender="MAILER-DAEMON@example.net", subject="Undelivered Mail Returned to Sender"),
        "noreply": message(old, sender="no-reply@shop.example.com"),
        "not to us": message("someone.else@example.com", sender="Carol <carol@example.com>"),
    }
    ids = {}
    for name, raw in cases.items():
        ids[name] = await add_arrival(eng, mailserver, old_user, raw)
        await eng.actions.on_arrival(ids[name])
    for name, aid in ids.items():
        kinds = {a.kind for a in await eng.actions.for_arrival(aid)}
        assert "remind" not in kinds, name
        ok, why = await eng.actions.remind_allowed(aid)
        assert not ok and why, name
    # a business mail not addressed to us is still forwarded, but never answered
    assert {a.kind for a in await eng.actions.for_arrival(ids["not to us"])} == {"forward"}
    assert {a.kind for a in await eng.actions.for_arrival(ids["list"])} == set()

    first = await add_arrival(eng, mailserver, old_user, message(old, sender="Dan <dan@example.com>"))
    second = await add_arrival(eng, mailserver, old_user, message(old, sender="Dan <dan@example.com>",
                                                                    subject="again"))
    await asyncio.gather(eng.actions.on_arrival(first), eng.actions.on_arrival(second))
    reminds = [a for aid in (first, second) for a in await eng.actions.for_arrival(aid) if a.kind == "remind"]
    assert len(reminds) == 1 and reminds[0].auto
    assert (await eng.actions.remind_allowed(second))[1] == "reminded less than 7 days ago"
    await eng.actions.run_due()
    sent = [m for m in smtp_server.wait_for(1) if m[1] == ["dan@example.com"]]
    assert len(sent) == 1
    msg = email.message_from_bytes(sent[0][2], policy=email.policy.default)
    assert msg["Auto-Submitted"] == "auto-replied"
    # after it is done, last_reminded keeps the once-per-7-days promise
    third = await add_arrival(eng, mailserver, old_user, message(old, sender="Dan <dan@example.com>"))
    await eng.actions.on_arrival(third)
    assert [a.kind for a in await eng.actions.for_arrival(third)] == ["forward"]


async def test_monitor_arrival_drives_auto_rules(make_engine, mailserver, old_user, new_user, smtp_server):
    """The whole path: a real delivery, the watch records it and announces it, the actions
    facet reacts to ArrivalSeen with the rules (catch_up returns once they ran)."""
    eng = await make_engine(old_user, new_user, smtp=smtp_server,
                            transition={**TRANSITION, "auto_forward": True, "auto_remind": True})
    await eng.monitor.catch_up()          # first look: sets the mark
    raw = message(old_user.address, sender="Eve <eve@example.es>", subject="Pedido urgente",
                  body="Hola, gracias por el precio. Por favor, envíe el pedido con saludos cordiales.")
    await eng.blocking.run(mailserver.deliver, old_user, raw, "eve@example.es")
    assert await eng.monitor.catch_up() == 1
    rows = await eng.store.fetchall("SELECT id FROM arrivals WHERE sender='eve@example.es'")
    aid = rows[0]["id"]
    assert {a.kind for a in await eng.actions.for_arrival(aid)} == {"forward", "remind"}
    assert await eng.actions.run_due() == 2
    arrival = await eng.monitor.arrival(aid)
    assert arrival.state == "handled" and arrival.actions == {"forward": "done", "remind": "done"}
    sent = [m for m in smtp_server.wait_for(1) if m[1] == ["eve@example.es"]]
    msg = email.message_from_bytes(sent[0][2], policy=email.policy.default)
    assert msg["Subject"] == "Re: Pedido urgente"
    body = msg.get_content()
    assert "31 de marzo de 2027" in body and new_user.address in body
    assert inbox(mailserver, new_user) == [inbox(mailserver, old_user)[-1]]


async def test_perform_carries_out_once_and_says_when_it_was_done_before(eng, mailserver, old_user, new_user,
                                                                         smtp_server):
    """What the faces call: request and carry out now; a second call finds the action
    done (``earlier``) and sends nothing."""
    aid = await add_arrival(eng, mailserver, old_user, message(old_user.address, sender="Ann <ann@example.com>"))
    row = await eng.actions.perform(aid, "remind")
    assert row.state == "done" and not row.earlier and "reminder sent to ann@example.com" in row.outcome
    again = await eng.actions.perform(aid, "remind")
    assert again.id == row.id and again.earlier and again.state == "done"
    assert len(smtp_server.wait_for(1)) == 1
    forward = await eng.actions.perform(aid, "forward")
    assert forward.state == "done" and not forward.earlier
    assert (await eng.arrivals.get(aid)).state == "handled"
    with pytest.raises(Exception, match="There is no arrival"):
        await eng.actions.perform(999999, "forward")


async def test_rules_reach_an_arrival_whose_reaction_never_ran(make_engine, mailserver, old_user, new_user,
                                                               smtp_server):
    """The process died between recording an arrival and its ArrivalSeen reaction: the
    next reconcile gives it the rules, once; an arrival the reaction saw is never given
    them again."""
    eng = await make_engine(old_user, new_user, smtp=smtp_server,
                            transition={**TRANSITION, "auto_forward": True, "auto_remind": True})
    await eng.actions.reconcile()                      # the rules' mark starts here
    lost = await add_arrival(eng, mailserver, old_user, message(old_user.address, sender="Bo <bo@example.com>"))
    seen = await add_arrival(eng, mailserver, old_user, message(old_user.address, sender="Cy <cy@example.com>"))
    await eng.actions.on_arrival(seen)                 # what the ArrivalSeen reaction does
    assert {a.kind for a in await eng.actions.for_arrival(lost)} == set()
    await eng.actions.reconcile()
    await eng.actions.reconcile()
    await eng.actions.on_arrival(seen)                 # a repeated event changes nothing
    for aid in (lost, seen):
        rows = await eng.actions.for_arrival(aid)
        assert sorted(a.kind for a in rows) == ["forward", "remind"] and all(a.auto for a in rows)
    assert await eng.actions.run_due() == 4
    assert len(smtp_server.wait_for(2)) == 2
