"""The migration's contract with its faces (issues 9 and 10): folder choice, cancel and
pause that say what happened, skipped folders, the last run, refusals grouped by cause,
a forward that already placed a message, and verify that counts duplicates — all
against the real loopback server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from switchover.core.errors import SwitchoverError
from switchover.core.events import JobProgress, LogLine, Proven
from switchover.core.mail.identity import identity_of
from tests.support.proxy import Proxy
from tests.support.mailboxes import bulk, contents, count, expected, msg, seed, via_proxy

pytestmark = pytest.mark.timeout(90)


def noselect_parent(server: Any, user: Any, child: str, raw: bytes) -> None:
    """CREATE only the child: the server lists its parent as \\Noselect."""
    c = server.client(user)
    try:
        c.create_folder(child)
    finally:
        c.logout()
    server.append(user, child, raw)


# -- 9.13: --folder ----------------------------------------------------------------------------
async def test_unknown_or_unselectable_folder_is_one_sentence_before_anything_is_written(
        make_engine: Any, mailserver: Any, old_user: Any, new_user: Any) -> None:
    seed(mailserver, old_user, "INBOX", bulk(3))
    seed(mailserver, old_user, "Quotes", bulk(2, tag="q"))
    noselect_parent(mailserver, old_user, "Customers/Mexico", msg(900))
    eng = await make_engine(old_user, new_user)
    mig = eng.migration
    with pytest.raises(SwitchoverError) as err:
        await mig.run(folders=["Quote"])
    assert err.value.exit_code == 2
    text = str(err.value)
    assert "'Quote'" in text and "'Quotes'" in text and "\n" not in text
    with pytest.raises(SwitchoverError) as err:
        await mig.run(folders=["Customers"])
    assert err.value.exit_code == 2 and "holds no mail" in str(err.value)
    assert "'Customers/Mexico'" in str(err.value)
    with pytest.raises(SwitchoverError):
        await mig.run(dry_run=True, folders=["Nonexistent"])
    with pytest.raises(SwitchoverError):
        await mig.plan(folders=["Nonexistent"])
    # nothing was written: no run, no message, nothing in the new mailbox
    assert await eng.store.fetchall("SELECT * FROM runs") == []
    assert await eng.store.fetchall("SELECT * FROM messages") == []
    assert count(mailserver, new_user, "INBOX") == 0

    plan = await mig.plan(folders=["inbox"])          # INBOX is case-insensitive
    assert [f.source for f in plan.folders] == ["INBOX"] and plan.total_messages == 3
    s = await mig.run(folders=["inbox", "Customers/Mexico"])
    assert s.ok and s.transferred == 4
    assert {f.source for f in s.folders} == {"INBOX", "Customers/Mexico"}
    assert count(mailserver, new_user, "INBOX") == 3


# -- 10.4: skipped, done, last run ----------------------------------------------------------------
async def test_complete_run_shows_done_rows_skipped_parents_and_last_run(
        make_engine: Any, mailserver: Any, old_user: Any, new_user: Any) -> None:
    seed(mailserver, old_user, "INBOX", bulk(4))
    noselect_parent(mailserver, old_user, "Projects/2024", msg(901))
    eng = await make_engine(old_user, new_user)
    proofs: list[Proven] = []
    eng.subscribe(lambda e: proofs.append(e) if isinstance(e, Proven) else None)
    assert await eng.migration.last_run() is None
    plan = await eng.migration.plan()
    assert {f.source: f.role for f in plan.folders}["Projects"] == "skip"
    s = await eng.migration.run()
    assert s.ok and s.headline() is None
    # a complete run proves the checklist's item (the checklist facet records the event)
    assert [(p.item, p.ok) for p in proofs] == [("migrate", True)]
    assert "5 copied, 0 already there" in proofs[0].evidence
    # where the migration last read INBOX: the watch starts there
    c = mailserver.client(old_user)
    status = c.folder_status("INBOX", ["UIDVALIDITY", "UIDNEXT"])
    c.logout()
    assert await eng.migration.snapshot("INBOX") == (status[b"UIDVALIDITY"], status[b"UIDNEXT"])
    assert await eng.migration.snapshot("Nowhere") is None
    rows = {r.source: r for r in await eng.migration.folder_rows()}
    assert rows["Projects"].state == "skipped"
    assert all(r.state in ("done", "skipped") for r in rows.values()), rows
    assert rows["INBOX"].done_messages == rows["INBOX"].total_messages == 4
    last = await eng.migration.last_run()
    assert last is not None and last.outcome == "done" and not last.stopped_early
    assert last.summary["transferred"] == 5


async def test_a_killed_run_is_a_run_that_stopped_early(make_engine: Any, mailserver: Any,
                                                        old_user: Any, new_user: Any) -> None:
    eng = await make_engine(old_user, new_user)
    # what a kill -9 leaves: a run that never ended, and nobody holding the job lock
    await eng.store.start_run("migrate")
    last = await eng.migration.last_run()
    assert last is not None and last.ended is None and not last.running
    assert last.stopped_early


# -- 10.4: cancel and pause ------------------------------------------------------------------------
async def test_cancel_is_cancelled_not_an_error_and_pause_waits_for_the_batch_in_flight(
        make_engine: Any, mailserver: Any, old_user: Any, new_user: Any) -> None:
    corpus = bulk(300, size=2000)
    seed(mailserver, old_user, "INBOX", corpus)
    seed(mailserver, old_user, "Later", bulk(20, tag="later"))
    with Proxy(mailserver.host, mailserver.imap_port, delay=0.003) as proxy:
        eng = await make_engine(old_user, new_user, old=via_proxy(proxy),
                                new=via_proxy(proxy), migration={"batch_messages": 5, "connections": 2})
        jobs: list[JobProgress] = []
        eng.subscribe(lambda e: jobs.append(e) if isinstance(e, JobProgress) else None)
        mig = eng.migration
        task = asyncio.create_task(mig.run())
        try:
            while count(mailserver, new_user, "INBOX") < 10 or not mig.job.in_flight:
                await asyncio.sleep(0.005)
            before = len(jobs)
            mig.pause()        # no await since the check: a batch is under way
            # while the batches in flight finish the job says so; then it is paused
            assert jobs[before].state == "pausing", [j.state for j in jobs[before:]]
            deadline = time.monotonic() + 10
            while jobs[-1].state != "paused" and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert jobs[-1].state == "paused"
            n1 = count(mailserver, new_user, "INBOX")
            up = proxy.bytes_up
            await asyncio.sleep(0.5)
            assert count(mailserver, new_user, "INBOX") == n1     # nothing more went out
            assert proxy.bytes_up - up < 2000                      # not even a FETCH
            mig.cancel()
            s = await asyncio.wait_for(task, 30)
            assert s.cancelled and not s.ok
            assert s.errors == [], s.errors                        # a cancel is not an error
            assert jobs[-1].state == "cancelled"
            rows = {f.source: f for f in s.folders}
            assert rows["INBOX"].state == "cancelled"
            assert rows["INBOX"].done_messages == count(mailserver, new_user, "INBOX") == n1
            assert rows["Later"].state == "cancelled" and rows["Later"].done_messages == 0
            after = {f.source: f for f in await mig.folder_rows()}
            assert after["INBOX"].state == "cancelled" and after["INBOX"].done_messages == n1
            last = await mig.last_run()
            assert last.outcome == "cancelled" and last.stopped_early
            assert "cancelled" in (s.headline() or "")
            again = await mig.run()
            assert again.ok and again.transferred == len(corpus) + 20 - n1
            assert again.already_there == n1
        finally:
            if not task.done():
                mig.cancel()
                await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)
            await eng.close()
    assert contents(mailserver, new_user, "INBOX") == expected(corpus)


# -- 10.5: a full mailbox is one headline ------------------------------------------------------------
async def test_full_mailbox_is_one_headline_and_one_line_per_cause(
        make_engine: Any, mailserver: Any, old_user: Any) -> None:
    mailserver.require("quota")
    new = mailserver.add_user("full", quota_kb=60)
    corpus = bulk(80, size=2000)                 # ~160 KB: a good half does not fit
    seed(mailserver, old_user, "INBOX", corpus)
    eng = await make_engine(old_user, new, migration={"batch_messages": 10})
    logs: list[LogLine] = []
    eng.subscribe(lambda e: logs.append(e) if isinstance(e, LogLine) else None)
    proofs: list[Proven] = []
    eng.subscribe(lambda e: proofs.append(e) if isinstance(e, Proven) else None)
    s = await eng.migration.run()
    assert not s.ok and s.refused
    # refusals take the checklist's proof back
    assert [(p.item, p.ok) for p in proofs] == [("migrate", False)]
    assert f"{len(s.refused)} refused, 0 errors" in proofs[0].evidence
    n = len(s.refused)
    assert s.transferred + n == len(corpus)
    assert s.headline() == f"the new mailbox is full: {n:,} messages not copied"
    assert s.describe().startswith(s.headline())
    groups = s.refusal_groups()
    assert len(groups) == 1 and groups[0][1] == n and "full" in groups[0][0]
    refusal_lines = [line.text for line in logs if "refused" in line.text or "not copied" in line.text]
    assert len(refusal_lines) <= 3, refusal_lines           # one per cause, not one per message
    assert any(f"{n:,} messages not copied" in t for t in refusal_lines)
    assert any("quota" in t.lower() for t in refusal_lines)   # the server's words


# -- 9.5: a message a forward already placed ---------------------------------------------------------
async def test_migration_yields_to_a_forward_that_placed_the_message(
        make_engine: Any, mailserver: Any, old_user: Any, new_user: Any) -> None:
    corpus = bulk(6)
    seed(mailserver, old_user, "INBOX", corpus)
    eng = await make_engine(old_user, new_user)
    # the watch forwards message 3 into the new INBOX: its placement is recorded first,
    # and its APPEND is still on the way when the migration gets to that message: the
    # migration waits for it rather than trusting (or doubling) it
    ident = identity_of(corpus[3][0])
    pid, holder = await eng.placements.begin_one("INBOX", "forward", ident, "arrival-1")
    assert pid is not None and holder is None
    run = asyncio.create_task(eng.migration.run())
    await asyncio.sleep(1.5)
    assert not run.done()
    seed(mailserver, new_user, "INBOX", [corpus[3]])       # the forward's APPEND lands
    await eng.placements.placed([(pid, None, None)])
    s = await asyncio.wait_for(run, 30)
    assert s.ok and s.transferred == 5 and s.already_there == 1
    assert contents(mailserver, new_user, "INBOX") == expected(corpus)
    row = await eng.store.fetchone("SELECT state, reason FROM messages WHERE identity=?", (ident,))
    assert row["state"] == "present" and "forward" in row["reason"]


async def test_a_forward_that_is_refused_does_not_cost_the_migration_its_copy(
        make_engine: Any, mailserver: Any, old_user: Any, new_user: Any) -> None:
    corpus = bulk(6)
    seed(mailserver, old_user, "INBOX", corpus)
    eng = await make_engine(old_user, new_user)
    ident = identity_of(corpus[2][0])
    pid, _ = await eng.placements.begin_one("INBOX", "forward", ident, "arrival-9")
    run = asyncio.create_task(eng.migration.run())
    await asyncio.sleep(1.5)
    await eng.placements.drop([pid])                       # the forward's APPEND was refused
    s = await asyncio.wait_for(run, 30)
    assert s.ok and s.transferred == 6 and s.already_there == 0
    assert contents(mailserver, new_user, "INBOX") == expected(corpus)


# -- 9.6: verify counts duplicates ------------------------------------------------------------------
async def test_verify_fails_on_duplicates_and_reports_new_mail_as_extra(
        make_engine: Any, mailserver: Any, old_user: Any, new_user: Any) -> None:
    corpus = bulk(12)
    seed(mailserver, old_user, "INBOX", corpus)
    eng = await make_engine(old_user, new_user)
    jobs: list[JobProgress] = []
    eng.subscribe(lambda e: jobs.append(e) if isinstance(e, JobProgress) and e.job == "verify" else None)
    proofs: list[Proven] = []
    eng.subscribe(lambda e: proofs.append(e) if isinstance(e, Proven) and e.item == "verify" else None)
    assert (await eng.migration.run()).ok
    # new mail arrives in the new INBOX: extra, informational
    seed(mailserver, new_user, "INBOX", [(msg(7777, subject="new customer"), b"", b"01-Jan-2025 00:00:00 +0000")])
    report = await eng.migration.verify()
    assert report.ok and report.extra == 1 and report.duplicates == 0
    assert "1 new in the destination" in report.describe()
    assert jobs[-1].total_messages == 12 and jobs[-1].done_messages == 12
    assert [p.ok for p in proofs] == [True] and proofs[0].evidence.startswith("12 messages in ")
    # two copies of one source message: a duplicate, and the check fails
    seed(mailserver, new_user, "INBOX", [corpus[4], corpus[4]])
    report = await eng.migration.verify()
    assert not report.ok and report.duplicates == 2 and report.missing == 0 and report.extra == 1
    f = report.folders[0]
    assert f.verdict == "DUPLICATES"
    assert "2 duplicates" in report.describe()
    assert not proofs[-1].ok and "2 duplicates" in proofs[-1].evidence    # the proof is taken back
    text = report.text()
    assert "NOT OK" in text and "duplicates: 2" in text and "duplicate: new UID" in text
