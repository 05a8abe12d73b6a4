"""The fault suite of the migration (issue 9): exactly once under every fault, against
the real loopback server through tests/proxy.py.

- two migrations of one pair at once: the second refuses, naming the first;
- kill -9 mid-batch on a slow link, rerun at once, several times: the batch the dead
  process had in flight lands late, and is neither lost nor doubled;
- a link that drops more often than one batch: batches shrink, progress is kept, and
  what this run copied is counted as copied (not "already there");
- a listing shorter than the server's own count (EXISTS) is an error, never "done".

Each test takes seconds (the kill loop ~15 s); none is skipped by default.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import switchover.core.migrate.flow as flow
from tests.support.proxy import Proxy
from tests.support.servers import write_config
from tests.support.mailboxes import bulk, contents, count, expected, seed, via_proxy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def cli(cfg: Path, *argv: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHOVER_CONFIG"}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen([sys.executable, "-m", "switchover", "--config", str(cfg), *argv],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(cond: Any, timeout: float, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the migration ended early: {proc.communicate()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def safe_count(server: Any, user: Any, folder: str = "INBOX") -> int:
    try:
        return count(server, user, folder)
    except Exception:
        return 0


# -- 9.3 -----------------------------------------------------------------------------------------
def test_a_second_migration_of_the_same_pair_refuses_and_names_the_first(
        tmp_path: Path, mailserver: Any, old_user: Any, new_user: Any) -> None:
    corpus = bulk(400, size=3000)
    seed(mailserver, old_user, "INBOX", corpus)
    # a slow upload keeps the first one busy for a few seconds
    with Proxy(mailserver.host, mailserver.imap_port, rate_up=150_000) as proxy:
        cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                           server=mailserver, old=via_proxy(proxy), new=via_proxy(proxy),
                           migration={"batch_messages": 5})
        first = cli(cfg, "migrate")
        try:
            wait_for(lambda: safe_count(mailserver, new_user) >= 5, 30, first)
            second = cli(cfg, "migrate")
            out, err = second.communicate(timeout=60)
            assert first.poll() is None, "the first migration ended before the second asked"
            assert second.returncode == 4, out + err
            assert "Traceback" not in out + err
            lines = [ln for ln in err.splitlines() if ln.strip()]
            assert len(lines) == 1 and f"process {first.pid}" in lines[0], err
            assert "already migrating" in lines[0]
            out, err = first.communicate(timeout=90)
            assert first.returncode == 0, out + err
        finally:
            for p in (first,):
                if p.poll() is None:
                    p.kill()
                    p.communicate()
    assert contents(mailserver, new_user, "INBOX") == expected(corpus)


# -- 9.4 -----------------------------------------------------------------------------------------
def test_kill_9_mid_batch_then_immediate_rerun_neither_loses_nor_doubles(
        tmp_path: Path, mailserver: Any, old_user: Any, new_user: Any) -> None:
    """Over a 400 KB/s upload a batch of ~1 MB is in flight for two seconds after the
    process died (the link's buffers hold it); the rerun starts at once and is killed in
    turn, a few times; then a run goes to the end."""
    corpus = bulk(560, size=15000)                  # ~8.4 MB, 8 batches
    seed(mailserver, old_user, "INBOX", corpus)
    with Proxy(mailserver.host, mailserver.imap_port, rate_up=400_000) as proxy:
        cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                           server=mailserver, old=via_proxy(proxy), new=via_proxy(proxy),
                           migration={"batch_messages": 70, "connections": 3})
        before = kills = 0
        for trial in range(4):
            proc = cli(cfg, "migrate")
            try:
                # kill once a batch of this run landed: the next ones are in flight
                deadline = time.monotonic() + 40
                while safe_count(mailserver, new_user) <= before and proc.poll() is None:
                    assert time.monotonic() < deadline, "nothing landed"
                    time.sleep(0.01)
                if proc.poll() is not None:
                    break
                time.sleep(0.3)
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            finally:
                proc.wait()
                proc.communicate()
            before = safe_count(mailserver, new_user)
        assert kills >= 2
        last = cli(cfg, "migrate")
        out, err = last.communicate(timeout=90)
        assert last.returncode == 0, out + err
    got = contents(mailserver, new_user, "INBOX")
    want = expected(corpus)
    doubled = sum((got - want).values())
    lost = sum((want - got).values())
    assert (doubled, lost) == (0, 0), out
    assert got == want


# -- 9.9 / 10.5 ------------------------------------------------------------------------------------
async def test_a_link_that_drops_more_often_than_one_batch_still_finishes(
        make_engine: Any, mailserver: Any, old_user: Any, new_user: Any) -> None:
    """Every connection is cut after 300 KB either way; a batch is up to 6 MB."""
    corpus = bulk(400, size=6000) + bulk(2, tag="twice") * 2      # ~2.4 MB
    seed(mailserver, old_user, "INBOX", corpus)
    with Proxy(mailserver.host, mailserver.imap_port, drop_after_bytes=300_000,
               drop_up_after_bytes=300_000) as proxy:
        eng = await make_engine(old_user, new_user, old=via_proxy(proxy),
                                new=via_proxy(proxy), migration={"batch_bytes": 6 * 2**20})
        try:
            s = await eng.migration.run()
            assert s.ok, s.errors
            # one run into an empty mailbox: everything was copied by this run
            assert s.transferred == len(corpus) and s.already_there == 0
            assert proxy.connections_total > 8        # it really was cut, many times
        finally:
            await eng.close()
    assert contents(mailserver, new_user, "INBOX") == expected(corpus)


# -- 9.1 (counts) -------------------------------------------------------------------------------------
def drop_last_search_uid(line: bytes) -> bytes:
    """A server (or middlebox) that loses the tail of a SEARCH answer."""
    if line.startswith(b"* SEARCH ") and b" " in line[9:]:
        return line.rstrip(b"\r\n").rsplit(b" ", 1)[0] + b"\r\n"
    return line


async def test_a_listing_short_of_the_servers_count_is_an_error(
        make_engine: Any, mailserver: Any, old_user: Any, new_user: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = bulk(40)
    seed(mailserver, old_user, "INBOX", corpus)
    monkeypatch.setattr(flow, "CHUNK", 10)     # the big-folder path: UID SEARCH first
    with Proxy(mailserver.host, mailserver.imap_port, rewrite_down=drop_last_search_uid) as proxy:
        eng = await make_engine(old_user, new_user, old=via_proxy(proxy))
        try:
            s = await eng.migration.run()
            assert not s.ok
            assert any("counts 40 messages in INBOX but listed 39" in e for e in s.errors), s.errors
            rows = {r.source: r for r in await eng.migration.folder_rows()}
            assert rows["INBOX"].state == "errors"
            report = await eng.migration.verify()
            assert not report.ok and report.unreadable == ["INBOX"]
            assert "could not be read completely" in report.describe()
        finally:
            await eng.close()


# -- 9.4: a landing later than every read of the run ---------------------------------------------
async def test_a_late_landing_is_settled_and_its_extra_copy_removed(
        make_engine: Any, mailserver: Any, old_user: Any, new_user: Any) -> None:
    """An append left unsettled by an earlier run (recorded 'sending', never settled) that
    lands only after this run copied the message again: the next run finds the landing,
    settles it, and removes the extra copy — one it placed itself."""
    from switchover.core.mail.identity import identity_of
    corpus = bulk(10)
    seed(mailserver, old_user, "INBOX", corpus)
    late = corpus[3]
    eng = await make_engine(old_user, new_user)
    eng.migration.landing_grace = 0.5
    await eng.placements.begin("INBOX", "migrate", [(identity_of(late[0]), "x")])
    t0 = time.monotonic()
    s = await eng.migration.run()
    # it waited for the landing, which did not come, then copied the message itself
    assert s.ok and s.transferred == 10 and time.monotonic() - t0 >= 0.5
    seed(mailserver, new_user, "INBOX", [late])          # the late landing
    assert count(mailserver, new_user, "INBOX") == 11
    s2 = await eng.migration.run()
    assert s2.ok and s2.duplicates_removed == 1 and s2.transferred == 0
    assert "removed 1 extra" in (s2.headline() or "")
    row = await eng.store.fetchone("SELECT COUNT(*) FROM placements WHERE state='sending'")
    assert row[0] == 0
    s3 = await eng.migration.run()                        # settled: the fast path again
    assert s3.ok and s3.transferred == 0 and s3.duplicates_removed == 0
    assert contents(mailserver, new_user, "INBOX") == expected(corpus)


# -- 9.9 / 10.5: an APPEND that landed although its answer was lost ----------------------------------
async def test_an_append_whose_answer_was_lost_is_counted_as_copied_once(
        make_engine: Any, mailserver: Any, old_user: Any, new_user: Any) -> None:
    corpus = bulk(60)
    seed(mailserver, old_user, "INBOX", corpus)
    cuts: list[bytes] = []

    def lose_first_answers(line: bytes) -> bytes | None:
        # the server took the batch; the link dies before its OK reaches us (three times)
        if b"[APPENDUID" in line and len(cuts) < 3:
            cuts.append(line)
            return None
        return line

    with Proxy(mailserver.host, mailserver.imap_port, rewrite_down=lose_first_answers) as proxy:
        eng = await make_engine(old_user, new_user, new=via_proxy(proxy),
                                migration={"batch_messages": 10})
        try:
            s = await eng.migration.run()
            assert len(cuts) == 3
            assert s.ok, s.errors
            assert s.transferred == len(corpus) and s.already_there == 0
            rows = await eng.store.fetchall("SELECT state, COUNT(*) FROM placements GROUP BY state")
            assert {r[0]: r[1] for r in rows} == {"placed": len(corpus)}
        finally:
            await eng.close()
    assert contents(mailserver, new_user, "INBOX") == expected(corpus)
