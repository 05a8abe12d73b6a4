"""Daily byte caps (issue 3: per-provider caps respected and shown in the ETA) against a
real server, with the 24 h window shortened to a few seconds."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from switchover.core.config import load_config
from switchover.core.events import FolderProgress, JobProgress, LogLine
from switchover.core.providers import get_provider
from switchover.core.migrate.quota import Cap, DailyQuota
from tests.support.mailboxes import contents, msg, seed
from tests.support.servers import write_config

pytestmark = pytest.mark.timeout(90)


def corpus(n: int, size: int) -> list[tuple[bytes, bytes, bytes]]:
    pad = (b"q" * 70 + b"\r\n") * (size // 72)
    return [(msg(i, body=pad + f"n{i}\r\n".encode(), subject="cap"), b"\\Seen",
             b"07-Aug-2023 08:00:00 +0200") for i in range(n)]


async def test_upload_cap_waits_for_the_window_and_copies_everything_once(
        make_engine: Any, mailserver: Any) -> None:
    old, new = mailserver.add_user("qold"), mailserver.add_user("qnew")
    msgs = corpus(20, 5000)                          # ~100 KB: one cap of 60 KB is not enough
    seed(mailserver, old, "INBOX", msgs)
    window = 2.5
    eng = await make_engine(old, new,
                            new={"daily_upload_mb": 0.06}, migration={"batch_messages": 4})
    events: list[Any] = []
    eng.subscribe(events.append)
    eng.migration.quota_window = window
    t0 = time.monotonic()
    s = await eng.migration.run()
    elapsed = time.monotonic() - t0
    assert s.ok, (s.errors, s.refused)
    assert s.transferred == len(msgs)
    got = contents(mailserver, new, "INBOX")
    assert got == contents(mailserver, old, "INBOX")
    assert sum(got.values()) == len(msgs) and set(Counter(got).values()) == {1}
    waits = [e.text for e in events if isinstance(e, LogLine) and "daily upload limit" in e.text]
    assert len(waits) >= 1 and "(0.06 MB) is reached; copying resumes at" in waits[0], waits
    assert "account's" in waits[0]                   # custom provider: named by its side
    assert elapsed >= window * 0.9                     # it really waited for the window
    assert any(isinstance(e, FolderProgress) and e.state == "waiting" for e in events)
    # while waiting the ETA includes the wait (more is left than the window allows)
    etas = [e.eta_s for e in events if isinstance(e, JobProgress) and e.state == "running"
            and e.eta_s is not None]
    assert etas and max(etas) > 0.3
    # the bytes of the run are in the state file with their copy time: a second run in
    # the same window starts from them (nothing is left to copy: no wait at all)
    q = DailyQuota.for_accounts(eng.account("old"), eng.account("new"), window=3600)
    assert q is not None
    await q.load(eng.migration.ledger)
    assert q.used >= sum(len(m[0]) for m in msgs)
    t1 = time.monotonic()
    s2 = await eng.migration.run()
    assert s2.ok and s2.transferred == 0 and time.monotonic() - t1 < window


async def test_cancel_cuts_the_wait_short(make_engine: Any, mailserver: Any) -> None:
    import asyncio
    old, new = mailserver.add_user("qold"), mailserver.add_user("qnew")
    seed(mailserver, old, "INBOX", corpus(12, 5000))
    eng = await make_engine(old, new,
                            old={"daily_download_mb": 0.02}, migration={"batch_messages": 2})
    logs: list[str] = []
    eng.subscribe(lambda e: logs.append(e.text) if isinstance(e, LogLine) else None)
    eng.migration.quota_window = 60.0             # far longer than the test may take
    task = asyncio.create_task(eng.migration.run())
    for _ in range(200):
        if any("daily download limit" in t for t in logs):
            break
        await asyncio.sleep(0.05)
    assert any("daily download limit" in t for t in logs), logs
    t0 = time.monotonic()
    eng.migration.cancel()
    s = await asyncio.wait_for(task, 10)
    assert s.cancelled and time.monotonic() - t0 < 5
    assert 0 < s.transferred < 12


async def test_too_big_for_the_destination_is_refused_without_upload(
        make_engine: Any, mailserver: Any) -> None:
    old, new = mailserver.add_user("qold"), mailserver.add_user("qnew")
    small = corpus(3, 1000)
    big = (msg(99, body=b"z" * 70_000 + b"\r\n", subject="big"), b"", b"07-Aug-2023 08:00:00 +0200")
    seed(mailserver, old, "INBOX", [*small, big])
    eng = await make_engine(old, new, new={"max_message_mb": 0.05})
    s = await eng.migration.run()
    assert s.transferred == 3 and not s.ok
    assert len(s.refused) == 1 and s.refused[0].subject.startswith("big")
    assert "new account accepts per message; it was not sent" in s.refused[0].reason
    got = contents(mailserver, new, "INBOX")
    assert sum(got.values()) == 3                  # never uploaded
    rows = await eng.store.fetchall("SELECT state, reason FROM messages WHERE size > 50000")
    assert [r[0] for r in rows] == ["refused"] and "0.1 MB" in rows[0][1]


def test_config_keys_default_from_the_provider_and_override(tmp_path: Path, mailserver: Any) -> None:
    old, new = mailserver.add_user("qold"), mailserver.add_user("qnew")
    gmail = get_provider("gmail")
    path = write_config(tmp_path / "a.yaml", old_user=old, new_user=new, server=mailserver,
                        old={"provider": "gmail"}, new={"provider": "gmail", "daily_upload_mb": 0})
    cfg = load_config(path)
    assert cfg.old.daily_download_bytes == gmail.daily_download_bytes == 2500 * 10**6
    assert cfg.old.max_message_bytes == gmail.max_message_bytes
    assert cfg.new.daily_upload_bytes is None           # 0 = no limit
    q = DailyQuota.for_accounts(cfg.old, cfg.new)
    assert q is not None and q.limit == 2500 * 10**6 and q.window == 24 * 3600
    assert q.cap.sentence(time.time() + 3600).startswith("Gmail's daily download limit (2,500 MB)")

    path = write_config(tmp_path / "b.yaml", old_user=old, new_user=new, server=mailserver,
                        new={"provider": "gmail", "daily_upload_mb": 100.5, "max_message_mb": 10})
    cfg = load_config(path)
    assert cfg.new.daily_upload_bytes == 100_500_000 and cfg.new.max_message_bytes == 10**7
    # custom provider: no cap, no check
    path = write_config(tmp_path / "c.yaml", old_user=old, new_user=new, server=mailserver)
    cfg = load_config(path)
    assert cfg.old.daily_download_bytes is None and cfg.new.daily_upload_bytes is None
    assert cfg.new.max_message_bytes is None
    assert DailyQuota.for_accounts(cfg.old, cfg.new) is None


def test_eta_model() -> None:
    q = DailyQuota([Cap("new", "upload", 1000, "gmail")], window=100)
    now = 1_000_000.0
    assert q.eta(500, 10.0, now) == 50.0              # fits the window: the rate alone
    q.ledger.extend([(now - 90, 600), (now - 10, 300)])
    q.used = 900
    # 100 allowed now; 400 more wait until the first entry expires (10 s), then the rate
    assert q.eta(500, 10.0, now) == pytest.approx(10 + 50)
    # more than the whole ledger frees: one extra window
    assert q.eta(1500, 10.0, now) == pytest.approx(90 + 100 + 150)
