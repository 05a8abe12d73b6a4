"""The CLI's engine commands: each calls the facets' public methods and prints what they
return in their own words (a migration's ``report_lines()``, a verification's
``lines()``, a backup's ``describe()``, an action's row); nothing here decides what the
engine should do.

Each command is ``async def cmd_X(engine, args) -> exit code``; switchover/cli.py opens
the engine, asks for missing passwords and maps errors to exit codes. The facets record
the checklist proofs of what a command proved (migrate, verify, backup --verify,
autoreply), so the dashboard and the CLI tick the same items.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, TypeVar

from switchover.core.checklist import PHASES
from switchover.core.errors import SwitchoverError
from switchover.core.events import ActionChanged, ArrivalSeen, ConnectionState, Event, LogLine
from switchover.core.progress import fmt_bytes
from switchover.core.store import make_private_dirs, open_private
from switchover.core.transition.actions import NeedsConfirmation
from switchover.core.transition.arrivals import Arrival
from switchover.core.transition.ledger import ActionRow

from .documents import arrivals_doc, checklist_doc, verify_doc
from .output import err, say, say_json
from .progress import Progress, display_width, pad

if TYPE_CHECKING:
    from switchover.core.engine import Engine
    from switchover.core.migrate.records import Plan

T = TypeVar("T")
#: how long forward / remind may take before the command gives up waiting (it stays recorded)
ACTION_TIMEOUT = 120.0
VERBS = {"forward": "forwarded", "remind": "reminded", "handled": "marked handled"}


async def with_progress(engine: "Engine", job: Callable[[], Awaitable[T]]) -> T:
    """Run ``job`` with the progress line on stderr fed by the engine's events."""
    progress = Progress()
    unsubscribe = engine.subscribe(progress)
    try:
        return await job()
    finally:
        unsubscribe()
        progress.finish()


def stop_with(cancel: Callable[[], None]) -> Callable[[], bool]:
    """A graceful stop for cli.Signals: ask the job to stop at its next safe point."""
    def stop() -> bool:
        cancel()
        return True
    return stop


async def cmd_migrate(engine: "Engine", args: argparse.Namespace) -> int:
    # --folder: the migration refuses an unknown or non-selectable folder (exit 2) before
    # it writes anything, and the plan holds only the folders chosen
    migration = engine.migration
    if args.dry_run:
        _print_plan(await migration.plan(folders=args.folder))
        return 0

    def stop() -> bool:
        if migration.state not in ("planning", "running", "paused"):
            return False
        migration.cancel()
        return True

    args.signals.graceful = stop
    summary = await with_progress(engine, lambda: migration.run(folders=args.folder))
    say("")
    for line in summary.report_lines():
        say(line)
    return 0 if summary.ok and not summary.cancelled else 1


def _print_plan(plan: "Plan") -> None:
    """The dry run's table; columns line up by display width (CJK names take two cells)."""
    width = max([display_width(f.source) for f in plan.folders] + [6])
    say(f"{pad('source', width)}  →  destination  (messages, size)")
    for f in plan.folders:
        if f.role == "skip":
            say(f"{pad(f.source, width)}     skipped: {f.reason}")
            continue
        note = "  (only mail no other folder holds)" if f.role == "all_mail" else ""
        say(f"{pad(f.source, width)}  →  {f.destination}  ({f.messages:,} messages, "
            f"{fmt_bytes(f.bytes)}){note}")
    say(f"total: {plan.total_messages:,} messages, {fmt_bytes(plan.total_bytes)} "
        f"in {sum(1 for f in plan.folders if f.role != 'skip')} folders; nothing was written.")


async def cmd_verify(engine: "Engine", args: argparse.Namespace) -> int:
    report = await engine.migration.verify()
    # the report lists subjects of the whole mailbox: written beside the state file unless
    # --report says where (a relative PATH is the current directory's), private either way
    path = Path(args.report).expanduser() if args.report else engine.config.state.with_name(
        f"verify-{dt.datetime.now():%Y%m%d-%H%M%S}.txt")
    _write_private(path, report.text())
    if args.json:
        say_json(verify_doc(report, path))
        return 0 if report.ok else 1
    for line in report.lines():
        say(line)
    say(f"report: {path}")
    return 0 if report.ok else 1


