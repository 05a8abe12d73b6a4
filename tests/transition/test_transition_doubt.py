"""Issue 9.7: a reminder (or a forward by SMTP) reaches its recipient once, or shows
"doubt" — never twice without the person deciding.

Real aiosmtpd that takes the message, then answers the end of DATA late (past a
shortened client timeout), or drops the connection instead of answering; real
``switchover remind`` / ``switchover watch`` processes killed with SIGKILL inside the
in-doubt window; Gmail-like SMTP that files what it took in Sent.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from switchover.core.events import ActionChanged
from tests.support.arrivals import TRANSITION, add_arrival, inbox, message

ROOT = Path(os.path.abspath(__file__)).parents[2]
pytestmark = pytest.mark.timeout(120)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHOVER_CONFIG"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_cli(cfg: Path, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "switchover", "--config", str(cfg), *argv],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


async def until(pred: Any, timeout: float = 20.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def sent_to(smtp_server: Any, address: str) -> list[bytes]:
    return [raw for _f, rcpts, raw in list(smtp_server.messages) if rcpts == [address]]


async def test_late_answer_to_data_is_doubt_never_a_retry(make_engine, mailserver, old_user, new_user,
                                                          smtp_server):
    """The server takes the reminder and answers after the client gave up: the action is
    "doubt", nothing retries it; the person settles it either way."""
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION)
    events: list[ActionChanged] = []
    eng.subscribe(lambda ev: events.append(ev) if isinstance(ev, ActionChanged) else None)
    eng.actions.data_timeout = 1.0          # stands for the 10 minutes of RFC 5321
    smtp_server.reply_delay = 3.0
    aid = await add_arrival(eng, mailserver, old_user,
                            message(old_user.address, sender="Li Lei <li.lei@example.com>"))
    action = await eng.actions.request(aid, "remind", delay=0)
    assert await eng.actions.run_due() == 1
    row = await eng.actions.get(action)
    assert row.state == "doubt", row.outcome
    assert "no reply within 1 s" in row.outcome and "may or may not" in row.outcome
    assert "doubt" in [e.state for e in events if e.action_id == action]
    # nothing sends it again: not the runner, not a restart check, not a new press
    await asyncio.sleep(2.5)                 # the late 250 arrives meanwhile
    assert await eng.actions.run_due() == 0
    await eng.actions.reconcile()
    assert await eng.actions.request(aid, "remind", delay=0) == action
    assert await eng.actions.run_due() == 0
    assert (await eng.actions.get(action)).state == "doubt"
    assert len(sent_to(smtp_server, "li.lei@example.com")) == 1
    # the automatic rule counts it as a reminder given
    assert (await eng.actions.remind_allowed(aid))[0] is False
    # the person saw it arrive: done, "confirmed by you"
    assert await eng.actions.resolve_doubt(action, True) == action
    row = await eng.actions.get(action)
    assert row.state == "done" and row.outcome.startswith("confirmed by you")
    corr = await eng.store.fetchone("SELECT last_reminded FROM correspondents WHERE address=?",
                                    ("li.lei@example.com",))
    assert corr["last_reminded"] > time.time() - 60
    with pytest.raises(Exception, match="not in doubt"):
        await eng.actions.resolve_doubt(action, False)


async def test_dropped_answer_then_sent_again_by_decision(make_engine, mailserver, old_user, new_user,
                                                          smtp_server):
    """The connection drops where the 250 should be: doubt. The person says it did not
    arrive: a new attempt with the same Message-ID (a copy that did arrive reads as one
    message), carried out once."""
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION)
    smtp_server.drop_after_data = True
    aid = await add_arrival(eng, mailserver, old_user,
                            message(old_user.address, sender="Bob <bob@example.org>"))
    action = await eng.actions.request(aid, "remind", delay=0)
    await eng.actions.run_due()
    row = await eng.actions.get(action)
    assert row.state == "doubt" and "connection broke" in row.outcome, row.outcome
    smtp_server.drop_after_data = False
    again = await eng.actions.resolve_doubt(action, False)
    assert again != action
    assert (await eng.actions.get(action)).state == "failed"
    assert await eng.actions.run_due() == 1
    assert (await eng.actions.get(again)).state == "done"
    assert await eng.actions.run_due() == 0
    copies = sent_to(smtp_server, "bob@example.org")
    assert len(copies) == 2                       # the person chose to send it again
    ids = {email.message_from_bytes(c)["Message-ID"] for c in copies}
    assert len(ids) == 1


async def test_gmail_like_sent_copy_settles_the_doubt(make_engine, mailserver, old_user, new_user,
                                                      smtp_server):
    """A provider whose SMTP files what it took in Sent: the Message-ID there proves it."""
    smtp_server.files_sent = True
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION, old={"provider": "gmail"})
    assert eng.account("old").provider == "gmail"
    eng.actions.data_timeout = 0.5
    smtp_server.reply_delay = 2.0
    aid = await add_arrival(eng, mailserver, old_user,
                            message(old_user.address, sender="Carol <carol@example.net>"))
    action = await eng.actions.request(aid, "remind", delay=0)
    await eng.actions.run_due()
    assert (await eng.actions.get(action)).state == "doubt"
    eng.actions.outcomes.doubt_checked.clear()          # the runner looks again every 5 minutes
    await eng.actions.reconcile()
    row = await eng.actions.get(action)
    assert row.state == "done" and "Sent" in row.outcome, row.outcome
    assert len(sent_to(smtp_server, "carol@example.net")) == 1
    # switchover adds no Sent copy of its own where the provider files one
    assert len(mailserver.messages(old_user, "Sent")) == 1


async def test_forward_by_smtp_in_doubt_found_in_new_inbox(make_engine, mailserver, old_user, new_user,
                                                           smtp_server):
    eng = await make_engine(old_user, new_user, smtp=smtp_server,
                            transition={**TRANSITION, "forward_method": "smtp"})
    eng.actions.data_timeout = 0.5
    smtp_server.reply_delay = 2.0
    aid = await add_arrival(eng, mailserver, old_user, message(old_user.address, subject="Invoice 12"))
    action = await eng.actions.request(aid, "forward", delay=0)
    await eng.actions.run_due()
    assert (await eng.actions.get(action)).state == "doubt"
    eng.actions.outcomes.doubt_checked.clear()
    await eng.actions.reconcile()
    row = await eng.actions.get(action)
    assert row.state == "done" and "new INBOX" in row.outcome, row.outcome
    assert len(inbox(mailserver, new_user)) == 1
    assert await eng.actions.run_due() == 0


async def test_kill_remind_process_inside_the_window(make_engine, mailserver, old_user, new_user,
                                                     smtp_server):
    """kill -9 of `switchover remind` after the data went out, before the answer: the next
    process finds the 'sending' mark and shows doubt instead of sending again."""
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION)
    aid = await add_arrival(eng, mailserver, old_user,
                            message(old_user.address, sender="Dana <dana@example.com>"))
    smtp_server.reply_delay = 60.0
    proc = start_cli(eng.config.path, "remind", str(aid))
    try:
        await until(lambda: smtp_server.taken >= 1, 30, "the server to take the reminder")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    (row,) = await eng.actions.for_arrival(aid)
    assert row.state == "running" and "sending" in row.outcome, row.outcome
    await eng.actions.reconcile()
    row = await eng.actions.get(row.id)
    assert row.state == "doubt", row.outcome
    assert await eng.actions.request(aid, "remind", delay=0) == row.id
    assert await eng.actions.run_due() == 0
    smtp_server.release()
    assert len(sent_to(smtp_server, "dana@example.com")) == 1


async def test_kill_watch_inside_the_window_then_restart(make_engine, mailserver, old_user, new_user,
                                                         smtp_server):
    """`switchover watch` with automatic reminders, killed while the server holds back its
    answer; a new `switchover watch` settles the action as doubt and sends nothing."""
    eng = await make_engine(old_user, new_user, smtp=smtp_server,
                            transition={**TRANSITION, "auto_remind": True, "undo_seconds": 0})
    path = eng.config.path
    procs: list[subprocess.Popen[str]] = []
    try:
        smtp_server.reply_delay = 60.0
        procs.append(start_cli(path, "watch"))
        await until(lambda: eng.store.get_setting("monitor.mark.old.INBOX"), 30, "the watch to start")
        await asyncio.to_thread(mailserver.deliver, old_user,
                                message(old_user.address, sender="Erik <erik@example.se>"), "erik@example.se")
        await until(lambda: smtp_server.taken >= 1, 30, "the automatic reminder to go out")
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        procs.append(start_cli(path, "watch"))

        async def settled() -> bool:
            row = await eng.store.fetchone("SELECT state FROM actions WHERE kind='remind'")
            return row is not None and row["state"] == "doubt"
        await until(settled, 30, "the restarted watch to settle the action")
        await asyncio.sleep(1.5)               # a few runner rounds: nothing goes out again
        assert smtp_server.taken == 1
        procs[1].send_signal(signal.SIGTERM)
        out, _ = procs[1].communicate(timeout=20)
        assert "Traceback" not in out and "never retrieved" not in out, out
        assert "doubt" in out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


async def test_settle_resend_carries_it_out_now(make_engine, mailserver, old_user, new_user, smtp_server):
    """What the faces call to settle a doubt: delivered → that action done; not delivered
    → a new attempt carried out now, its row returned."""
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION)
    smtp_server.drop_after_data = True
    first = await add_arrival(eng, mailserver, old_user, message(old_user.address, sender="Gil <gil@example.org>"))
    second = await add_arrival(eng, mailserver, old_user, message(old_user.address, sender="Hal <hal@example.org>"))
    doubts = [await eng.actions.perform(aid, "remind") for aid in (first, second)]
    assert [r.state for r in doubts] == ["doubt", "doubt"]
    smtp_server.drop_after_data = False
    kept = await eng.actions.settle(doubts[0].id, delivered=True)
    assert kept.id == doubts[0].id and kept.state == "done" and kept.outcome.startswith("confirmed by you")
    again = await eng.actions.settle(doubts[1].id, delivered=False)
    assert again.id != doubts[1].id and again.state == "done" and again.sent_message_id == doubts[1].sent_message_id
    assert len(sent_to(smtp_server, "gil@example.org")) == 1 and len(sent_to(smtp_server, "hal@example.org")) == 2
