"""The migration against real servers: byte-exact copies, multisets, reruns, crashes,
dropped connections, refusals, UIDVALIDITY changes (issue 2 "The copy")."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from switchover.core.errors import AuthError
from switchover.core.events import FolderProgress, JobProgress, LogLine
from switchover.core.net.wire import Wire
from tests.support.mailboxes import bulk, contents, count, expected, msg, seed, tricky, via_proxy
from tests.support.proxy import Proxy
from tests.support.servers import write_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


# -- tests ------------------------------------------------------------------------------------
async def test_copy_is_exact_and_rerun_copies_nothing(make_engine: Any, mailserver: Any) -> None:
    mailserver.require("courier", "multiappend")
    old = mailserver.add_user("old", courier=True)   # INBOX. prefix, "." separator
    new = mailserver.add_user("new")                 # "/" separator
    corpus = tricky()
    seed(mailserver, old, "INBOX", corpus)
    seed(mailserver, old, "INBOX.客户.2024", corpus[:5])
    seed(mailserver, old, "INBOX.Sent", corpus[5:])
    # an earlier upload (e.g. Foxmail) already put two of them into the new mailbox
    seed(mailserver, new, "INBOX", [corpus[1], corpus[6]])
    eng = await make_engine(old, new)
    events: list[Any] = []
    eng.subscribe(events.append)
    plan = await eng.migration.plan()
    by_src = {f.source: f for f in plan.folders}
    assert by_src["INBOX.客户.2024"].destination == "客户/2024"
    assert by_src["INBOX"].messages == len(corpus)
    assert by_src["INBOX"].bytes >= sum(len(m[0]) for m in corpus)   # RFC822.SIZE counts CRLF

    s = await eng.migration.run()
    assert s.ok, (s.errors, s.refused)
    assert s.errors == [] and s.refused == []
    assert s.already_there == 2
    assert s.transferred == 2 * len(corpus) - 2
    for src_name, dst_name, part in (("INBOX", "INBOX", corpus), ("INBOX.客户.2024", "客户/2024", corpus[:5]),
                                     ("INBOX.Sent", "Sent", corpus[5:])):
        # the destination serves exactly what the source serves (Dovecot itself
        # serves a stored bare LF as CRLF, so compare with the source, not the input)
        got = contents(mailserver, new, dst_name)
        assert got == contents(mailserver, old, src_name), dst_name
        assert sum(got.values()) == len(part)
    assert eng.migration.state == "done"
    assert any(isinstance(e, FolderProgress) and e.state == "done" for e in events)
    assert any(isinstance(e, JobProgress) for e in events)

    rows = await eng.store.fetchall("SELECT state, COUNT(*) FROM messages GROUP BY state")
    assert dict((r[0], r[1]) for r in rows) == {"copied": s.transferred, "present": 2}
    folder_rows = {r.source: r for r in await eng.migration.folder_rows()}
    assert folder_rows["INBOX"].state == "done"
    assert folder_rows["INBOX"].done_messages == len(corpus)

    t = time.monotonic()
    again = await eng.migration.run()
    assert again.transferred == 0 and again.ok
    assert again.already_there == 2 * len(corpus)
    assert time.monotonic() - t < 2.0
    assert contents(mailserver, new, "INBOX") == contents(mailserver, old, "INBOX")

    report = await eng.migration.verify()
    assert report.ok and report.missing == 0 and report.extra == 0
    assert all(not f.flags_changed and not f.dates_changed for f in report.folders)


async def test_huge_message_is_byte_identical(make_engine: Any, mailserver: Any, old_user: Any,
                                              new_user: Any) -> None:
    chunk = b"".join(b"%07d attachment line with some text ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n" % i
                     for i in range(1000))
    body = chunk * (20 * 2**20 // len(chunk) + 1)
    big = (msg(99, body=body), b"\\Seen", b"08-Aug-2023 08:00:00 +0000")
    small = bulk(20)
    seed(mailserver, old_user, "INBOX", [big] + small)
    eng = await make_engine(old_user, new_user)
    s = await eng.migration.run()
    assert s.ok and s.transferred == 21
    assert contents(mailserver, new_user, "INBOX") == expected([big] + small)


async def test_dry_run_writes_nothing(make_engine: Any, mailserver: Any, old_user: Any,
                                      new_user: Any) -> None:
    seed(mailserver, old_user, "Work/Projects", bulk(5))
    eng = await make_engine(old_user, new_user)
    s = await eng.migration.run(dry_run=True)
    assert s.dry_run and s.transferred == 0 and s.messages == 5
    c = mailserver.client(new_user)
    names = {n for _, _, n in c.list_folders()}
    c.logout()
    assert "Work/Projects" not in names
    assert count(mailserver, new_user, "INBOX") == 0


async def test_wrong_password_is_auth_error(make_engine: Any, mailserver: Any, old_user: Any,
                                            new_user: Any) -> None:
    seed(mailserver, old_user, "INBOX", bulk(3))
    eng = await make_engine(old_user, new_user,
                            new={"password": "wrong-password"})
    with pytest.raises(AuthError) as err:
        await eng.migration.run()
    assert err.value.exit_code == 3
    assert "refused the login" in str(err.value)
    assert await eng.store.fetchall("SELECT * FROM runs") == []
    assert await eng.store.fetchall("SELECT * FROM messages") == []


async def test_refused_message_is_recorded_and_the_rest_copied(
        make_engine: Any, mailserver: Any, old_user: Any) -> None:
    mailserver.require("quota")
    new = mailserver.add_user("new", max_message_kb=64)
    big = (msg(500, body=b"z" * 200_000 + b"\r\n", subject="too big"), b"", b"09-Sep-2023 09:00:00 +0000")
    small = bulk(30)
    seed(mailserver, old_user, "INBOX", small[:15] + [big] + small[15:])
    eng = await make_engine(old_user, new)
    s = await eng.migration.run()
    assert not s.ok
    assert s.transferred == 30
    assert len(s.refused) == 1
    ref = s.refused[0]
    assert ref.folder == "INBOX" and ref.subject == "too big 500" and ref.size == len(big[0])
    assert ref.reason and ("size" in ref.reason.lower() or "big" in ref.reason.lower()
                           or "quota" in ref.reason.lower())
    assert contents(mailserver, new, "INBOX") == expected(small)
    row = await eng.store.fetchone("SELECT state, reason FROM messages WHERE state='refused'")
    assert row["reason"] == ref.reason
    report = await eng.migration.verify()
    assert not report.ok and report.missing == 1


async def test_connection_dropped_mid_transfer(make_engine: Any, mailserver: Any, old_user: Any,
                                               new_user: Any) -> None:
    corpus = bulk(300, size=4000) + bulk(3, tag="dup")[:1] * 2
    seed(mailserver, old_user, "INBOX", corpus)
    with Proxy(mailserver.host, mailserver.imap_port, delay=0.003) as proxy:
        eng = await make_engine(old_user, new_user, old=via_proxy(proxy),
                                new=via_proxy(proxy), migration={"batch_messages": 5})
        logs: list[str] = []
        eng.subscribe(lambda e: logs.append(e.text) if isinstance(e, LogLine) else None)
        try:
            t0 = time.monotonic()
            task = asyncio.create_task(eng.migration.run())
            deadline = time.monotonic() + 30
            while count(mailserver, new_user, "INBOX") < 20 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert not task.done()
            assert proxy.drop_all() > 0
            s = await asyncio.wait_for(task, 60)
            print(time.monotonic() - t0, logs)
            assert s.ok, s.errors
            assert any("reconnecting" in line for line in logs)
        finally:
            await eng.close()
    assert contents(mailserver, new_user, "INBOX") == expected(corpus)


KILL_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, {root!r})
    from switchover.core.config import load_config
    from switchover.core.engine import Engine
    async def main():
        eng = await Engine.open(load_config({cfg!r}))
        await eng.migration.run()
        await eng.close()
    asyncio.run(main())
""")


