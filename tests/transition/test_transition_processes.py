"""Issue 9.10: the README's setup — a dashboard and a headless `switchover watch` on one
state file — under a burst of arrivals with the automatic rules on. Two real processes
(a `switchover watch` subprocess and, in this process, an engine that watches and runs
actions the way the dashboard does) share the state file: no "database is locked", no
reconnect storm, no exception left unretrieved, no arrival twice, no action left
running, every message forwarded once and every sender reminded at most once."""

from __future__ import annotations

import asyncio
import email
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from switchover.core.events import ConnectionState, LogLine
from tests.support.arrivals import TRANSITION, make_mail

ROOT = Path(os.path.abspath(__file__)).parents[2]
pytestmark = pytest.mark.timeout(180)

SENDERS = 40
PER_SENDER = 5


class Output:
    """A subprocess's output, read as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._t.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)


async def test_dashboard_and_headless_watch_share_one_state_file(make_engine, mailserver, old_user, new_user,
                                                                 smtp_server):
    eng = await make_engine(old_user, new_user, smtp=smtp_server,
                            transition={**TRANSITION, "auto_forward": True, "auto_remind": True,
                                        "undo_seconds": 0, "poll_seconds": 1})
    path = eng.config.path
    logs: list[str] = []
    reconnects: list[ConnectionState] = []

    def on_event(ev: Any) -> None:
        if isinstance(ev, LogLine) and ev.level != "info":
            logs.append(ev.text)
        if isinstance(ev, ConnectionState) and ev.state == "reconnecting":
            reconnects.append(ev)

    eng.subscribe(on_event)
    eng.monitor.learn_history = False
    proc = subprocess.Popen([sys.executable, "-m", "switchover", "--config", str(path), "watch"],
                            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Output(proc)
    stop = asyncio.Event()
    watch = asyncio.create_task(eng.monitor.run(stop))
    await eng.actions.start()
    try:
        end = time.monotonic() + 30
        while not (await eng.store.get_setting("monitor.mark.old.INBOX")
                   and "old mailbox: connected" in out.text()
                   and eng.connection_state.get("old") == "connected"):
            assert proc.poll() is None, out.text()
            assert time.monotonic() < end, "the watchers never started: " + out.text()
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)

        mails = [make_mail(f"Buyer {s} <buyer{s}@customer{s}.com>", old_user.address, f"order {s}-{n}",
                           f"Hello, please confirm order {s}-{n}. Thanks")
                 for n in range(PER_SENDER) for s in range(SENDERS)]
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            await asyncio.gather(*(asyncio.get_running_loop().run_in_executor(
                pool, mailserver.deliver, old_user, raw, "buyer@customer.com") for raw in mails))
        burst = time.monotonic() - t0

        total = len(mails)

        async def settled() -> bool:
            n = await eng.store.scalar("SELECT COUNT(*) FROM arrivals WHERE side='old'")
            busy = await eng.store.scalar(
                "SELECT COUNT(*) FROM actions WHERE state IN ('pending', 'running')")
            done = await eng.store.scalar("SELECT COUNT(*) FROM actions WHERE kind='forward' AND state='done'")
            return n == total and busy == 0 and done == total

        end = time.monotonic() + 60
        while not await settled():
            assert proc.poll() is None, out.text()
            if time.monotonic() > end:
                n = await eng.store.scalar("SELECT COUNT(*) FROM arrivals WHERE side='old'")
                states = [tuple(r) for r in await eng.store.fetchall(
                    "SELECT kind, state, COUNT(*) FROM actions GROUP BY kind, state")]
                raise AssertionError(f"not settled after 60 s: {n} arrivals, actions {states}\n"
                                     + out.text()[-3000:])
            await asyncio.sleep(0.25)
        took = time.monotonic() - t0
        await asyncio.sleep(1.0)          # a few more runner rounds in both processes
    finally:
        stop.set()
        await asyncio.wait_for(watch, 20)
        await eng.actions.stop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    text = out.text()
    for bad in ("locked", "Traceback", "never retrieved", "busy"):
        assert bad not in text, f"{bad!r} in the watch's output:\n{text[-3000:]}"
        assert not [t for t in logs if bad in t], logs
    assert proc.returncode == 0, text[-3000:]
    assert not reconnects and "reconnecting" not in text, (reconnects, text[-2000:])
    # no arrival twice
    rows = await eng.store.fetchall("SELECT message_id FROM arrivals WHERE side='old'")
    assert len(rows) == total and len({r["message_id"] for r in rows}) == total
    # nothing left running; every action settled
    states = Counter((r["kind"], r["state"]) for r in await eng.store.fetchall("SELECT kind, state FROM actions"))
    assert states == {("forward", "done"): total, ("remind", "done"): SENDERS}, states
    # each message forwarded once, each sender reminded once
    forwarded = Counter(email.message_from_bytes(raw)["Message-ID"]
                        for raw in mailserver.messages(new_user, "INBOX"))
    assert len(forwarded) == total and set(forwarded.values()) == {1}
    reminded = Counter(rcpts[0] for _f, rcpts, _raw in smtp_server.messages)
    assert len(reminded) == SENDERS and set(reminded.values()) == {1}, reminded
    print(f"\n{total} arrivals delivered in {burst:.1f} s; all handled {took:.1f} s after the burst began")


async def test_a_busy_state_file_is_not_a_connection_error(make_engine, mailserver, old_user, new_user,
                                                           monkeypatch):
    """Another process holds the state file's write lock past every wait: the watcher
    says so once, keeps its IMAP connection (no reconnect storm), and records the
    arrival once the file is free."""
    import sqlite3

    from switchover.core.store import Store
    monkeypatch.setattr(Store, "BUSY_MS", 100)      # give up waiting quickly
    eng = await make_engine(old_user, new_user)
    logs: list[LogLine] = []
    states: list[str] = []
    eng.subscribe(lambda ev: logs.append(ev) if isinstance(ev, LogLine) else
                  states.append(ev.state) if isinstance(ev, ConnectionState) and ev.side == "old" else None)
    eng.monitor.learn_history = False
    stop = asyncio.Event()
    watch = asyncio.create_task(eng.monitor.run(stop))
    other = sqlite3.connect(str(eng.store.path), timeout=0.1, isolation_level=None)
    try:
        end = time.monotonic() + 15
        while not (await eng.store.get_setting("monitor.mark.old.INBOX")
                   and eng.connection_state.get("old") == "connected"):
            assert time.monotonic() < end
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        other.execute("BEGIN IMMEDIATE")             # the other process writes, and writes...
        await asyncio.to_thread(mailserver.deliver, old_user, make_mail("a@c.com", old_user.address, "held"))
        end = time.monotonic() + 20
        while not [ev for ev in logs if "busy" in ev.text]:
            assert time.monotonic() < end, [ev.text for ev in logs]
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)                     # a few more tries while it holds on
        other.execute("ROLLBACK")
        end = time.monotonic() + 20
        while not await eng.store.scalar("SELECT COUNT(*) FROM arrivals WHERE side='old'"):
            assert time.monotonic() < end, [ev.text for ev in logs]
            await asyncio.sleep(0.1)
    finally:
        other.close()
        stop.set()
        await asyncio.wait_for(watch, 20)
        await eng.close()
    busy = [ev for ev in logs if "busy" in ev.text]
    assert len(busy) == 1 and busy[0].level == "warning", [ev.text for ev in logs]
    assert "reconnecting" not in states, states
    assert [ev.level for ev in logs if ev.level != "info" and ev is not busy[0]] == []
