"""The change-notice campaign against Dovecot + aiosmtpd: one message per person, To:
that person only, From / Reply-To the new address, the composer's MIME structure, a copy
in the new Sent folder placed once, nothing sent twice by a rerun, the checklist proof,
the test notice and the preview.
"""

from __future__ import annotations

import pytest

from switchover.core.events import NoticeChanged, Proven
from tests.notify.campaign_support import TRANSITION, SimClock, StandIn, parsed, person, sent_to

pytestmark = pytest.mark.timeout(60)


async def _engine(make_engine, old_user, new_user, smtp_server, people: StandIn, **notices):
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION,
                            notices={"per_hour": 3600, **notices})
    eng.notices.people = people
    clock = SimClock()
    eng.notices.clock, eng.notices.sleep = clock.time, clock.sleep
    return eng


async def test_one_message_per_person_with_copy_in_sent_and_no_second_send(
        make_engine, mailserver, old_user, new_user, smtp_server):
    mailserver.append(new_user, "Sent", b"Subject: older\r\n\r\nx\r\n")
    a, b = mailserver.add_user("a"), mailserver.add_user("b")
    people = StandIn(notice=[person(a.address, "es", name="Ana Ruiz"), person(b.address, "zh"),
                             person("far@example.net", "ru")])
    eng = await _engine(make_engine, old_user, new_user, smtp_server, people)
    events: list[object] = []
    eng.subscribe(events.append)

    result = await eng.notices.send("notice")

    assert (result.tally.sent, result.left, result.stopped) == (3, 0, "")
    for addr in (a.address, b.address, "far@example.net"):
        raws = sent_to(smtp_server, addr)
        assert len(raws) == 1, addr
        msg = parsed(raws[0])
        assert [x.addr_spec for x in msg["To"].addresses] == [addr]
        assert msg["From"].addresses[0].addr_spec == new_user.address
        assert msg["Reply-To"].addresses[0].addr_spec == new_user.address
        assert msg.get_content_type() == "multipart/mixed"
        alt = next(p for p in msg.walk() if p.get_content_type() == "multipart/alternative")
        assert [p.get_content_type() for p in alt.iter_parts()] == ["text/plain", "text/html"]
        row = await eng.notices.ledger.find("notice", addr)
        assert row is not None and row.state == "sent" and row.message_id == msg["Message-ID"]
        assert row.sent_copy == "placed"
    assert parsed(sent_to(smtp_server, a.address)[0])["Content-Language"] == "es"
    assert mailserver.messages(a)[0].count(b"Message-ID") >= 1          # delivered for real
    sent_box = [parsed(r)["Message-ID"] for r in mailserver.messages(new_user, "Sent")]
    assert len(sent_box) == 4 and len(set(sent_box)) == 4
    states = [(e.address, e.state) for e in events if isinstance(e, NoticeChanged)]
    assert (a.address, "sent") in states and (a.address, "sending") in states
    assert any(isinstance(e, Proven) and e.item == "notice" and e.ok and "sent 3, bounced 0 of 3" in e.evidence
               for e in events)

    # a rerun, a double press, a restart: nothing goes twice, no second copy in Sent
    again = await eng.notices.send("notice")
    await eng.notices.reconcile()
    assert again.total == 0 and smtp_server.taken == 3
    assert len(mailserver.messages(new_user, "Sent")) == 4
    await eng.bus.drain()
    item = await eng.checklist.item("notice")
    assert item.state == "done" and item.by == "engine"


async def test_limit_and_group_leave_the_rest_queued_then_resume(make_engine, mailserver, old_user, new_user,
                                                                smtp_server):
    people = StandIn(notice=[person(f"p{i}@example.net", group="supplier" if i % 2 else "customer")
                             for i in range(6)])
    eng = await _engine(make_engine, old_user, new_user, smtp_server, people)
    first = await eng.notices.send("notice", group="supplier", limit=2)
    assert first.tally.sent == 2 and first.left == 1            # only the group was queued
    assert {r[1][0] for r in smtp_server.messages} == {"p1@example.net", "p3@example.net"}
    rest = await eng.notices.send("notice")
    assert rest.tally.sent == 4 and rest.left == 0 and smtp_server.taken == 6
    status = await eng.notices.status(scan=False)
    assert status.counts("notice") == {"sent": 6}


async def test_notify_no_after_queueing_is_cancelled_not_sent(make_engine, mailserver, old_user, new_user,
                                                              smtp_server):
    people = StandIn(notice=[person("x@example.net"), person("y@example.net")])
    eng = await _engine(make_engine, old_user, new_user, smtp_server, people)
    plan = await eng.notices.plan("notice")
    assert plan.count == 2 and "an hour" in plan.pace.words()
    people.campaigns["notice"] = [person("x@example.net")]           # the user said no to y
    result = await eng.notices.send("notice")
    assert result.tally.sent == 1 and [r[1] for r in smtp_server.messages] == [["x@example.net"]]
    assert (await eng.notices.ledger.find("notice", "y@example.net")).state == "cancelled"


async def test_preview_is_the_message_that_goes(make_engine, mailserver, old_user, new_user, smtp_server):
    people = StandIn(notice=[person("lena@example.net", "de", name="Lena Vogel")])
    eng = await _engine(make_engine, old_user, new_user, smtp_server, people)
    await eng.notices.plan("notice")                                  # queued: the Message-ID is fixed
    before = parsed(await eng.notices.preview("LENA@example.net"))
    await eng.notices.send("notice")
    sent = parsed(sent_to(smtp_server, "lena@example.net")[0])
    assert before["Message-ID"] == sent["Message-ID"] and before["Subject"] == sent["Subject"]
    assert before.get_body(("plain",)).get_content() == sent.get_body(("plain",)).get_content()
    with pytest.raises(Exception, match="not in the audience"):
        await eng.notices.preview("nobody@example.net")


async def test_test_notice_reaches_both_own_inboxes(make_engine, mailserver, old_user, new_user, smtp_server):
    people = StandIn(notice=[person("a@example.net", "es"), person("b@example.net", "en")])
    eng = await _engine(make_engine, old_user, new_user, smtp_server, people)
    results = await eng.notices.test(timeout=10)
    assert sorted((r.language, r.side) for r in results) == [("en", "new"), ("en", "old"),
                                                               ("es", "new"), ("es", "old")]
    assert all(r.state == "sent" and r.seconds is not None and r.seconds < 10 for r in results)
    assert len(mailserver.messages(old_user)) == 2 and len(mailserver.messages(new_user)) == 2
    assert smtp_server.taken == 4


async def test_internal_notice_proves_its_checklist_item(make_engine, mailserver, old_user, new_user, smtp_server):
    people = StandIn(internal=[person("finance@company.example", group="internal"),
                               person("logistics@company.example", group="internal")])
    eng = await _engine(make_engine, old_user, new_user, smtp_server, people)
    result = await eng.notices.send("internal")
    assert result.tally.sent == 2
    await eng.bus.drain()
    item = await eng.checklist.item("internal")
    assert item.state == "done" and "sent 2, bounced 0 of 2" in item.evidence
    assert (await eng.checklist.item("notice")).state == "open"       # nobody in the notice's audience
