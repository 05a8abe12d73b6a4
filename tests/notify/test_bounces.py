"""Bounces of the notice: a Postfix-style RFC 3464 report delivered into the new INBOX
(matched by the original's Message-ID), a mailer-daemon text with the original attached
in the old INBOX, the watch's ArrivalSeen as the trigger, the reason in plain words, and
the reports that are not failures (delayed) left alone.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from switchover.core.events import ArrivalSeen, NoticeChanged
from switchover.core.notify.bounces import parse_report, plain_words
from tests.notify.campaign_support import StandIn, engine_with, person, sent_to

pytestmark = pytest.mark.timeout(60)


def postfix_dsn(to: str, rcpt: str, original: bytes, action: str = "failed", status: str = "5.1.1") -> bytes:
    headers = original.split(b"\r\n\r\n", 1)[0].decode()
    return (f"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
            f"To: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            f"Auto-Submitted: auto-replied\r\nMessage-Id: <dsn.{rcpt}@mx.example.net>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B0\"\r\n\r\n"
            f"--B0\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"This is the mail system at host mx.example.net.\r\n\r\n<{rcpt}>: host mx.example.net said: "
            f"550 {status} <{rcpt}>: Recipient address rejected: User unknown\r\n\r\n"
            f"--B0\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; mx.example.net\r\nArrival-Date: Thu,  3 Dec 2026 09:00:00 +0000\r\n\r\n"
            f"Final-Recipient: rfc822; {rcpt}\r\nOriginal-Recipient: rfc822;{rcpt}\r\nAction: {action}\r\n"
            f"Status: {status}\r\nRemote-MTA: dns; mx.example.net\r\n"
            f"Diagnostic-Code: smtp; 550 {status} <{rcpt}>: Recipient address rejected: User unknown in "
            f"virtual mailbox table\r\n\r\n"
            f"--B0\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"{headers}\r\n--B0--\r\n").encode()


def mailer_daemon_text(to: str, rcpt: str, original: bytes) -> bytes:
    """What some providers send: a text and the original attached, no delivery-status."""
    msg = EmailMessage()
    msg["From"] = "Mail Delivery Subsystem <mailer-daemon@mail.example.org>"
    msg["To"] = to
    msg["Subject"] = "系统退信 / Delivery failure"
    msg.set_content(f"Your message could not be delivered to {rcpt}.\n"
                    f"Reason: 552 5.2.2 mailbox full\n")
    msg.add_attachment(original, maintype="message", subtype="rfc822")
    return msg.as_bytes()


async def test_reports_in_both_mailboxes_mark_people_bounced_with_the_reason(
        make_engine, mailserver, old_user, new_user, smtp_server):
    people = StandIn(notice=[person("gone@example.net"), person("full@example.org"), person("ok@example.net")])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people)
    changes: list[NoticeChanged] = []
    eng.subscribe(lambda e: changes.append(e) if isinstance(e, NoticeChanged) else None)
    assert (await eng.notices.send("notice")).tally.sent == 3
    mailserver.deliver(new_user, postfix_dsn(new_user.address, "gone@example.net",
                                             sent_to(smtp_server, "gone@example.net")[0]))
    mailserver.deliver(old_user, mailer_daemon_text(old_user.address, "full@example.org",
                                                    sent_to(smtp_server, "full@example.org")[0]))
    status = await eng.notices.status()
    reasons = {b.address: b.words for b in status.bounced}
    assert set(reasons) == {"gone@example.net", "full@example.org"}
    assert reasons["gone@example.net"].startswith("the address does not exist (5.1.1; 550 5.1.1")
    assert reasons["full@example.org"].startswith("the mailbox is full (5.2.2")
    assert status.counts("notice") == {"sent": 1, "bounced": 2}
    assert ("gone@example.net", "bounced") in [(c.address, c.state) for c in changes]
    # the checklist: everyone sent or bounced
    await eng.bus.drain()
    item = await eng.checklist.item("notice")
    assert item.state == "done" and "sent 1, bounced 2 of 3" in item.evidence
    # a second look finds nothing new and changes nothing
    assert await eng.notices.scan_bounces() == 0


async def test_the_watch_arrival_triggers_the_scan(make_engine, mailserver, old_user, new_user, smtp_server):
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, StandIn(notice=[person("x@example.net")]))
    await eng.notices.send("notice")
    await eng.notices.status()                                # the scan mark starts here
    mailserver.deliver(new_user, postfix_dsn(new_user.address, "x@example.net",
                                             sent_to(smtp_server, "x@example.net")[0], status="5.1.10"))
    eng.publish(ArrivalSeen(1, "new", "mailer-daemon@mx.example.net", "Undelivered Mail", "bounce"))
    await eng.bus.drain()
    row = await eng.notices.ledger.find("notice", "x@example.net")
    assert row.state == "bounced" and "null MX" in row.bounce


def test_parse_report_shapes():
    original = b"Message-ID: <n1@new.example>\r\nSubject: hi\r\n\r\nbody\r\n"
    report = parse_report(postfix_dsn("me@new.example", "a@b.example", original))
    assert report is not None and report.original_id == "<n1@new.example>"
    assert [(f.address, f.status) for f in report.failures] == [("a@b.example", "5.1.1")]
    assert parse_report(postfix_dsn("me@new.example", "a@b.example", original, action="delayed",
                                    status="4.4.1")) is None
    assert parse_report(b"From: li@example.com\r\nSubject: hello\r\n\r\nhi\r\n") is None
    text = parse_report(mailer_daemon_text("me@new.example", "c@d.example", original), {"me@new.example"})
    assert text is not None and text.original_id == "<n1@new.example>"
    assert [f.address for f in text.failures] == ["c@d.example"]
    assert plain_words("5.7.1", "smtp; 550 5.7.1 blocked") == "their server refused it (policy or spam filter) " \
                                                             "(5.7.1; smtp; 550 5.7.1 blocked)"


async def test_a_report_the_watch_sees_in_the_new_inbox_marks_the_bounce(make_engine, mailserver, old_user,
                                                                         new_user, smtp_server):
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, StandIn(notice=[person("y@example.net")]))
    eng.monitor.learn_history = False
    await eng.monitor.catch_up()                              # the watch's first look: marks only
    await eng.notices.send("notice")
    mailserver.deliver(new_user, postfix_dsn(new_user.address, "y@example.net",
                                             sent_to(smtp_server, "y@example.net")[0]))
    await eng.monitor.catch_up()                              # the DSN is an arrival on the new side
    await eng.bus.drain()
    row = await eng.notices.ledger.find("notice", "y@example.net")
    assert row.state == "bounced" and row.bounce.startswith("the address does not exist")
