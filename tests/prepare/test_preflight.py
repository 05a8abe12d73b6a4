"""``engine.preflight`` end to end against Dovecot (quota on the new user), aiosmtpd
(delivering into the Dovecot users) and a dnslib responder: logins proven on the
checklist, capabilities, the fit of the old mail into the new quota, the round trip of
test messages (timed, then deleted — only those), the DNS and the address; a second run
at the same time is refused; a round trip that cannot arrive fails, never passes."""

from __future__ import annotations

from typing import Any

import pytest

from switchover.core.joblock import JobBusy, JobLock
from switchover.core.prepare.records import FAIL, NOT_RUN, OK, WARN
from tests.prepare.preflight_dns import Responder, good_zone
from tests.support.servers import DOMAIN

pytestmark = pytest.mark.timeout(60)


def msg(i: int, size: int = 0, to: str = "x@example.com") -> bytes:
    body = ("line of text %d\r\n" % i) * max(1, size // 16)
    return (f"From: Customer {i} <c{i}@customer.example>\r\nTo: {to}\r\nSubject: order {i}\r\n"
            f"Message-ID: <order-{i}@customer.example>\r\n\r\n{body}").encode()


def by_name(report: Any) -> dict[str, Any]:
    return {f.name: f for f in report.findings}


async def test_a_full_preflight_proves_logins_dns_and_the_round_trip(mailserver, make_engine, smtp_server) -> None:
    old = mailserver.add_user("pfold")
    new = mailserver.add_user("pfnew", quota_kb=50_000)
    for i in range(3):
        mailserver.append(old, "INBOX", msg(i, 2000))
    mailserver.append(old, "Sent", msg(9, 40_000))
    mailserver.append(new, "INBOX", msg(20, 1000, to=new.address))       # the person's own mail stays
    with Responder(good_zone(DOMAIN)) as ns:
        eng = await make_engine(old, new, smtp=smtp_server, dns={"nameservers": [ns.spec], "timeout": 2})
        report = await eng.preflight.run(timeout=20, poll=0.2)
    found = by_name(report)
    print("\n".join(report.lines()))
    assert found["login.old.imap"].verdict == OK and found["login.new.imap"].verdict == OK
    assert found["login.new.smtp"].verdict == OK and "nothing sent" in found["login.new.smtp"].found
    assert found["fit.quota"].verdict == OK and "fits" in found["fit.quota"].found
    assert "4 messages" in found["fit.quota"].found
    for leg in ("new-new", "new-old", "old-new"):
        f = found[f"roundtrip.{leg}"]
        assert f.verdict == OK and "arrived after" in f.found and "not deleted" not in f.found, f
    assert {found[k].verdict for k in ("dns.mx", "dns.spf", "dns.dkim", "dns.dmarc")} == {OK}
    assert report.exit_code == 0, report.blocking
    # proofs on the checklist
    items = {i.key: i for i in await eng.checklist.items()}
    for key in ("login_old", "login_new", "setup", "sendtest"):
        assert items[key].state == "done" and items[key].by == "engine", (key, items[key])
    assert "new → old" in items["sendtest"].evidence
    # only the test messages were deleted: the person's own mail is still there
    assert [m.count(b"order-20") for m in mailserver.messages(new, "INBOX")] == [1]
    assert len(mailserver.messages(old, "INBOX")) == 3
    rows = await eng.store.fetchall("SELECT leg, state, deleted, seconds FROM preflight_sends ORDER BY id")
    assert [(r["leg"], r["state"], r["deleted"]) for r in rows] == [
        ("new-new", "arrived", 1), ("new-old", "arrived", 1), ("old-new", "arrived", 1)]
    # the report is kept for the faces
    last = await eng.preflight.last()
    assert last is not None and last.as_list() == report.as_list()


async def test_mail_that_never_arrives_fails_and_nothing_is_proven(mailserver, make_engine) -> None:
    from tests.support.servers import SmtpServer
    old, new = mailserver.add_user("pflost"), mailserver.add_user("pflostnew")
    with SmtpServer(mailserver, deliver=False) as blackhole:      # takes mail, delivers nothing
        eng = await make_engine(old, new, smtp=blackhole)
        report = await eng.preflight.run(timeout=1.5, poll=0.2)
    found = by_name(report)
    for leg in ("new-new", "new-old", "old-new"):
        f = found[f"roundtrip.{leg}"]
        assert f.verdict == FAIL and "did not arrive within 1.5 s" in f.found and f.blocking, f
    assert found["dns"].verdict == NOT_RUN and not found["dns"].blocking     # example.com: not looked up
    assert report.exit_code == 1
    items = {i.key: i for i in await eng.checklist.items()}
    assert items["sendtest"].state == "open" and items["setup"].state == "open"
    assert items["login_old"].state == "done"
    rows = await eng.store.fetchall("SELECT state FROM preflight_sends")
    assert [r["state"] for r in rows] == ["missing"] * 3


async def test_fit_against_the_quota_and_the_size_limit(mailserver, make_engine) -> None:
    old = mailserver.add_user("pffit")
    new = mailserver.add_user("pffitnew", quota_kb=100)
    for i in range(3):
        mailserver.append(old, "INBOX", msg(i, 40_000))          # ~120 kB into 100 kB
    eng = await make_engine(old, new, new={"max_message_mb": 0.03})
    report = await eng.preflight.run(send=False)
    found = by_name(report)
    room = found["fit.quota"]
    assert room.verdict == FAIL and "does not fit" in room.found and "short" in room.found, room
    assert "more room" in room.advice
    big = found["fit.largest"]
    assert big.verdict == WARN and "3 message(s) larger than 30.0 kB" in big.found and "max_message_mb" in big.found
    assert found["roundtrip"].verdict == WARN and "not tested" in found["roundtrip"].found
    assert report.exit_code == 1
    assert (await eng.checklist.item("sendtest")).state == "open"
    assert await eng.store.fetchall("SELECT id FROM preflight_sends") == []

    tight = mailserver.add_user("pftight", quota_kb=128)
    eng2 = await make_engine(old, tight, name="tight.yaml")
    f = by_name(await eng2.preflight.run(send=False))["fit.quota"]
    assert f.verdict == WARN and "tight" in f.found and not f.blocking, f


async def test_a_second_run_is_refused_while_one_holds_the_lock(mailserver, make_engine, old_user, new_user) -> None:
    eng = await make_engine(old_user, new_user)
    with JobLock(eng.config.state, "preflight"):
        with pytest.raises(JobBusy) as e:
            await eng.preflight.run(send=False)
    assert e.value.exit_code == 4


async def test_a_send_left_unfinished_is_doubt_never_sent_again_and_cleaned_up_later(
        mailserver, make_engine, smtp_server) -> None:
    old, new = mailserver.add_user("pfdoubt"), mailserver.add_user("pfdoubtnew")
    eng = await make_engine(old, new, smtp=smtp_server)
    # a check killed inside its send: the row says 'sending', the message did arrive
    late = "<late-1@example.com>"
    mailserver.append(new, "INBOX", f"Message-ID: {late}\r\nSubject: switchover test message\r\n\r\nx\r\n".encode())
    await eng.store.execute(
        "INSERT INTO preflight_sends(run, leg, from_side, to_side, to_address, message_id, state, pid, started) "
        "VALUES('dead', 'old-new', 'old', 'new', ?, ?, 'sending', 1, 0)", (new.address, late))
    smtp_server.clear()
    report = await eng.preflight.run(timeout=10, poll=0.2)
    found = by_name(report)
    assert found["roundtrip.earlier"].verdict == WARN and "never confirmed" in found["roundtrip.earlier"].found
    assert len(smtp_server.messages) == 3                     # the three of this run, nothing re-sent
    row = await eng.store.fetchone("SELECT state, deleted FROM preflight_sends WHERE run = 'dead'")
    assert (row["state"], row["deleted"]) == ("doubt", 1)     # found where it landed and deleted
    assert mailserver.messages(new, "INBOX") == []


async def test_a_refused_login_takes_the_proof_back(mailserver, make_engine, old_user, new_user) -> None:
    eng = await make_engine(old_user, new_user)
    await eng.preflight.run(send=False)
    assert (await eng.checklist.item("login_old")).state == "done"
    eng.set_secret("old", "a wrong password")
    report = await eng.preflight.run(send=False)
    assert report.login_failed and report.exit_code == 3
    f = by_name(report)["login.old.imap"]
    assert f.verdict == FAIL and "refused the login" in f.found
    assert by_name(report)["fit.quota"].verdict == NOT_RUN
    assert (await eng.checklist.item("login_old")).state == "open"
