"""Backup and import are jobs like the migration (core/jobs.py), against a real server:
pause means nothing more is written once the batch in flight ends, resume finishes the
job, cancel ends it without an error (recorded ``cancelled``), and a rerun resumes
where the cancelled run stopped."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, Callable

import pytest

from switchover.core.events import Event, FolderProgress, JobProgress
from tests.backup.test_backup import msg
from tests.backup.test_import import lf, write_mbox

pytestmark = pytest.mark.timeout(60)


def indexed(root: Path) -> int:
    db = sqlite3.connect(root / "index.sqlite")
    try:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        db.close()


class Controls:
    """Pauses (or cancels) a job at its first progress past ``after`` messages; on
    "paused" counts what is written, and again after a while, then resumes."""

    def __init__(self, eng: Any, job: str, after: int, written: Callable[[], int], *, cancel: bool = False) -> None:
        self.eng, self.job, self.after, self.written, self.cancel = eng, job, after, written, cancel
        self.states: list[str] = []
        self.asked_at: int | None = None        # messages done when pause / cancel was asked
        self.at_pause: int | None = None        # written when the job said "paused"
        self.later: int | None = None           # written 0.5 s into the pause
        self.unsubscribe = eng.subscribe(self)

    def __call__(self, e: Event) -> None:
        if isinstance(e, FolderProgress) and e.job == self.job and e.done_messages >= self.after \
                and self.asked_at is None:
            self.asked_at = e.done_messages
            # asked while the next batch may already be under way (from the loop, soon)
            asyncio.get_running_loop().call_soon(
                self.eng.backups.cancel if self.cancel else self.eng.backups.pause)
        if isinstance(e, JobProgress) and e.job == self.job:
            if not self.states or self.states[-1] != e.state:
                self.states.append(e.state)
            if e.state == "paused" and self.at_pause is None:
                self.at_pause = self.written()
                asyncio.get_running_loop().call_later(0.5, self._resume)

    def _resume(self) -> None:
        self.later = self.written()
        self.eng.backups.resume()


async def last_outcome(eng: Any, job: str) -> str:
    return str(await eng.store.scalar("SELECT outcome FROM runs WHERE job=? ORDER BY id DESC LIMIT 1", (job,)))


async def test_backup_pause_resume(make_engine, mailserver, old_user, new_user, tmp_path) -> None:
    mailserver.append_many(old_user, "INBOX", [msg(i) for i in range(30)])
    eng = await make_engine(old_user, new_user, migration={"batch_messages": 3})
    root = tmp_path / "p"
    c = Controls(eng, "backup", 3, lambda: indexed(root))
    s = await eng.backups.backup(root)
    assert s.ok and s.messages_written == 30 and not s.cancelled
    assert c.asked_at is not None and c.at_pause is not None
    # once paused, nothing more is written; at most the batch in flight ended after the ask
    assert c.later == c.at_pause
    assert c.asked_at <= c.at_pause <= c.asked_at + 3
    assert "paused" in c.states and c.states[-1] == "done"
    assert "running" in c.states[c.states.index("paused"):]
    assert set(c.states) <= {"planning", "running", "pausing", "paused", "done"}
    assert await last_outcome(eng, "backup") == "done" and eng.backups.state == "done"


async def test_backup_cancel_is_not_an_error_and_a_rerun_resumes(make_engine, mailserver, old_user, new_user,
                                                                 tmp_path) -> None:
    mailserver.append_many(old_user, "INBOX", [msg(i) for i in range(40)])
    eng = await make_engine(old_user, new_user, migration={"batch_messages": 2})
    root = tmp_path / "cx"
    c = Controls(eng, "backup", 2, lambda: indexed(root), cancel=True)
    s = await eng.backups.backup(root)                  # returns: a cancel raises nothing
    c.unsubscribe()
    assert s.cancelled and not s.ok and s.errors == []
    assert "cancelled" in s.describe()
    assert c.asked_at is not None and 2 <= s.messages_written <= c.asked_at + 2 < 40
    assert indexed(root) == s.messages_written          # what was written is indexed, nothing more
    assert c.states[-1] == "cancelled"
    assert await last_outcome(eng, "backup") == "cancelled"
    s2 = await eng.backups.backup(root)
    assert s2.ok and s2.already_there == s.messages_written and s2.messages_written == 40 - s.messages_written
    assert indexed(root) == 40 and (await eng.backups.verify_backup(root)).ok


async def test_import_pause_resume(make_engine, mailserver, old_user, new_user, tmp_path, monkeypatch) -> None:
    import switchover.core.backup.importer as importer
    monkeypatch.setattr(importer, "BATCH_MESSAGES", 3)
    source = tmp_path / "a.mbox"
    write_mbox(source, [lf(i) for i in range(30)])
    eng = await make_engine(old_user, new_user)
    c = Controls(eng, "import", 3, lambda: len(mailserver.messages(new_user, "Imported")))
    s = await eng.backups.import_path(source, "Imported")
    assert s.ok and s.uploaded == 30
    assert c.asked_at is not None and c.at_pause is not None
    assert c.later == c.at_pause and c.asked_at <= c.at_pause <= c.asked_at + 3
    assert "paused" in c.states and c.states[-1] == "done"
    assert len(mailserver.messages(new_user, "Imported")) == 30
    assert await last_outcome(eng, "import") == "done"


async def test_import_cancel_is_not_an_error_and_a_rerun_resumes(make_engine, mailserver, old_user, new_user,
                                                                 tmp_path, monkeypatch) -> None:
    import switchover.core.backup.importer as importer
    monkeypatch.setattr(importer, "BATCH_MESSAGES", 2)
    source = tmp_path / "a.mbox"
    write_mbox(source, [lf(i) for i in range(30)])
    eng = await make_engine(old_user, new_user)
    c = Controls(eng, "import", 2, lambda: len(mailserver.messages(new_user, "Imported")), cancel=True)
    s = await eng.backups.import_path(source, "Imported")
    c.unsubscribe()
    assert s.cancelled and not s.ok and not s.refused and not s.malformed
    assert c.asked_at is not None and 2 <= s.uploaded <= c.asked_at + 2 < 30
    assert len(mailserver.messages(new_user, "Imported")) == s.uploaded
    assert c.states[-1] == "cancelled"
    assert await last_outcome(eng, "import") == "cancelled"
    s2 = await eng.backups.import_path(source, "Imported")
    assert s2.ok and s2.already_there == s.uploaded and s2.uploaded == 30 - s.uploaded
    assert len(mailserver.messages(new_user, "Imported")) == 30
