"""The demo's side of the campaign, on the demo's own servers (pymap + aiosmtpd): mail to
a gone domain comes back as a real DSN in the sender's INBOX; after a notice some people
switch (answer to the new address, then write there) and most keep the old one."""

from __future__ import annotations

import email
import email.policy
import smtplib
import time

import imapclient
import pytest

from switchover.demo import live
from switchover.demo.live import LiveArrivals, make_arrival, readdress, switch_decision
from switchover.demo.people import NEW_ADDRESS, OLD_ADDRESS, cast
from switchover.demo.servers import HOST, DemoServers, DemoUser, is_gone

SEED = 7


@pytest.fixture(scope="module")
def servers():
    s = DemoServers(DemoUser("old", "pw-old", OLD_ADDRESS), DemoUser("new", "pw-new", NEW_ADDRESS),
                    sieve=False)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def inbox(servers, side: str, *criteria: str) -> list[email.message.EmailMessage]:
    port = servers.new_imap.port if side == "new" else servers.old_imap.port
    with imapclient.IMAPClient(HOST, port=port, ssl=False, timeout=10) as c:
        c.login(side, f"pw-{side}")
        c.select_folder("INBOX", readonly=True)
        uids = c.search(list(criteria) or ["ALL"])
        data = c.fetch(uids, ["RFC822"]) if uids else {}
    return [email.message_from_bytes(d[b"RFC822"], policy=email.policy.default) for d in data.values()]


def notice(to: str, mid: str) -> bytes:
    return (f"From: Wu Jun <{NEW_ADDRESS}>\r\nTo: {to}\r\nSubject: Important Notice: Update of "
            f"Email Address for Wu Jun\r\nMessage-ID: {mid}\r\nDate: Thu, 03 Dec 2026 09:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nMy address has changed.\r\n").encode()


def send(servers, to: list[str], raw: bytes, sender: str = NEW_ADDRESS) -> None:
    with smtplib.SMTP(HOST, servers.smtp_port, timeout=10) as s:
        s.login("new", "pw-new")
        s.sendmail(sender, to, raw)


def test_gone_domains_are_a_few_fixed_correspondents():
    people = cast(SEED)
    gone = [p for p in people if is_gone(p.address)]
    assert 0 < len(gone) < len(people) // 10
    assert not is_gone(OLD_ADDRESS) and not is_gone(NEW_ADDRESS) and is_gone("x@gone.example")


def test_mail_to_a_gone_domain_comes_back_as_a_dsn(servers):
    mid = "<notice.bounce.1@example-trading.example>"
    send(servers, ["buyer@gone.example", "ok@far.example"], notice("buyer@gone.example", mid))
    reports = [m for m in inbox(servers, "new", "FROM", "MAILER-DAEMON")
               if mid in m.as_string()]
    assert len(reports) == 1
    report = reports[0]
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    kinds = [p.get_content_type() for p in report.iter_parts()]
    assert "message/delivery-status" in kinds
    status = next(p for p in report.iter_parts() if p.get_content_type() == "message/delivery-status")
    text = status.as_string()
    assert "Final-Recipient: rfc822; buyer@gone.example" in text and "Status: 5.1.1" in text
    headers = next(p for p in report.iter_parts() if p.get_content_type() == "text/rfc822-headers")
    assert f"Message-ID: {mid}" in headers.get_content()
    assert report["Auto-Submitted"] == "auto-replied"
    # the good recipient still went out, the gone one did not
    assert any(r == ["ok@far.example"] for _, r, _ in servers.outside)
    assert servers.delivery.bounced >= 1


def test_some_switch_after_a_notice_most_do_not(servers, monkeypatch):
    monkeypatch.setattr(live, "SWITCH_DELAY", (0.05, 0.2))
    people = [p for p in cast(SEED) if p.role == "customer" and not is_gone(p.address)]
    decided = {p.address: switch_decision(SEED, p.address) for p in people}
    switching = [a for a, d in decided.items() if d is not None]
    staying = [a for a, d in decided.items() if d is None]
    assert 0.15 < len(switching) / len(people) < 0.55 and len(staying) > len(switching)
    arrivals = LiveArrivals(HOST, servers.smtp_port, seed=SEED, every=0.5)
    one, other = switching[0], staying[0]
    mid = "<notice.switch.1@example-trading.example>"
    arrivals.on_outside(NEW_ADDRESS, [one, other], notice(one, mid))
    time.sleep(0.3)
    arrivals._send_due_replies()
    assert arrivals.switched == {one}
    replies = inbox(servers, "new", "HEADER", "In-Reply-To", mid)
    assert len(replies) == 1 and one in str(replies[0]["From"])
    assert "letting us know" in replies[0].get_content()


def test_a_switched_person_writes_to_the_new_address(servers):
    arrivals = LiveArrivals(HOST, servers.smtp_port, seed=SEED, every=0.5)
    index = next(i for i in range(40, 400)
                 if make_arrival(SEED, i, arrivals.people)[1] == [OLD_ADDRESS]
                 and make_arrival(SEED, i, arrivals.people)[0].endswith(".example"))
    sender, _, raw = make_arrival(SEED, index, arrivals.people)
    mid = email.message_from_bytes(raw)["Message-ID"]
    arrivals.switched.add(sender.lower())
    arrivals.index = index
    arrivals.send_one()
    got = inbox(servers, "new", "HEADER", "Message-ID", mid)
    assert len(got) == 1 and NEW_ADDRESS in str(got[0]["To"])
    assert not inbox(servers, "old", "HEADER", "Message-ID", mid)


def test_readdress_changes_headers_only():
    raw = f"To: {OLD_ADDRESS}\r\nCc: a@b.example\r\n\r\nwrite to {OLD_ADDRESS}\r\n".encode()
    rcpts, out = readdress([OLD_ADDRESS, "a@b.example"], raw)
    assert rcpts == [NEW_ADDRESS, "a@b.example"]
    assert out.startswith(f"To: {NEW_ADDRESS}".encode()) and out.endswith(f"write to {OLD_ADDRESS}\r\n".encode())