def _write_private(path: Path, text: str) -> None:
    """Write a report readable by the user only (0600; folders it creates 0700)."""
    try:
        make_private_dirs(path.parent)
        with open_private(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
    except OSError as e:
        raise SwitchoverError(f"Cannot write the report {path} ({e.strerror}).", exit_code=2) from None


async def cmd_backup(engine: "Engine", args: argparse.Namespace) -> int:
    root = Path(args.dir)
    backups = engine.backups
    if args.verify:
        report = await backups.verify_backup(root)
        for problem in report.problems:
            say(f"problem: {problem}")
        say(f"backup {root}: {report.describe()}")
        return 0 if report.ok else 1
    args.signals.graceful = stop_with(backups.cancel)
    formats = ("mbox", "eml") if args.format == "both" else (args.format,)
    s = await with_progress(engine, lambda: backups.backup(root, formats=formats))
    say(f"backup: {s.describe()}")
    for e in s.errors[:20]:
        say(f"  error: {e}")
    return 0 if s.ok else 1


async def cmd_import(engine: "Engine", args: argparse.Namespace) -> int:
    backups = engine.backups
    args.signals.graceful = stop_with(backups.cancel)
    s = await with_progress(engine, lambda: backups.import_path(Path(args.path), args.to))
    say(f"import {args.path} → {s.folder or args.to}: {s.describe()}")
    for ref, reason in list(s.refused)[:50]:
        say(f"  refused {ref}: {reason}")
    for ref, reason in list(s.malformed)[:50]:
        say(f"  malformed {ref}: {reason}")
    return 0 if s.ok else 1


def _arrival_line(a: Arrival) -> str:
    when = dt.datetime.fromtimestamp(a.seen_at).strftime("%Y-%m-%d %H:%M")
    actions = " ".join(f"{k}:{v}" for k, v in a.actions.items())
    return f"#{a.id:<5} {when}  [{a.badge}] {a.sender}  {a.subject!r}  {a.state} {actions}".rstrip()


def _event_line(ev: Event) -> str | None:
    """One line of ``watch`` for an event worth a line (arrivals, actions, connections,
    warnings), else None."""
    now = dt.datetime.now().strftime("%H:%M:%S")
    if isinstance(ev, ArrivalSeen) and ev.side == "old":
        return f"{now} arrival #{ev.arrival_id} [{ev.badge}] {ev.sender}: {ev.subject}"
    if isinstance(ev, ActionChanged):
        return (f"{now} action #{ev.action_id} {ev.kind} (arrival #{ev.arrival_id}): {ev.state}"
                + (f" — {ev.detail}" if ev.detail else ""))
    if isinstance(ev, ConnectionState):
        return f"{now} {ev.side} mailbox: {ev.state}" + (f" ({ev.detail})" if ev.detail else "")
    if isinstance(ev, LogLine) and ev.level not in ("debug", "info"):
        return f"{now} {ev.level}: {ev.text}"
    return None


async def cmd_watch(engine: "Engine", args: argparse.Namespace) -> int:
    def on_event(ev: Event) -> None:
        line = _event_line(ev)
        if line is not None:
            say(line)

    unsubscribe = engine.subscribe(on_event)
    try:
        if args.once:
            n = await engine.monitor.catch_up()
            await engine.actions.run_due()
            say(f"{n} new arrival(s)")
            return 0
        stop = asyncio.Event()
        args.signals.graceful = stop_with(stop.set)
        await engine.actions.start()
        try:
            await engine.monitor.run(stop)
        finally:
            await engine.actions.stop()
        if args.signals.signum is not None:
            err("switchover: watch stopped; the next start catches up from here.")
        return 0
    finally:
        unsubscribe()


async def cmd_action(engine: "Engine", args: argparse.Namespace) -> int:
    """Record the action and carry it out now (the engine's ``perform``), then say how it
    ended. The state comes from SQLite, not from events: another switchover (the
    dashboard, a ``watch``) may hold the same action."""
    kind, arrival_id = args.command, args.id
    try:
        row = await engine.actions.perform(arrival_id, kind, confirmed=getattr(args, "yes", False),
                                           timeout=ACTION_TIMEOUT)
    except NeedsConfirmation as e:
        raise SwitchoverError(f"{e.warning.rstrip('.')}; run again with --yes to send it anyway.",
                              exit_code=1) from None
    return _action_outcome(row, arrival_id, kind)


def _action_outcome(row: ActionRow, arrival_id: int, kind: str) -> int:
    """The action's end in one sentence: exit 0 when done, else one SwitchoverError."""
    verb = VERBS[kind]
    outcome = (row.outcome or "").strip()
    shown = outcome and kind != "handled"
    if row.state == "done" and row.earlier:     # done before this command: nothing sent now
        say(f"Arrival #{arrival_id} was already {verb}" + (f" ({outcome})" if shown else "")
            + ("; nothing was sent again." if kind != "handled" else "."))
        return 0
    if row.state == "done":
        say(f"Arrival #{arrival_id} {verb}" + (f": {outcome}." if shown else "."))
        return 0
    if row.state == "failed":
        raise SwitchoverError(f"Arrival #{arrival_id} was not {verb}: {outcome or 'the action failed'}.",
                              exit_code=1)
    if row.state == "cancelled":
        raise SwitchoverError(f"The {kind} of arrival #{arrival_id} was cancelled before anything was sent.",
                              exit_code=1)
    if row.state == "doubt":
        raise SwitchoverError(
            f"Arrival #{arrival_id} may or may not have been {verb}: {outcome or 'the server did not confirm'}; "
            f"it is not sent again by itself. Check with the recipient, then run "
            f"'switchover settle {row.id} --delivered' or '--resend'.", exit_code=1)
    raise SwitchoverError(f"Arrival #{arrival_id} is not {verb} yet ({row.state}"
                          + (f": {outcome}" if outcome else "") + "); the dashboard or 'switchover watch' "
                          f"carries it out, or run this command again later.", exit_code=1)


async def cmd_settle(engine: "Engine", args: argparse.Namespace) -> int:
    """A send in doubt is never retried by itself; the person decides here."""
    row = await engine.actions.settle(args.action_id, args.delivered, ACTION_TIMEOUT)
    if args.delivered:
        say(f"Action #{args.action_id} ({row.kind} of arrival #{row.arrival_id}) marked delivered.")
        return 0
    say(f"Action #{row.id} ({row.kind} of arrival #{row.arrival_id}): {row.state}"
        + (f" — {row.outcome}" if row.outcome else "") + ".")
    return 0 if row.state == "done" else 1


async def cmd_arrivals(engine: "Engine", args: argparse.Namespace) -> int:
    arrivals = await engine.monitor.arrivals(limit=args.limit)
    if args.json:
        say_json(arrivals_doc(arrivals))
        return 0
    if not arrivals:
        say("No arrivals yet; 'switchover watch' (or the dashboard) records them.")
    for a in arrivals:
        say(_arrival_line(a))
    return 0


async def cmd_autoreply(engine: "Engine", args: argparse.Namespace) -> int:
    ar = engine.autoreply
    close = engine.config.transition.close_date
    if args.action == "on":       # a closing date in the past is refused by the engine
        status = await ar.enable(days=args.days, end=close)
    elif args.action == "off":
        status = await ar.disable()
    else:
        status = await ar.status()
    if not status.supported:
        say(status.detail)
        if status.steps:
            say(f"In the provider's web settings: {status.steps}")
        return 1 if args.action != "status" else 0
    say(f"auto-reply: {'active' if status.active else 'off'}"
        + (f" (script {status.script_name})" if status.script_name else "")
        + (f" — {status.detail}" if status.detail else ""))
    return 1 if args.action == "on" and not status.active else 0


async def cmd_checklist(engine: "Engine", args: argparse.Namespace) -> int:
    cl = engine.checklist
    if args.action != "show":
        if not args.key:
            raise SwitchoverError(f"Say which item to {args.action}: switchover checklist {args.action} KEY.")
        if args.action in ("tick", "untick"):
            await cl.tick(args.key, args.action == "tick")
        elif args.action == "skip":
            await cl.skip(args.key)
        elif args.action == "note":
            await cl.set_note(args.key, args.text or "")
    await cl.refresh_evidence()
    progress = await cl.progress()
    items = await cl.items()
    if args.json:
        say_json(checklist_doc(progress, items))
        return 0
    for phase, title in PHASES.items():
        done, total = progress[phase]
        say(f"Phase {phase}: {title}  [{done}/{total}]")
        for i in (i for i in items if i.phase == phase):
            box = {"done": "[x]", "skipped": "[-]"}.get(i.state, "[ ]")
            extra = f" — {i.evidence}" if i.evidence else ""
            note = f"  note: {i.note}" if i.note else ""
            say(f"  {box} {i.key:<15} {i.title}{extra}{note}")
    return 0


COMMANDS: dict[str, Callable[["Engine", argparse.Namespace], Awaitable[int]]] = {
    "migrate": cmd_migrate, "verify": cmd_verify, "backup": cmd_backup,
    "import": cmd_import, "watch": cmd_watch, "arrivals": cmd_arrivals, "autoreply": cmd_autoreply,
    "checklist": cmd_checklist, "forward": cmd_action, "remind": cmd_action, "handled": cmd_action,
    "settle": cmd_settle,
}
#: the mailboxes whose password a command needs (asked for on a terminal when missing)
SIDES = {"import": ("new",), "backup": ("old",), "watch": ("old", "new"), "autoreply": ("old",),
         "arrivals": (), "checklist": (), "forward": ("old", "new"), "remind": ("old",),
         "handled": (), "settle": ("old", "new")}
