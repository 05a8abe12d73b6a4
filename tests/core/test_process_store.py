"""Two real processes on one state file (issue 9, items 3 and 10).

The README's setup runs the dashboard beside a headless ``switchover watch``; two commands
may also start at the same moment on a state file that does not exist yet. These tests
start real Python processes (no threads pretending to be processes) and look at what
SQLite made of it: every process opened its file, no write was lost, no "database is
locked" came out.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from switchover.core.store import Store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)

# Opens fresh state files at agreed instants: file i at t0 + i * gap, so the two processes
# race on every one of them. Prints the errors it met as JSON.
OPEN_SCRIPT = r"""
import asyncio, json, sys, time
sys.path.insert(0, {root!r})
from switchover.core.store import Store, SCHEMA_VERSION

async def main():
    folder, t0, n, gap = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    errors = []
    for i in range(n):
        delay = t0 + i * gap - time.time()
        if delay > 0:
            time.sleep(delay)
        try:
            store = await Store.open(f"{{folder}}/state-{{i}}.sqlite")
            try:
                version = await store.scalar("PRAGMA user_version")
                tables = await store.scalar("SELECT count(*) FROM sqlite_master WHERE name='imports'")
                assert version == SCHEMA_VERSION and tables == 1, (version, tables)
            finally:
                await store.close()
        except BaseException as e:
            errors.append(f"{{i}}: {{e.__class__.__name__}}: {{e}}")
    print(json.dumps(errors))

asyncio.run(main())
"""


def test_two_processes_opening_new_state_files_at_the_same_moment(tmp_path):
    """20 races of two processes creating one new state file each: all succeed (3 in 20
    used to fail with "table imports already exists")."""
    n, gap = 20, 0.12
    t0 = time.time() + 2.0             # both processes have imported everything by then
    script = OPEN_SCRIPT.format(root=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), repr(t0), str(n), str(gap)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert json.loads(out) == [], out
    for i in range(n):
        db = sqlite3.connect(tmp_path / f"state-{i}.sqlite")
        try:
            assert db.execute("SELECT count(*) FROM sqlite_master WHERE name='imports'").fetchone()[0] == 1
        finally:
            db.close()


# One writer process: several tasks write (single statements and read-modify-write
# transactions) and read (cursors that must not pin a snapshot) for a while.
HAMMER_SCRIPT = r"""
import asyncio, json, sys, time
sys.path.insert(0, {root!r})
from switchover.core.store import Store

async def main():
    path, tag, t0, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    store = await Store.open(path)
    counts = {{"runs": 0, "increments": 0, "reads": 0}}
    errors = []
    delay = t0 - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    end = time.time() + seconds

    async def writer():
        while time.time() < end:
            await store.run("INSERT INTO runs(job, started) VALUES(?, ?)", (tag, time.time()))
            counts["runs"] += 1

    async def incrementer():
        # read, then write what was read + 1, in one transaction: a lost update shows
        while time.time() < end:
            async with store.transaction() as db:
                async with db.execute("SELECT value FROM settings WHERE key='counter'") as cur:
                    row = await cur.fetchone()
                value = int(row[0]) if row else 0
                await db.execute("INSERT INTO settings(key, value) VALUES('counter', ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(value + 1),))
            counts["increments"] += 1

    async def reader():
        # a face polling: reads between the writes, then a write of its own
        while time.time() < end:
            await store.fetchall("SELECT id, job FROM runs ORDER BY id DESC LIMIT 50")
            await store.fetchone("SELECT * FROM runs")           # many rows, only one read
            await store.changed_elsewhere()
            await store.set_setting(f"seen-{{tag}}", time.time())
            counts["reads"] += 1

    async def guarded(fn):
        try:
            await fn()
        except BaseException as e:
            errors.append(f"{{fn.__name__}}: {{e.__class__.__name__}}: {{e}}")

    await asyncio.gather(*(guarded(f) for f in (writer, writer, incrementer, reader)))
    await store.close()
    print(json.dumps({{"counts": counts, "errors": errors}}))

asyncio.run(main())
"""


def test_two_processes_writing_and_reading_one_state_file(tmp_path):
    """A dashboard and a headless watch at once: writes from both, reads that hold no
    snapshot; no "database is locked", no lost write (used to give 214 locked errors)."""
    path = tmp_path / "state.sqlite"
    script = HAMMER_SCRIPT.format(root=str(ROOT))
    t0 = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), tag, repr(t0), "3"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in ("dashboard", "watch")]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err, err
        results.append(json.loads(out))
    for r in results:
        assert r["errors"] == [], r["errors"]
        assert r["counts"]["runs"] > 50 and r["counts"]["increments"] > 20, r["counts"]
    db = sqlite3.connect(path)
    try:
        for tag, r in zip(("dashboard", "watch"), results):
            rows = db.execute("SELECT count(*) FROM runs WHERE job=?", (tag,)).fetchone()[0]
            assert rows == r["counts"]["runs"], (tag, rows, r["counts"])
        counter = int(db.execute("SELECT value FROM settings WHERE key='counter'").fetchone()[0])
    finally:
        db.close()
    assert counter == sum(r["counts"]["increments"] for r in results), "a read-modify-write was lost"


# -- trouble with the file is StateFileError; a bad statement is not -------------------------

async def test_a_damaged_state_file_is_a_state_file_error(tmp_path):
    from switchover.core.errors import StateFileError
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not a database, it is a text file that got in the way\n" * 100)
    with pytest.raises(StateFileError) as info:
        await Store.open(path)
    assert info.value.exit_code == 2 and "is damaged" in info.value.message and str(path) in info.value.message


async def test_a_file_locked_past_every_wait_is_a_state_file_error(tmp_path, monkeypatch):
    """Another process holds the write lock longer than the busy wait: the write fails as
    StateFileError (callers tell it from a mail server's trouble by its type); a
    statement that is simply wrong stays an SQLite error."""
    from switchover.core.errors import StateFileError
    path = tmp_path / "state.sqlite"
    monkeypatch.setattr(Store, "BUSY_MS", 200)
    store = await Store.open(path)
    try:
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE'); print('held', flush=True); time.sleep(30)\n"), str(path)],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            with pytest.raises(StateFileError) as info:
                await store.set_setting("k", 1)
            assert info.value.exit_code == 2 and "locked" in info.value.message
        finally:
            holder.kill()
            holder.wait()
        await store.set_setting("k", 2)                      # usable again once the holder is gone
        assert await store.get_setting("k") == 2
        with pytest.raises(sqlite3.OperationalError):
            await store.run("INSERT INTO no_such_table VALUES (1)")
    finally:
        await store.close()
