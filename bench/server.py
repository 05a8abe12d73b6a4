"""The benchmark's Dovecot: the test fixture (tests/servers.py) plus bench settings,
and a fast fill of the source mailbox.

Owns: ``start_bench_dovecot`` (the fixture Dovecot started with the bench settings
appended to its generated config, through start_dovecot's ``extra_conf``) and ``fill``
(parallel MULTIAPPEND, one connection per folder).

Why bench settings: with the fixture's defaults (sdbox, ``mail_fsync = optimized``) this
VM's disk and ext4's file creation made Dovecot itself the bottleneck (mbsync: 1,069
msg/s on "small", 5.8 s of Dovecot CPU; 60-350 single APPENDs/s, very noisy), so every
tool measured the server, not itself. The bench default is ``mdbox`` (many messages per
file) with ``mail_fsync = never``: mbsync 3,395 msg/s, Dovecot 3.0 s, and steadier runs.
Everything else (quota plugin, one imap process per connection, no auth cache needed
for passwd-file) stays as the fixture has it. ``--storage`` and ``--fsync`` reproduce
the other setups (docs/BENCHMARKS.md has the numbers).
"""

from __future__ import annotations

import datetime as dt
import imaplib
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from tests.support.servers import DovecotServer, MailUser, start_dovecot

Message = tuple[str, bytes, tuple[Any, ...], dt.datetime]

STORAGES = {"sdbox": "sdbox:~/mail", "mdbox": "mdbox:~/mdbox", "maildir": "maildir:~/Maildir"}


DEFAULT_STORAGE = "mdbox"


def bench_settings(storage: str = DEFAULT_STORAGE, fsync: bool = False) -> str:
    """Dovecot settings appended after the fixture's (a later setting wins)."""
    lines = ["# appended by bench/server.py"]
    if not fsync:
        lines.append("mail_fsync = never")
    if storage != "sdbox":
        lines.append(f"mail_location = {STORAGES[storage]}")
    return "\n".join(lines) + "\n"


def _doveconf(server: DovecotServer, name: str) -> str:
    try:
        out = subprocess.run(["doveconf", "-c", str(server.conf_path), "-h", name],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def start_bench_dovecot(workdir: Path | None = None, *, storage: str = DEFAULT_STORAGE,
                        fsync: bool = False) -> tuple[DovecotServer, dict[str, str]]:
    """A throwaway Dovecot with the bench settings; returns (server, effective settings)."""
    server = start_dovecot(workdir, extra_conf=bench_settings(storage, fsync))
    try:
        settings = {k: _doveconf(server, k) for k in ("mail_location", "mail_fsync", "mail_plugins",
                                                       "mail_max_userip_connections",
                                                       "default_process_limit")}
        expected = STORAGES[storage].split(":")[0]
        if not settings["mail_location"].startswith(expected):
            raise RuntimeError(f"bench Dovecot runs {settings['mail_location']!r}, not {storage}")
        # a login proves the services answer with these settings
        probe = server.add_user("probe")
        server.client(probe).logout()
    except BaseException:
        server.stop()
        raise
    return server, settings


def _ticks(pid: int) -> tuple[int, list[int]]:
    """(utime+stime+cutime+cstime of pid, its children's pids)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        own = sum(int(x) for x in fields[11:15])
    except (OSError, ValueError):
        return 0, []
    try:
        kids = [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        kids = []
    return own, kids


def server_cpu(server: DovecotServer) -> float:
    """CPU seconds Dovecot used so far: the master, its live processes, and (through
    cutime/cstime) every process it already reaped, e.g. the imap process of each
    connection that logged out."""
    total, todo = 0, [server.proc.pid]
    while todo:
        own, kids = _ticks(todo.pop())
        total += own
        todo += kids
    return total / os.sysconf("SC_CLK_TCK")


def fill(server: DovecotServer, user: MailUser, messages: Iterable[Message], *,
         batch_messages: int = 500, batch_bytes: int = 16 * 2**20) -> tuple[int, int]:
    """Put messages into user's mailbox: one connection and thread per folder, each
    sending MULTIAPPEND batches; the generator runs in this thread (memory stays bounded
    by folders x 2 batches). Returns (count, bytes)."""
    queues: dict[str, queue.Queue] = {}
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    made: set[str] = set()
    lost: list[str] = []
    expected: dict[str, int] = {}

    def worker(folder: str, q: queue.Queue) -> None:
        client = None
        try:
            client = server.client(user, timeout=600)
            with lock:   # CREATE of shared parents, one at a time
                server.ensure_folder(client, user, folder)
                made.add(folder)
            while True:
                batch = q.get()
                if batch is None:
                    break
                for attempt in range(3):
                    if errors:
                        break
                    try:
                        client.multiappend(folder, batch)
                        break
                    except (OSError, imaplib.IMAP4.abort) as e:
                        # Dovecot's MULTIAPPEND is all or nothing, so a retry cannot
                        # duplicate; the counts are checked at the end anyway.
                        if attempt == 2:
                            raise
                        time.sleep(0.5)
                        client = server.client(user, timeout=600)
                        lost.append(f"{folder}: {e!r}")
            client.logout()
        except BaseException as e:  # reported by the caller
            errors.append(e)
            while q.get() is not None:   # keep the producer from blocking
                pass

    batches: dict[str, list[dict[str, Any]]] = {}
    sizes: dict[str, int] = {}
    count = total = 0
    for folder, raw, flags, when in messages:
        if folder not in queues:
            queues[folder] = queue.Queue(maxsize=1)
            t = threading.Thread(target=worker, args=(folder, queues[folder]), daemon=True,
                                 name=f"fill-{folder}")
            t.start()
            threads.append(t)
            batches[folder], sizes[folder] = [], 0
        batches[folder].append({"msg": raw, "flags": tuple(flags), "date": when})
        sizes[folder] += len(raw)
        expected[folder] = expected.get(folder, 0) + 1
        count += 1
        total += len(raw)
        if len(batches[folder]) >= batch_messages or sizes[folder] >= batch_bytes:
            queues[folder].put(batches[folder])
            batches[folder], sizes[folder] = [], 0
        if errors:
            break
    for folder, q in queues.items():
        if batches[folder] and not errors:
            q.put(batches[folder])
        q.put(None)
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"filling the source mailbox failed: {errors[0]!r}") from errors[0]
    client = server.client(user)
    try:
        got = {f: client.folder_status(f, [b"MESSAGES"])[b"MESSAGES"] for f in expected}
    finally:
        client.logout()
    if got != expected:
        raise RuntimeError(f"the source mailbox holds {got}, not {expected} (lost connections: {lost})")
    return count, total
