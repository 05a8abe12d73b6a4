"""The migration's own words for the faces: the statistics block after a run
(``MigrationSummary.report_lines``) and the per-folder lines of a verification
(``VerifyReport.lines``) — what the CLI prints and the dashboard shows."""

from __future__ import annotations

from switchover.core.migrate.records import MigrationSummary, Refusal
from switchover.core.migrate.verify import FolderVerify, Mismatch, VerifyReport


def test_a_clean_run_is_counts_speed_and_time() -> None:
    s = MigrationSummary(transferred=1234, already_there=5, elapsed=12.34, msgs_per_s=100.4,
                         bytes_per_s=2_500_000)
    assert s.report_lines() == [
        "transferred   1,234",
        "already there 5",
        "refused       0",
        "errors        0",
        "speed         100 msg/s, 2.5 MB/s",
        "elapsed       12.3 s",
    ]


def test_a_few_refusals_are_listed_one_by_one_under_the_headline() -> None:
    s = MigrationSummary(transferred=3, refused=[
        Refusal("INBOX", 7, "quote for 2024", 90_000_000, "[TOOBIG] message too large"),
        Refusal("Sent", 9, "", 10, "[CANNOT] no")],
        errors=["Archive: the old server refused to open it (NO gone)."], duplicates_removed=2)
    lines = s.report_lines()
    assert lines[0] == "2 messages not copied: too big for the new account (the server said: " \
                       "[TOOBIG] message too large) and 1 other causes."
    assert "refused       2" in lines and "errors        1" in lines
    assert "extra copies  2 removed (left by an interrupted run)" in lines
    assert "  refused: INBOX UID 7 'quote for 2024': [TOOBIG] message too large" in lines
    assert "  refused: Sent UID 9 '': [CANNOT] no" in lines
    assert lines[-1] == "  error: Archive: the old server refused to open it (NO gone)."


def test_many_refusals_are_one_line_per_cause_and_errors_are_capped() -> None:
    full = [Refusal("INBOX", i, f"s{i}", 100, f"[OVERQUOTA] Quota exceeded (mailbox for user is full) {i}")
            for i in range(30)]
    s = MigrationSummary(refused=full, errors=[f"error {i}" for i in range(25)])
    lines = s.report_lines()
    assert lines[0] == "The new mailbox is full: 30 messages not copied."
    assert [ln for ln in lines if ln.startswith("  refused")] == [
        "  refused 30 messages: the new mailbox is full (the server said: [OVERQUOTA] Quota "
        "exceeded (mailbox for user is full) 0)"]
    assert "  (every refused message is listed by 'switchover verify')" in lines
    assert sum(ln.startswith("  error: ") for ln in lines) == 20
    assert lines[-1] == "  … and 5 more errors"


def test_a_cancelled_run_says_so_first() -> None:
    s = MigrationSummary(transferred=40, cancelled=True, ok=False)
    assert s.report_lines()[0] == "Cancelled after copying 40 messages; run the migration again to continue."
    assert s.record()["cancelled"] is True and s.record()["headline"].startswith("cancelled")


def test_verify_lines_are_one_per_folder_then_the_result() -> None:
    ok = FolderVerify("INBOX", "INBOX", 1200, 1201, extra=[Mismatch("x", "new mail", dest_uid=9)])
    bad = FolderVerify("Sent", "Sent Items", 10, 10,
                       missing=[Mismatch("a", "one", source_uid=3)],
                       duplicates=[Mismatch("b", "two", dest_uid=4)], details="error: read short")
    report = VerifyReport([ok, bad], ok=False)
    assert report.lines() == [
        "ok         INBOX → INBOX: 1,200 / 1,201, 1 extra (not in the old mailbox)",
        "ERROR      Sent → Sent Items: 10 / 10, 1 missing, 1 duplicates (error: read short)",
        "result: NOT OK, messages are missing and messages are there more often than in the "
        "old mailbox and some folders could not be read completely",
    ]
