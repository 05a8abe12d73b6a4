"""The CLI's phase-4 commands: the check schedule, closing readiness and the final archive.

``schedule`` prints the transition's check rhythm, when the old inbox was last checked,
when the next check is due and what is overdue. ``close`` (``--check`` is the default
and only behaviour: switchover never closes or deletes the old account) prints the
closing verdict with one line per reason and the earliest safe closing date.
``archive DIR`` writes the final verified backup and the closing report into DIR.

Commands are declared in ``add_commands`` and carried out by the functions named in
``COMMANDS`` (``async def (engine, args) -> exit code``, the engine opened by
switchover/cli.py). ``SIDES`` names the mailboxes whose password each command needs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable

from .commands import stop_with, with_progress
from .output import epilog, say

if TYPE_CHECKING:
    from switchover.core.engine import Engine

Parser = Callable[[str, str], argparse.ArgumentParser]

#: the verdict word of each reason, padded so the texts line up
WORDS = {"ok": "ok", "not yet": "NOT YET", "unknown": "UNKNOWN", "note": "note"}


def _as_of(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date like 2027-03-31") from None


def _moment(day: dt.date | None) -> dt.datetime | None:
    """Noon of ``--as-of``'s day (a "what if" question), else None for now."""
    return dt.datetime.combine(day, dt.time(12)) if day else None


def add_commands(cmd: Parser) -> None:
    """Declare this area's sub-commands."""
    sp = cmd("schedule", "the check rhythm of the old inbox: last check, next due, what is overdue")
    sp.add_argument("--json", action="store_true", help="one JSON object for scripts")
    sp.formatter_class = argparse.RawDescriptionHelpFormatter
    sp.epilog = ("The rhythm counts from transition.start: every day for days 1-28, every 3 days to\n"
                 "day 60, then every week until the old account is closed.\n\n"
                 + epilog("switchover schedule", {0: "no check is overdue",
                                                  1: "a check is overdue (run 'switchover watch --once')",
                                                  2: "bad config or state file"}))

    sp = cmd("close", "is it safe to close the old mailbox? the verdict, its reasons and the earliest date")
    sp.add_argument("--check", action="store_true",
                    help="only check (the default: switchover never closes or deletes the old account)")
    sp.add_argument("--json", action="store_true", help="one JSON object for scripts")
    sp.add_argument("--as-of", type=_as_of, metavar="DATE",
                    help="judge as of DATE (YYYY-MM-DD), as if nothing else arrived until then")
    sp.formatter_class = argparse.RawDescriptionHelpFormatter
    sp.epilog = ("switchover never closes or deletes the old account: 'close' only checks (with or\n"
                 "without --check) and reads the state file; no server is asked. When the verdict is\n"
                 "ready, ask the provider (or IT) to close or archive the old account, keep the final\n"
                 "backup 3-6 months, and tick the checklist item: switchover checklist tick close.\n\n"
                 + epilog(["switchover close --check", "switchover close --check --as-of 2027-03-31 --json"],
                          {0: "ready: the old mailbox can be closed", 1: "not yet, or could not tell",
                           2: "bad input, config or state file"}))

    sp = cmd("archive", "write the final verified backup and the closing report (HTML, Markdown) into DIR")
    sp.add_argument("dir", metavar="DIR")
    sp.add_argument("--format", choices=["mbox", "eml", "both"], default="both", help="backup format")
    sp.formatter_class = argparse.RawDescriptionHelpFormatter
    sp.epilog = ("DIR/backup holds the backup (resumed when run again), DIR/report.html and\n"
                 "DIR/report.md the report. Only a backup verified against the live mailbox counts;\n"
                 "one verified after the last arrival proves the checklist's final_backup item.\n\n"
                 + epilog("switchover archive ~/mail-archive/2027-03",
                          {0: "the backup verified against the old mailbox",
                           1: "it did not (the report and the problems printed say why)",
                           3: "login or connection failed", 4: "another backup runs on this state file"}))


async def cmd_schedule(engine: "Engine", args: argparse.Namespace) -> int:
    status = await engine.schedule.status()
    if args.json:
        say(json.dumps({
            "day": status.day, "every_days": status.every_days,
            "last_checked": status.last_checked.isoformat(timespec="seconds") if status.last_checked else None,
            "next_due": status.next_due.isoformat(timespec="seconds") if status.next_due else None,
            "overdue": status.overdue, "overdue_seconds": round(status.overdue_seconds),
            "rhythm": engine.schedule.rhythm(), "status": status.sentence()}, ensure_ascii=False))
        return 1 if status.overdue else 0
    say("Check rhythm of the old inbox:")
    for line in engine.schedule.rhythm():
        say(f"  {line}")
    if status.day is not None and status.started:
        say(f"Today is transition day {status.day}: {status.rhythm_now()}.")
    say(status.sentence())
    return 1 if status.overdue else 0


async def cmd_close(engine: "Engine", args: argparse.Namespace) -> int:
    readiness = await engine.closing.readiness(_moment(args.as_of))
    if args.json:
        say(json.dumps(readiness.as_dict(), ensure_ascii=False))
        return readiness.exit_code
    say(f"Closing the old mailbox: {readiness.headline()}")
    for r in readiness.reasons:
        say(f"  {WORDS.get(r.verdict, r.verdict):<8} {r.text}")
    if readiness.ready:
        say("switchover closes nothing itself: ask the provider (or IT) to close or archive the old "
            "account, keep the final backup 3-6 months, then run 'switchover checklist tick close'.")
    return readiness.exit_code


async def cmd_archive(engine: "Engine", args: argparse.Namespace) -> int:
    args.signals.graceful = stop_with(engine.backups.cancel)
    formats = ("mbox", "eml") if args.format == "both" else (args.format,)
    result = await with_progress(engine, lambda: engine.archive.run(Path(args.dir), formats=formats))
    for problem in result.check.problems[:20]:
        say(f"problem: {problem}")
    say(f"backup {result.backup_dir}: {result.check.describe()}")
    say(f"report: {result.html}")
    say(f"report: {result.markdown}")
    say(f"Closing the old mailbox: {result.readiness.headline()}")
    return 0 if result.ok else 1


COMMANDS: dict[str, Callable[["Engine", argparse.Namespace], Awaitable[int]]] = {
    "schedule": cmd_schedule, "close": cmd_close, "archive": cmd_archive}
PLAIN: dict[str, Callable[[argparse.Namespace], int]] = {}
SIDES: dict[str, tuple[str, ...]] = {"schedule": (), "close": (), "archive": ("old",)}