async def test_kill_9_and_resume(make_engine: Any, tmp_path: Path, mailserver: Any, old_user: Any,
                                 new_user: Any) -> None:
    corpus = bulk(400, size=3000) + bulk(2, tag="twice") * 2
    seed(mailserver, old_user, "INBOX", corpus)
    seed(mailserver, old_user, "Archive/2023", corpus[:50])
    with Proxy(mailserver.host, mailserver.imap_port, delay=0.004) as proxy:
        cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                           server=mailserver, old=via_proxy(proxy), new=via_proxy(proxy),
                           migration={"batch_messages": 4})
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(root=str(ROOT), cfg=str(cfg))])
        try:
            deadline = time.monotonic() + 30
            n = 0
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    n = count(mailserver, new_user, "INBOX")
                except Exception:
                    n = 0
                if n >= 60:
                    break
                time.sleep(0.005)
            assert proc.poll() is None, "the migration finished before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
    assert 0 < count(mailserver, new_user, "INBOX") < len(corpus)
    eng = await make_engine(old_user, new_user)       # the same state file, no proxy
    s = await eng.migration.run()
    assert s.ok, s.errors
    assert s.already_there > 0
    assert contents(mailserver, new_user, "INBOX") == expected(corpus)
    assert contents(mailserver, new_user, "Archive/2023") == expected(corpus[:50])


