"""The campaign when the server misbehaves: no answer to the end of DATA (doubt, never
retried by itself, settled by the Sent folder or the person), a 4xx (slow down, then
go on), 5.7.1 (stop with one sentence, the rest stays queued), a refused login, a
refused recipient (bounced), and a ``switchover notify --send`` killed with SIGKILL
while the server holds a message (the rerun sends nobody twice and skips nobody).
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.notify.campaign_support import SimClock, StandIn, engine_with, notify_cli, person, sent_to

pytestmark = pytest.mark.timeout(90)


async def test_no_answer_to_end_of_data_is_doubt_and_settled_by_the_person(
        make_engine, mailserver, old_user, new_user, smtp_server):
    people = StandIn(notice=[person("slow@example.net"), person("next@example.net")])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people)
    eng.notices.postman.data_timeout = 1.0          # stands for RFC 5321's 10 minutes
    smtp_server.reply_delay = 2.5
    first = await eng.notices.send("notice", limit=1)
    assert first.tally.doubt == 1 and "--settle" in " ".join(first.lines())
    row = await eng.notices.ledger.find("notice", "slow@example.net")
    assert row.state == "doubt" and "no reply within 1 s" in row.reply
    smtp_server.reply_delay = 0.0
    await asyncio.sleep(2.0)                         # the late 250 comes meanwhile
    # nothing sends it again: not a rerun, not a restart check
    second = await eng.notices.send("notice")
    await eng.notices.reconcile()
    assert second.tally.sent == 1 and len(sent_to(smtp_server, "slow@example.net")) == 1
    assert (await eng.notices.status(scan=False)).doubts[0].address == "slow@example.net"
    # the person says it did not arrive: sent again, same Message-ID
    again = await eng.notices.settle("slow@example.net", delivered=False)
    raws = sent_to(smtp_server, "slow@example.net")
    assert again.state == "sent" and len(raws) == 2
    assert raws[0].split(b"Message-ID:")[1][:60] == raws[1].split(b"Message-ID:")[1][:60]
    with pytest.raises(Exception, match="in doubt"):
        await eng.notices.settle("slow@example.net", delivered=True)


async def test_doubt_settled_by_the_sent_folder_of_a_provider_that_files_it(
        make_engine, mailserver, old_user, new_user, smtp_server):
    mailserver.append(new_user, "Sent", b"Subject: older\r\n\r\nx\r\n")
    smtp_server.files_sent = True                    # as Gmail and Outlook do
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, StandIn(notice=[person("g@example.net")]))
    eng.notices.postman.data_timeout = 1.0
    smtp_server.reply_delay = 2.5
    assert (await eng.notices.send("notice")).tally.doubt == 1
    assert await eng.notices.reconcile() == 1
    row = await eng.notices.ledger.find("notice", "g@example.net")
    assert row.state == "sent" and "Sent" in row.reply and smtp_server.taken == 1


async def test_4xx_slows_down_then_goes_on(make_engine, mailserver, old_user, new_user, smtp_server):
    smtp_server.fail_data = "451 4.7.0 Try again later, too many messages"

    clock = SimClock()

    def server_recovers(seconds: float) -> None:      # a minute of (simulated) patience
        if sum(clock.slept) >= 60:
            smtp_server.fail_data = None

    clock.on_sleep = server_recovers
    people = StandIn(notice=[person(f"p{i}@example.net") for i in range(3)])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people, clock)
    result = await eng.notices.send("notice")
    assert (result.tally.sent, result.tally.retried, result.stopped) == (3, 1, "")
    assert sum(clock.slept) >= 60 and smtp_server.taken == 3
    assert [r[1][0] for r in smtp_server.messages] == ["p0@example.net", "p1@example.net", "p2@example.net"]


async def test_policy_refusal_stops_with_one_sentence_and_keeps_the_rest_queued(
        make_engine, mailserver, old_user, new_user, smtp_server):
    smtp_server.fail_data = "550 5.7.1 Message rejected: sending limit exceeded for this account"
    people = StandIn(notice=[person(f"p{i}@example.net") for i in range(3)])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people)
    result = await eng.notices.send("notice")
    assert result.stopped and result.exit_code == 1 and result.tally.sent == 0
    assert "5.7.1" in result.stopped and "stays queued" in result.stopped and "\n" not in result.stopped
    assert (await eng.notices.status(scan=False)).counts("notice") == {"queued": 3}
    smtp_server.fail_data = None
    assert (await eng.notices.send("notice")).tally.sent == 3


async def test_refused_login_stops_exit_3(make_engine, mailserver, old_user, new_user, smtp_server):
    smtp_server.passwords = {new_user.username: "not-this-one"}
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, StandIn(notice=[person("a@example.net")]))
    result = await eng.notices.send("notice")
    assert result.exit_code == 3 and "login" in result.stopped
    assert (await eng.notices.ledger.find("notice", "a@example.net")).state == "queued"


async def test_refused_recipient_is_bounced_and_the_campaign_goes_on(
        make_engine, mailserver, old_user, new_user, smtp_server):
    smtp_server.reject["gone@example.net"] = "550 5.1.1 <gone@example.net>: Recipient address rejected"
    people = StandIn(notice=[person("gone@example.net"), person("here@example.net")])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people)
    result = await eng.notices.send("notice")
    assert (result.tally.bounced, result.tally.sent) == (1, 1)
    status = await eng.notices.status(scan=False)
    assert status.bounced[0].address == "gone@example.net" and "5.1.1" in status.bounced[0].words


# -- a real process killed mid-campaign ---------------------------------------------------------

async def test_kill_9_mid_campaign_then_rerun_sends_nobody_twice(make_engine, tmp_path, mailserver, old_user,
                                                                 new_user, smtp_server):
    people = StandIn(notice=[person(f"k{i}@example.net") for i in range(5)])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people)
    cfg = eng.config.path
    smtp_server.reply_delay = 30.0                   # the 2nd message: taken, never answered in time
    proc = notify_cli(tmp_path, cfg, people, "--send", "--yes")
    end = time.monotonic() + 30
    while smtp_server.taken < 1 and time.monotonic() < end:
        await asyncio.sleep(0.05)
    assert smtp_server.taken == 1, proc.stdout.read() if proc.poll() is not None else "not taken"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    smtp_server.release()
    smtp_server.reply_delay = 0.0

    rerun = notify_cli(tmp_path, cfg, people, "--send", "--yes")
    out, _ = rerun.communicate(timeout=60)
    assert rerun.returncode == 1, out                # one in doubt: said, exit 1
    assert "sent 4" in out and "1 notice(s) of this campaign are in doubt" in out and "0 still queued" in out
    for i in range(5):
        assert len(sent_to(smtp_server, f"k{i}@example.net")) == 1, i
    row = await eng.notices.ledger.find("notice", "k0@example.net")
    assert row.state == "doubt"
    settle = notify_cli(tmp_path, cfg, people, "--settle", "k0@example.net", "--delivered")
    out, _ = settle.communicate(timeout=30)
    assert settle.returncode == 0 and "sent" in out, out
    assert smtp_server.taken == 5


async def test_ctrl_c_stops_at_a_safe_point_and_the_rerun_goes_on(make_engine, tmp_path, mailserver, old_user,
                                                                   new_user, smtp_server):
    people = StandIn(notice=[person(f"c{i}@example.net") for i in range(4)])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people, per_hour=3600)   # one a second
    proc = notify_cli(tmp_path, eng.config.path, people, "--send", "--yes")
    end = time.monotonic() + 30
    while smtp_server.taken < 1 and time.monotonic() < end:
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in out, out
    counts = (await eng.notices.status(scan=False)).counts("notice")
    assert counts.get("sending", 0) == 0 and counts["sent"] == smtp_server.taken < 4
    rerun = notify_cli(tmp_path, eng.config.path, people, "--send", "--yes")
    out, _ = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, out
    assert all(len(sent_to(smtp_server, f"c{i}@example.net")) == 1 for i in range(4))


async def test_a_row_left_before_the_data_went_out_is_queued_again(make_engine, mailserver, old_user, new_user,
                                                                   smtp_server):
    """A process that died after claiming a row but before any data left: nothing was
    sent, so the next run sends it (once)."""
    import subprocess
    import sys
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, StandIn(notice=[person("d@example.net")]))
    await eng.notices.plan("notice")
    row = await eng.notices.ledger.find("notice", "d@example.net")
    assert await eng.notices.ledger.claim(row.id) is not None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    await eng.store.run("UPDATE notices SET claimed_by=? WHERE id=?", (dead.pid, row.id))   # as a killed run left it
    result = await eng.notices.send("notice")
    assert result.tally.sent == 1 and len(sent_to(smtp_server, "d@example.net")) == 1


async def test_pause_holds_the_campaign_until_resumed(make_engine, mailserver, old_user, new_user, smtp_server):
    people = StandIn(notice=[person(f"w{i}@example.net") for i in range(8)])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people)
    task = asyncio.create_task(eng.notices.send("notice"))
    end = time.monotonic() + 20
    while smtp_server.taken < 1 and time.monotonic() < end:
        await asyncio.sleep(0.01)
    assert eng.notices.pause() and eng.notices.run.paused
    await asyncio.sleep(1.0)
    held = smtp_server.taken
    await asyncio.sleep(1.0)
    assert smtp_server.taken == held < 8 and not task.done()
    assert eng.notices.pause() and not eng.notices.run.paused           # p again: go on
    result = await asyncio.wait_for(task, 20)
    assert result.tally.sent == 8 and smtp_server.taken == 8
    with pytest.raises(Exception, match="already sending"):
        eng.notices._starting = True
        await eng.notices.send("notice")
    eng.notices._starting = False
