"""One SMTP connection for a whole campaign (core/net/smtp.py Session): one login for
many notices, and a kept connection the server gave up on meanwhile — a hang-up, a 421
at MAIL FROM, a long pause — is replaced without sending anybody twice or putting
anybody in doubt.
"""

from __future__ import annotations

import asyncio
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


async def test_a_resend_decided_while_the_campaign_sends_takes_its_turn_on_the_connection(
        make_engine, mailserver, old_user, new_user, smtp_server):
    """The person settles a doubt with "send it again" while the campaign runs: both use
    the run's connection, one conversation after the other, nobody twice or garbled."""
    eng = await engine_with(make_engine, old_user, new_user, smtp_server,
                            StandIn(notice=[person("doubt@example.net")] + [person(a) for a in PEOPLE]))
    eng.notices.postman.data_timeout = 0.5
    smtp_server.reply_delay = 1.0
    first = await eng.notices.send("notice", limit=1)
    assert first.tally.doubt == 1
    await asyncio.sleep(0.8)                          # the late answer to the first comes meanwhile
    smtp_server.reply_delay = 0.15
    eng.notices.postman.data_timeout = 30
    run = asyncio.create_task(eng.notices.send("notice"))
    while smtp_server.taken < 3:
        await asyncio.sleep(0.01)
    again = await eng.notices.settle("doubt@example.net", delivered=False)
    result = await asyncio.wait_for(run, 30)
    assert again.state == "sent" and result.tally.sent == len(PEOPLE)
    assert all(len(sent_to(smtp_server, a)) == 1 for a in PEOPLE)
    assert len(sent_to(smtp_server, "doubt@example.net")) == 2       # the doubt, and the resend
    for _, _, raw in smtp_server.messages:
        assert b"\r\nQUIT" not in raw and b"\r\nMAIL FROM" not in raw.upper()


async def test_a_cancel_in_the_middle_of_a_send_lets_it_end_before_the_connection_closes(
        make_engine, mailserver, old_user, new_user, smtp_server):
    eng = await engine_with(make_engine, old_user, new_user, smtp_server,
                            StandIn(notice=[person(a) for a in PEOPLE]))
    smtp_server.reply_delay = 0.5
    run = asyncio.create_task(eng.notices.send("notice"))
    while smtp_server.taken < 2:
        await asyncio.sleep(0.005)
    run.cancel()                                      # as a second Ctrl-C or a worker's cancel does
    with pytest.raises(asyncio.CancelledError):
        await run
    taken = smtp_server.taken
    smtp_server.reply_delay = 0.0
    rows = {r.address: r.state for r in await eng.notices.ledger.rows("notice")}
    assert list(rows.values()).count("sent") == taken and "doubt" not in rows.values(), rows
    again = await eng.notices.send("notice")          # settles what is left, sends the rest
    assert again.tally.doubt == 0
    assert all(len(sent_to(smtp_server, a)) == 1 for a in PEOPLE)
    for _, _, raw in smtp_server.messages:
        assert b"QUIT" not in raw


async def test_a_421_asking_to_slow_down_is_a_wait_not_a_new_connection_at_once(
        make_engine, mailserver, old_user, new_user, smtp_server):
    eng = await engine_with(make_engine, old_user, new_user, smtp_server,
                            StandIn(notice=[person(a) for a in PEOPLE[:3]]))

    def after_first(seconds: float) -> None:
        if smtp_server.taken == 1 and not said:
            said.append(1)
            smtp_server.mail_reply = "421 4.7.0 Too many messages, try again later"
    said: list[int] = []
    clock = SimClock(on_sleep=after_first)
    eng.notices.clock, eng.notices.sleep = clock.time, clock.sleep
    result = await eng.notices.send("notice")
    assert said and result.tally.retried == 1 and result.tally.sent == 3
    assert max(clock.slept) >= 60                     # the slow-down wait, not an instant retry
    assert all(len(sent_to(smtp_server, a)) == 1 for a in PEOPLE[:3])


async def test_a_row_whose_data_started_to_leave_is_never_queued_again_by_the_requeue_of_the_abandoned(
        make_engine, mailserver, old_user, new_user, smtp_server):
    from switchover.core.mail.compose import new_message_id
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, StandIn())
    ledger = eng.notices.ledger
    await ledger.enqueue("notice", [person("racing@example.net")], [new_message_id(new_user.address)])
    row = (await ledger.rows("notice"))[0]
    assert await ledger.claim(row.id) is not None
    assert await ledger.data_leaving(row.id)         # the sender records that the data leaves
    # a status read that saw the row before that record must not put it back in the queue
    assert not await ledger.requeue(row.id, "interrupted", counts=False, before_data=True)
    assert (await ledger.get(row.id)).state == "sending"