async def test_uidvalidity_change_reidentifies(make_engine: Any, mailserver: Any, old_user: Any,
                                               new_user: Any) -> None:
    corpus = bulk(40)
    seed(mailserver, old_user, "Projects", corpus)
    eng = await make_engine(old_user, new_user)
    s = await eng.migration.run()
    assert s.ok and s.transferred == 40
    # the source folder is recreated (new UIDVALIDITY), and so is the destination
    for user in (old_user, new_user):
        c = mailserver.client(user)
        c.select_folder("Projects")
        before = c.folder_status("Projects", ["UIDVALIDITY"])[b"UIDVALIDITY"]
        c.close_folder()
        c.delete_folder("Projects")
        c.logout()
        time.sleep(1.1)   # Dovecot derives UIDVALIDITY from the clock
        seed(mailserver, user, "Projects", corpus)
        c = mailserver.client(user)
        assert c.folder_status("Projects", ["UIDVALIDITY"])[b"UIDVALIDITY"] != before
        c.logout()
    again = await eng.migration.run()
    assert again.ok and again.transferred == 0 and again.already_there == 40
    assert contents(mailserver, new_user, "Projects") == expected(corpus)


async def test_pause_resume_and_cancel(make_engine: Any, mailserver: Any, old_user: Any,
                                       new_user: Any) -> None:
    corpus = bulk(300, size=2000)
    seed(mailserver, old_user, "INBOX", corpus)
    with Proxy(mailserver.host, mailserver.imap_port, delay=0.003) as proxy:
        eng = await make_engine(old_user, new_user, old=via_proxy(proxy),
                                new=via_proxy(proxy), migration={"batch_messages": 5})
        try:
            mig = eng.migration
            task = asyncio.create_task(mig.run())
            while count(mailserver, new_user, "INBOX") < 10:
                await asyncio.sleep(0.01)
            mig.pause()
            # the batches in flight finish first ("pausing"), then nothing goes out
            assert mig.state in ("pausing", "paused")
            await asyncio.sleep(0.3)
            assert mig.state == "paused"
            n1 = count(mailserver, new_user, "INBOX")
            await asyncio.sleep(0.4)
            assert count(mailserver, new_user, "INBOX") == n1   # in-flight batches finished
            rows = await mig.folder_rows()
            assert rows[0].state == "paused"
            mig.resume()
            await asyncio.sleep(0.05)
            mig.cancel()
            s = await asyncio.wait_for(task, 30)
            assert s.cancelled and not s.ok
            assert mig.state == "idle"
            assert count(mailserver, new_user, "INBOX") < len(corpus)
            s2 = await mig.run()
            assert s2.ok
        finally:
            await eng.close()
    assert contents(mailserver, new_user, "INBOX") == expected(corpus)


