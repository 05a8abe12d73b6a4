"""Issue 9.5 (the forward side): a forward and the migration never both put one message
into the new INBOX. Each forward records its place in ``placements`` before its APPEND
and stands down for a copy the migration made or is making (in this or another process).
"""

from __future__ import annotations

import asyncio
import email
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from switchover.core.mail.identity import identity_of
from tests.support.arrivals import TRANSITION, add_arrival, inbox, make_mail, message
from tests.support.servers import write_config

ROOT = Path(os.path.abspath(__file__)).parents[2]
pytestmark = pytest.mark.timeout(120)


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


async def _placement(eng: Any, identity: str, *, pid: int, state: str = "sending", owner: str = "migrate",
                     ref: str = "m1", started: float | None = None, uid: int | None = None) -> int:
    """A row as another writer (the migration of another process) leaves it."""
    return await eng.store.execute(
        "INSERT INTO placements(folder, identity, owner, ref, pid, host, state, started, uid) "
        "VALUES('INBOX', ?, ?, ?, ?, 'test', ?, ?, ?)",
        (identity, owner, ref, pid, state, time.time() if started is None else started, uid))


async def test_forward_waits_for_a_migration_placing_the_same_message(make_engine, mailserver, old_user,
                                                                      new_user, smtp_server):
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION)
    sleeper = subprocess.Popen(["sleep", "60"])       # the migrating process, alive
    try:
        aid = await add_arrival(eng, mailserver, old_user, message(old_user.address))
        original = inbox(mailserver, old_user)[-1]
        identity = identity_of(original)
        pid_row = await _placement(eng, identity, pid=sleeper.pid)
        action = await eng.actions.request(aid, "forward", delay=0)
        assert await eng.actions.run_due() == 1
        row = await eng.actions.get(action)
        assert row.state == "pending" and "migration" in row.outcome, row.outcome
        assert row.attempts == 0                     # waiting is not a failed attempt
        assert inbox(mailserver, new_user) == []     # nothing appended beside the migration's batch
        # the migration's batch lands and is settled
        uid = mailserver.append(new_user, "INBOX", original)
        await eng.store.execute("UPDATE placements SET state='placed', uid=?, settled=? WHERE id=?",
                                (uid, time.time(), pid_row))
        await eng.store.execute("UPDATE actions SET not_before=0 WHERE id=?", (action,))
        assert await eng.actions.run_due() == 1
        row = await eng.actions.get(action)
        assert row.state == "done" and "copied by the migration" in row.outcome, row.outcome
        assert inbox(mailserver, new_user) == [original]
        arrival = await eng.store.fetchone("SELECT identity, state FROM arrivals WHERE id=?", (aid,))
        assert arrival["identity"] == identity and arrival["state"] == "handled"
    finally:
        sleeper.kill()
        sleeper.wait()


