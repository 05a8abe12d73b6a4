"""One SMTP connection for a whole campaign (core/net/smtp.py Session): one login for
many notices, and a kept connection the server gave up on meanwhile — a hang-up, a 421
at MAIL FROM, a long pause — is replaced without sending anybody twice or putting
anybody in doubt.
"""

from __future__ import annotations

import socket

import pytest

from switchover.core.net import smtp as smtpnet
from tests.notify.campaign_support import TRANSITION, SimClock, StandIn, engine_with, person, sent_to
from tests.support.mailboxes import via_proxy
from tests.support.proxy import Proxy

pytestmark = pytest.mark.timeout(60)

PEOPLE = [f"p{i}@example.net" for i in range(6)]


async def test_a_campaign_logs_in_once(make_engine, mailserver, old_user, new_user, smtp_server):
    with Proxy(mailserver.host, mailserver.imap_port) as imap:
        eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION,
                                notices={"per_hour": 36000, "per_day": 100000}, new=via_proxy(imap))
        eng.notices.people = StandIn(notice=[person(a) for a in PEOPLE])
        clock = SimClock()
        eng.notices.clock, eng.notices.sleep = clock.time, clock.sleep
        before = len(smtp_server.logins)
        result = await eng.notices.send("notice")
        imap_logins = imap.connections_total
    assert result.tally.sent == len(PEOPLE) and result.left == 0
    assert len(smtp_server.logins) - before == 1
    assert imap_logins == 1            # the Sent folder's name and every copy: one IMAP login
    assert all(len(sent_to(smtp_server, a)) == 1 for a in PEOPLE)
    for a in PEOPLE:
        assert (await eng.notices.ledger.find("notice", a)).sent_copy == "placed"
    assert len(mailserver.messages(new_user, "Sent")) == len(PEOPLE)


async def test_a_hang_up_between_two_notices_is_a_new_connection_not_a_doubt(
        make_engine, mailserver, old_user, new_user, smtp_server):
    with Proxy(smtp_server.host, smtp_server.port) as proxy, \
            Proxy(mailserver.host, mailserver.imap_port) as imap:
        eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION,
                                notices={"per_hour": 3600, "per_day": 100000},
                                new={**via_proxy(imap),
                                     "smtp": {"host": proxy.host, "port": proxy.port, "security": "none"}})
        eng.notices.people = StandIn(notice=[person(a) for a in PEOPLE])

        def hang_up(seconds: float) -> None:        # both servers give up while we wait
            proxy.drop_all()
            imap.drop_all()
        clock = SimClock(on_sleep=hang_up)
        eng.notices.clock, eng.notices.sleep = clock.time, clock.sleep
        before = len(smtp_server.logins)
        result = await eng.notices.send("notice")
    for a in PEOPLE:
        assert (await eng.notices.ledger.find("notice", a)).sent_copy == "placed"
    assert len(mailserver.messages(new_user, "Sent")) == len(PEOPLE)
    assert len(smtp_server.logins) - before == len(PEOPLE)
    assert (result.tally.sent, result.tally.doubt, result.tally.failed, result.tally.retried) == \
        (len(PEOPLE), 0, 0, 0)
    assert all(len(sent_to(smtp_server, a)) == 1 for a in PEOPLE)


async def test_421_at_mail_from_on_a_kept_connection_is_a_new_connection(
        make_engine, mailserver, old_user, new_user, smtp_server):
    eng = await engine_with(make_engine, old_user, new_user, smtp_server,
                            StandIn(notice=[person(a) for a in PEOPLE[:3]]))
    sent: list[int] = []

    def after_first(seconds: float) -> None:
        if smtp_server.taken == 1 and not sent:
            sent.append(1)
            smtp_server.mail_reply = "421 4.4.2 idle too long, closing"
    clock = SimClock(on_sleep=after_first)
    eng.notices.clock, eng.notices.sleep = clock.time, clock.sleep
    before = len(smtp_server.logins)
    result = await eng.notices.send("notice")
    assert (result.tally.sent, result.tally.retried, result.tally.doubt) == (3, 0, 0)
    assert sent and len(smtp_server.logins) - before == 2
    assert all(len(sent_to(smtp_server, a)) == 1 for a in PEOPLE[:3])


def test_an_idle_connection_is_not_tried_again(mailserver, old_user, new_user, smtp_server, tmp_path):
    from switchover.core.config import load_config
    from tests.support.servers import write_config
    cfg = load_config(write_config(tmp_path / "s.yaml", old_user=old_user, new_user=new_user,
                                   server=mailserver, smtp=smtp_server))
    now = [0.0]
    session = smtpnet.Session(cfg.new, clock=lambda: now[0])
    raw = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: x\r\n\r\nbody\r\n"
    try:
        session.send(new_user.address, ["b@example.net"], raw)
        # the end of the data is a small write of its own: Nagle off, or each message waits
        # for a delayed ACK (40 ms on Linux)
        assert session._conn is not None
        assert session._conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        now[0] += smtpnet.IDLE_REUSE / 2
        session.send(new_user.address, ["b@example.net"], raw, data_timeout=600)
        assert session.opened == 1
        # the next command on the kept connection waits the command timeout, not the
        # 10 minutes the end of the data may take
        assert session._conn.sock.gettimeout() == session.timeout
        session.send(new_user.address, ["b@example.net"], raw)
        now[0] += smtpnet.IDLE_REUSE + 1
        session.send(new_user.address, ["b@example.net"], raw)
        assert session.opened == 2
    finally:
        session.close()
    assert smtp_server.taken == 4