async def test_gmail_all_mail_carries_only_unlabelled_mail(make_engine: Any, mailserver: Any,
                                                           old_user: Any, new_user: Any) -> None:
    m = {i: (msg(100 + i, subject="g"), b"\\Seen", b"01-Feb-2024 10:00:00 +0000") for i in range(5)}
    seed(mailserver, old_user, "INBOX", [m[1], m[2]])
    seed(mailserver, old_user, "Customers", [m[2], m[3]])
    seed(mailserver, old_user, "[Gmail]/All Mail", [m[1], m[2], m[3], m[4], m[4]])
    seed(mailserver, old_user, "[Gmail]/Important", [m[1]])
    eng = await make_engine(old_user, new_user, old={"provider": "gmail"})
    events: list[Any] = []
    eng.subscribe(events.append)
    plan = await eng.migration.plan()
    roles = {f.source: f for f in plan.folders}
    assert roles["[Gmail]/All Mail"].role == "all_mail"
    assert roles["[Gmail]/Important"].role == "skip"
    all_dst = roles["[Gmail]/All Mail"].destination
    s = await eng.migration.run()
    assert s.ok, s.errors
    assert s.transferred == 2 + 2 + 2          # INBOX, Customers, and m4 twice
    assert contents(mailserver, new_user, "INBOX") == expected([m[1], m[2]])
    assert contents(mailserver, new_user, "Customers") == expected([m[2], m[3]])
    assert contents(mailserver, new_user, all_dst) == expected([m[4], m[4]])
    c = mailserver.client(new_user)
    assert not any("Important" in n for _, _, n in c.list_folders())
    c.logout()
    report = await eng.migration.verify()
    assert report.ok, report.text()
    # progress events are coalesced: a handful per folder, not one per message
    per_folder = Counter(e.source for e in events if isinstance(e, FolderProgress))
    assert per_folder and max(per_folder.values()) < 30


async def test_without_multiappend_or_literal_plus(make_engine: Any, mailserver: Any, old_user: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers like Gmail / Outlook offer neither: single APPENDs, synchronizing literals."""
    mailserver.require("quota")
    real_init = Wire.__init__

    def plain_init(self: Wire, client: Any) -> None:
        real_init(self, client)
        self.has_multiappend = False
        self.literal_plus = False

    monkeypatch.setattr(Wire, "__init__", plain_init)
    new = mailserver.add_user("new", max_message_kb=64)
    big = (msg(600, body=b"q" * 100_000 + b"\r\n", subject="too big"), b"", b"09-Sep-2023 09:00:00 +0000")
    corpus = tricky() + [big]
    seed(mailserver, old_user, "Work", corpus)
    eng = await make_engine(old_user, new)
    s = await eng.migration.run()
    assert s.transferred == len(corpus) - 1
    assert [r.subject for r in s.refused] == ["too big 600"]
    got = contents(mailserver, new, "Work")
    want = contents(mailserver, old_user, "Work")
    big_key = next(k for k in want if k[0].startswith(big[0][:60]) and b"too big" in k[0])
    del want[big_key]
    assert got == want
    again = await eng.migration.run()
    assert again.transferred == 0 and len(again.refused) == 1


@pytest.mark.parametrize("connections", [1, 3])
async def test_connection_cap_is_respected(make_engine: Any, mailserver: Any, old_user: Any,
                                           new_user: Any, connections: int) -> None:
    corpus = bulk(120)
    seed(mailserver, old_user, "INBOX", corpus[:60])
    seed(mailserver, old_user, "Sales", corpus[60:])
    with Proxy(mailserver.host, mailserver.imap_port) as proxy:
        eng = await make_engine(old_user, new_user, old=via_proxy(proxy),
                                new=via_proxy(proxy),
                                migration={"connections": connections, "batch_messages": 7})
        try:
            s = await eng.migration.run()
            assert s.ok and s.transferred == 120
        finally:
            await eng.close()
        assert proxy.connections_total == 2 * connections    # per side: the cap, no more
    assert contents(mailserver, new_user, "Sales") == expected(corpus[60:])