async def test_dead_writers_place_is_checked_on_the_server(make_engine, mailserver, old_user, new_user,
                                                           smtp_server):
    """A placement left 'sending' by a dead process: the server says whether its APPEND
    landed; the forward appends only when it did not."""
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION)
    # 1. the dead migration's append did land: the forward appends nothing
    a1 = await add_arrival(eng, mailserver, old_user, message(old_user.address, subject="landed"))
    landed = inbox(mailserver, old_user)[-1]
    await _placement(eng, identity_of(landed), pid=_dead_pid(), started=time.time() - 60)
    mailserver.append(new_user, "INBOX", landed)
    f1 = await eng.actions.request(a1, "forward", delay=0)
    await eng.actions.run_due()
    row = await eng.actions.get(f1)
    assert row.state == "done" and "interrupted migration" in row.outcome, row.outcome
    # 2. it did not land: the forward places it, once
    a2 = await add_arrival(eng, mailserver, old_user, message(old_user.address, subject="lost"))
    lost = inbox(mailserver, old_user)[-1]
    await _placement(eng, identity_of(lost), pid=_dead_pid(), started=time.time() - 60, ref="m2")
    f2 = await eng.actions.request(a2, "forward", delay=0)
    await eng.actions.run_due()
    assert (await eng.actions.get(f2)).state == "done"
    # 3. a dead process's own forward of this very action, cut off after its APPEND
    a3 = await add_arrival(eng, mailserver, old_user, message(old_user.address, subject="own"))
    own = inbox(mailserver, old_user)[-1]
    f3 = await eng.actions.request(a3, "forward", delay=0)
    await _placement(eng, identity_of(own), pid=_dead_pid(), owner="forward", ref=str(f3),
                     started=time.time() - 60)
    mailserver.append(new_user, "INBOX", own)
    await eng.actions.run_due()
    row = await eng.actions.get(f3)
    assert row.state == "done" and "found after an interruption" in row.outcome, row.outcome
    assert Counter(inbox(mailserver, new_user)) == Counter([landed, lost, own])
    placed = await eng.store.fetchall("SELECT owner, state FROM placements WHERE owner='forward'")
    assert [r["state"] for r in placed] == ["placed", "placed"]
    # a second forward of the same message (another press, another arrival row) stands down
    await eng.store.execute("UPDATE actions SET state='cancelled' WHERE id=?", (f2,))
    again = await eng.actions.request(a2, "forward", delay=0)
    await eng.actions.run_due()
    row = await eng.actions.get(again)
    assert row.state == "done" and "already in the new INBOX" in row.outcome, row.outcome
    assert len(inbox(mailserver, new_user)) == 3


def _mids(mailserver: Any, user: Any) -> Counter:
    return Counter(email.message_from_bytes(raw)["Message-ID"] for raw in mailserver.messages(user, "INBOX"))


async def test_watch_and_migrate_together_place_each_message_once(tmp_path, make_engine, mailserver, old_user,
                                                                  new_user, smtp_server):
    """The issue's case: arrivals forwarded (automatic rule) while `switchover migrate`
    copies the same INBOX in another process; then a rerun of the migration. Every
    message is in the new INBOX exactly once."""
    history = [make_mail(f"h{i}@customer.com", old_user.address, f"history {i}") for i in range(200)]
    mailserver.append_many(old_user, "INBOX", history)
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition={**TRANSITION, "auto_forward": True})
    # the migration's process (same state file): small batches, one lane, so the arrivals
    # (the highest UIDs) go in its last batch
    write_config(tmp_path / "so.yaml", old_user=old_user, new_user=new_user, server=mailserver,
                 smtp=smtp_server, transition={"auto_forward": True},
                 migration={"batch_messages": 10, "connections": 1})
    assert await eng.monitor.catch_up() == 0          # the watch baselines before the arrivals
    for i in range(30):
        await asyncio.to_thread(mailserver.deliver, old_user,
                                make_mail(f"Buyer {i} <b{i}@customer.com>", old_user.address, f"order {i}"))
    assert await eng.monitor.catch_up() == 30         # recorded; their forwards are due
    proc = subprocess.Popen([sys.executable, "-m", "switchover", "--config", str(tmp_path / "so.yaml"),
                             "migrate"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        # forward as soon as the migration has read INBOX and begins to copy it
        end = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < end:
            if await eng.store.scalar("SELECT state FROM folders WHERE side='old' AND name='INBOX'") == "copying":
                break
            await asyncio.sleep(0.02)
        while await eng.store.scalar("SELECT COUNT(*) FROM actions WHERE state IN ('pending', 'running')"):
            await eng.actions.run_due()
            await asyncio.sleep(0.2)
            assert time.monotonic() < end, "forwards did not finish"
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    rerun = subprocess.run([sys.executable, "-m", "switchover", "--config", str(tmp_path / "so.yaml"),
                            "migrate"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    states = Counter(r["state"] for r in await eng.store.fetchall("SELECT state FROM actions"))
    assert states == {"done": 30}, states
    got = _mids(mailserver, new_user)
    assert got == _mids(mailserver, old_user), {k: v for k, v in got.items() if v != 1}
    assert set(got.values()) == {1} and sum(got.values()) == 230
