"""The `switchover` command: the dashboard by default, and one sub-command per engine job.

Every command takes ``--config PATH`` (default ``$SWITCHOVER_CONFIG`` or ./switchover.yaml).
Errors end with one sentence and an exit code, never a traceback:
0 ok · 1 some messages refused / not everything verified / a check could not run ·
2 bad config or state file · 3 login or connection failed · 4 another switchover runs the
same job (migrate, backup, import) on this state file · 130 interrupted (Ctrl-C) ·
141 the output was cut off by a closed pipe (``| head``), quietly, as other Unix tools
end there · 143 terminated (SIGTERM).

Ctrl-C and SIGTERM are handled alike: the first asks the running job to stop at a safe
point (migrate, backup and import keep what they recorded; ``watch`` stops its watchers
and exits 0, as a systemd unit expects), a second one stops at once.

The facets record the checklist proofs of what a command proved (migrate, verify,
backup --verify, autoreply), so the dashboard and the CLI tick the same items.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import logging
import os
import signal
import sqlite3
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Awaitable, Callable

from switchover.core.config import Config, find_config, load_config
from switchover.core.engine import Engine
from switchover.core.errors import SwitchoverError
from switchover.core.events import ActionChanged, ArrivalSeen, ConnectionState, Event, LogLine
from switchover.core.store import make_private_dirs, open_private, state_problem

from .progress import Progress, display_width, fmt_bytes, pad

log = logging.getLogger("switchover")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="switchover",
        description="Carry a business email address change from the first request to the day "
                    "the old mailbox is closed. Without a command, opens the dashboard.")
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: $SWITCHOVER_CONFIG or ./switchover.yaml)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return sp

    cmd("dashboard", "open the dashboard (the default)")
    sp = cmd("init", "ask a few questions and write a commented switchover.yaml")
    sp.add_argument("--force", action="store_true", help="overwrite an existing config")
    cmd("check", "log in to both mailboxes and record the result on the checklist")
    sp = cmd("migrate", "copy every planned folder from the old mailbox to the new one")
    sp.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    sp.add_argument("--folder", action="append", metavar="NAME", help="only this source folder (repeatable)")
    sp = cmd("verify", "compare source and destination folder by folder")
    sp.add_argument("--report", metavar="PATH",
                    help="where to write the report (default: verify-DATE.txt next to the state file)")
    sp = cmd("backup", "back up every folder of the old mailbox to local files")
    sp.add_argument("dir", metavar="DIR")
    sp.add_argument("--verify", action="store_true", help="check an existing backup instead of writing one")
    sp.add_argument("--format", choices=["mbox", "eml", "both"], default="both")
    sp = cmd("import", "upload a .mbox file or a folder of .eml files into the new mailbox")
    sp.add_argument("path", metavar="PATH")
    sp.add_argument("--to", required=True, metavar="FOLDER", help="destination folder in the new mailbox")
    sp = cmd("watch", "watch the old inbox (headless), printing one line per arrival and action")
    sp.add_argument("--once", action="store_true", help="catch up once and exit")
    for name, text in (("forward", "forward an arrival to the new address"),
                       ("remind", "send the sender of an arrival a reminder of the new address"),
                       ("handled", "mark an arrival handled")):
        sp = cmd(name, text)
        sp.add_argument("id", type=int, metavar="ID", help="arrival id (as shown by 'watch' or 'arrivals')")
        if name == "remind":
            sp.add_argument("--yes", action="store_true",
                            help="send even to a list or automated sender (asked otherwise)")
    sp = cmd("settle", "decide a send in doubt (the server never confirmed it): it arrived, or send it again")
    sp.add_argument("action_id", type=int, metavar="ACTION", help="action id (as shown by 'arrivals' or 'watch')")
    how = sp.add_mutually_exclusive_group(required=True)
    how.add_argument("--delivered", action="store_true", help="it arrived: mark it done")
    how.add_argument("--resend", action="store_true", help="it did not arrive: send it again now")
    sp = cmd("arrivals", "list recent arrivals in the old mailbox")
    sp.add_argument("--limit", type=int, default=30)
    sp = cmd("autoreply", "install, remove or show the server-side auto-reply (ManageSieve)")
    sp.add_argument("action", choices=["on", "off", "status"])
    sp.add_argument("--days", type=int, default=7, help="answer the same sender at most once per N days")
    sp = cmd("checklist", "show the phase checklist, or tick / untick / note an item")
    sp.add_argument("action", nargs="?", choices=["show", "tick", "untick", "skip", "note"], default="show")
    sp.add_argument("key", nargs="?")
    sp.add_argument("text", nargs="?")
    sp = cmd("demo", "start the built-in demo (local servers, generated mailbox) and open the dashboard")
    sp.add_argument("--reset", action="store_true", help="start the demo over")
    sp.add_argument("--headless", action="store_true", help="no dashboard: watch for --seconds and print arrivals")
    sp.add_argument("--seconds", type=float, default=20.0)
    sp.add_argument("--dir", metavar="DIR", help="demo state directory")
    return p


# -- helpers ---------------------------------------------------------------------------

class PipeClosed(Exception):
    """stdout went to a pipe whose reader is gone (``| head``): end quietly, exit 141."""


#: set by main: called once when stdout turns out closed (a running watch stops)
_on_pipe_closed: Callable[[], None] | None = None
PIPE_EXIT = 141      # 128 + SIGPIPE, what a shell reports for tools that end there


def _stdout_gone() -> None:
    """Point stdout at /dev/null so nothing else (the interpreter's final flush included)
    fails on the dead pipe, and tell the running command."""
    global _on_pipe_closed
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    hook, _on_pipe_closed = _on_pipe_closed, None
    if hook is not None:
        hook()


def _say(text: str = "") -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _stdout_gone()
        raise PipeClosed() from None


def _warn(text: str) -> None:
    _err(f"warning: {text}")


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    for w in cfg.warnings:
        _warn(w)
    return cfg


def _ask_secrets(engine: Engine, sides: tuple[str, ...] = ("old", "new")) -> None:
    """Ask on a terminal for a secret the config cannot give now; elsewhere say why it
    cannot (naming the unset variable or the missing command), exit 2."""
    for side in sides:
        acct = engine.account(side)          # with a secret typed earlier, if any
        problem = acct.secret_problem()
        if problem is None:
            continue
        if not sys.stdin.isatty():
            raise SwitchoverError(problem, exit_code=2)
        _warn(problem)
        engine.set_secret(side, getpass.getpass(f"Password for {acct.username} ({side} mailbox): "))


INTERRUPTED = "interrupted; progress is saved, run the same command again to resume."
#: seconds a job gets to stop at a safe point after the first signal before it is cut
GRACE_SECONDS = 20.0


class Signals:
    """Ctrl-C (SIGINT) and SIGTERM while a command runs on the loop.

    The first signal calls ``graceful`` (set by the command: cancel the job at a safe
    point, or set the watch's stop event); when there is none, when it declines (returns
    False), when a second signal comes or after GRACE_SECONDS the command's task is
    cancelled. ``signum`` tells ``main`` what happened.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.pipe_closed = False
        self.graceful: Callable[[], bool] | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._installed: list[int] = []

    def install(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._loop.add_signal_handler(signum, self._on_signal, signum)
                self._installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass   # not the main thread / no signals here: Ctrl-C stays KeyboardInterrupt

    def remove(self) -> None:
        for signum in self._installed:
            assert self._loop is not None
            self._loop.remove_signal_handler(signum)
        self._installed.clear()

    def _on_signal(self, signum: int) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if first and self.graceful is not None:
            try:
                took = self.graceful()
            except Exception:
                took = False
            if took:
                assert self._loop is not None
                self._loop.call_later(GRACE_SECONDS, self._cut)
                return
        self._cut()

    def _cut(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def on_pipe_closed(self) -> None:
        """stdout's reader is gone: a command printing as it goes (watch) stops at its
        safe point; the others end when their next line fails."""
        self.pipe_closed = True
        if self.graceful is not None:
            try:
                self.graceful()
            except Exception:
                pass

    @property
    def exit_code(self) -> int:
        return 143 if self.signum == signal.SIGTERM else 130


async def _with_engine(args: argparse.Namespace, fn: Callable[[Engine, argparse.Namespace], Awaitable[int]],
                       sides: tuple[str, ...] = ("old", "new")) -> int:
    cfg = _config(args)
    engine = await Engine.open(cfg)
    signals: Signals = args.signals
    try:
        _ask_secrets(engine, sides)    # before the handlers: Ctrl-C must end a password prompt
        signals.install()
        return await fn(engine, args)
    except sqlite3.Error as e:
        # the state file went read-only, full or bad under a running command
        raise SwitchoverError(state_problem(cfg.state, e), exit_code=2) from None
    finally:
        try:
            await engine.close()
        finally:
            signals.remove()


# -- commands --------------------------------------------------------------------------

async def cmd_check(engine: Engine, args: argparse.Namespace) -> int:
    results = await engine.checklist.check_logins()
    ok = True
    for side, text in results.items():
        item = await engine.checklist.item(f"login_{side}")
        good = item.state == "done"
        ok &= good
        _say(f"{side:>4}: {'ok' if good else 'FAILED'} — {text}")
    return 0 if ok else 3


def _stoppable(job: Any, running: tuple[str, ...] | None = None) -> Callable[[], bool]:
    """A graceful stop for Signals: cancel ``job`` when it is in one of ``running``."""
    def stop() -> bool:
        if running is not None and getattr(job, "state", None) not in running:
            return False
        job.cancel()
        return True
    return stop


async def cmd_migrate(engine: Engine, args: argparse.Namespace) -> int:
    # --folder: the migration refuses an unknown or non-selectable folder (exit 2) before
    # it writes anything, and the plan holds only the folders chosen
    if args.dry_run:
        plan = await (engine.migration.plan(folders=args.folder) if args.folder else engine.migration.plan())
        _print_plan(plan)
        return 0
    args.signals.graceful = _stoppable(engine.migration, ("planning", "running", "paused"))
    progress = Progress()
    unsubscribe = engine.subscribe(progress)
    try:
        summary = await engine.migration.run(folders=args.folder)
    finally:
        unsubscribe()
        progress.finish()
    _print_summary(summary)
    if summary.cancelled:
        return 1
    return 0 if summary.ok else 1


def _print_plan(plan: Any) -> None:
    """The dry run's table; columns line up by display width (CJK names take two cells)."""
    width = max([display_width(f.source) for f in plan.folders] + [6])
    _say(f"{pad('source', width)}  →  destination  (messages, size)")
    for f in plan.folders:
        if f.role == "skip":
            _say(f"{pad(f.source, width)}     skipped: {f.reason}")
            continue
        note = "  (only mail no other folder holds)" if f.role == "all_mail" else ""
        _say(f"{pad(f.source, width)}  →  {f.destination}  ({f.messages:,} messages, "
             f"{fmt_bytes(f.bytes)}){note}")
    _say(f"total: {plan.total_messages:,} messages, {fmt_bytes(plan.total_bytes)} "
         f"in {sum(1 for f in plan.folders if f.role != 'skip')} folders; nothing was written.")


def _print_summary(s: Any) -> None:
    """The migration's own words: its headline, the counts, refusals grouped by cause."""
    refused = list(s.refused)
    errors = list(s.errors)
    _say("")
    head = s.headline()
    if head:
        _say(head[0].upper() + head[1:] + ".")
    _say(f"transferred   {s.transferred:,}")
    _say(f"already there {s.already_there:,}")
    _say(f"refused       {len(refused):,}")
    _say(f"errors        {len(errors):,}")
    if s.duplicates_removed:
        _say(f"extra copies  {s.duplicates_removed:,} removed (left by an interrupted run)")
    _say(f"speed         {s.msgs_per_s:,.0f} msg/s, {s.bytes_per_s / 1e6:,.1f} MB/s")
    _say(f"elapsed       {s.elapsed:,.1f} s")
    if len(refused) <= 20:
        for r in refused:
            _say(f"  refused: {r.folder} UID {r.uid} {(r.subject or '')[:50]!r}: {r.reason}")
    else:   # one line per cause, not hundreds of lines with the same words
        for cause, n in s.refusal_groups():
            _say(f"  refused {n:,} messages: {cause}")
        _say("  (every refused message is listed by 'switchover verify')")
    for e in errors[:20]:
        _say(f"  error: {e}")
    if len(errors) > 20:
        _say(f"  … and {len(errors) - 20} more errors")


async def cmd_verify(engine: Engine, args: argparse.Namespace) -> int:
    report = await engine.migration.verify()
    # the report lists subjects of the whole mailbox: written beside the state file unless
    # --report says where (a relative PATH is the current directory's), private either way
    path = Path(args.report).expanduser() if args.report else engine.config.state.with_name(
        f"verify-{dt.datetime.now():%Y%m%d-%H%M%S}.txt")
    _write_private(path, report.text())
    for f in report.folders:
        missing, extra, dup = len(f.missing), len(f.extra), len(f.duplicates)
        _say(f"{f.verdict:<10} {f.source} → {f.destination}: {f.source_count:,} / {f.dest_count:,}"
             + (f", {missing} missing" if missing else "") + (f", {dup} duplicates" if dup else "")
             + (f", {extra} extra (not in the old mailbox)" if extra else "")
             + (f" ({f.details})" if f.details else ""))
    _say(f"result: {report.result()}")
    _say(f"report: {path}")
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


async def cmd_backup(engine: Engine, args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if args.verify:
        report = await engine.backups.verify_backup(root)
        for problem in report.problems:
            _say(f"problem: {problem}")
        messages = sum(f.found for f in report.folders)
        if report.ok:
            _say(f"backup {root}: verified, {messages:,} messages in {len(report.folders)} folders, "
                 f"nothing on the server is missing from it")
        elif report.unchecked and len(report.unchecked) == len(report.problems):
            # the files are intact but the comparison with the mailbox did not run
            _say(f"backup {root}: NOT verified — {messages:,} messages in {len(report.folders)} folders "
                 f"are intact, but {_listing(report.unchecked)} could not be compared with it, so "
                 f"mail newer than the backup may be missing from it")
        else:
            _say(f"backup {root}: NOT complete")
        return 0 if report.ok else 1
    args.signals.graceful = _stoppable(engine.backups)
    formats = ("mbox", "eml") if args.format == "both" else (args.format,)
    progress = Progress()
    unsubscribe = engine.subscribe(progress)
    try:
        s = await engine.backups.backup(root, formats=formats)
    finally:
        unsubscribe()
        progress.finish()
    _say(f"backup {root}: {s.messages_written:,} written, {s.already_there:,} already there, "
         f"{fmt_bytes(s.bytes_written)} in {s.elapsed:,.1f} s")
    for e in s.errors[:20]:
        _say(f"  error: {e}")
    return 0 if s.ok else 1


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


async def cmd_import(engine: Engine, args: argparse.Namespace) -> int:
    args.signals.graceful = _stoppable(engine.backups)
    progress = Progress()
    unsubscribe = engine.subscribe(progress)
    try:
        s = await engine.backups.import_path(Path(args.path), args.to)
    finally:
        unsubscribe()
        progress.finish()
    folder = s.folder or args.to
    _say(f"import {args.path} → {folder}: {s.uploaded:,} uploaded, {s.already_there:,} already there, "
         f"{len(s.refused):,} refused, {len(s.malformed):,} malformed, {s.elapsed:,.1f} s")
    for ref, reason in list(s.refused)[:50]:
        _say(f"  refused {ref}: {reason}")
    for ref, reason in list(s.malformed)[:50]:
        _say(f"  malformed {ref}: {reason}")
    return 0 if s.ok else 1


def _arrival_line(a: Any) -> str:
    when = dt.datetime.fromtimestamp(a.seen_at).strftime("%Y-%m-%d %H:%M")
    actions = " ".join(f"{k}:{v}" for k, v in (a.actions or {}).items())
    return f"#{a.id:<5} {when}  [{a.badge}] {a.sender}  {a.subject!r}  {a.state} {actions}".rstrip()


async def cmd_watch(engine: Engine, args: argparse.Namespace) -> int:
    def on_event(ev: Event) -> None:
        now = dt.datetime.now().strftime("%H:%M:%S")
        if isinstance(ev, ArrivalSeen) and ev.side == "old":
            _say(f"{now} arrival #{ev.arrival_id} [{ev.badge}] {ev.sender}: {ev.subject}")
        elif isinstance(ev, ActionChanged):
            _say(f"{now} action #{ev.action_id} {ev.kind} (arrival #{ev.arrival_id}): {ev.state}"
                 + (f" — {ev.detail}" if ev.detail else ""))
        elif isinstance(ev, ConnectionState):
            _say(f"{now} {ev.side} mailbox: {ev.state}" + (f" ({ev.detail})" if ev.detail else ""))
        elif isinstance(ev, LogLine) and ev.level not in ("debug", "info"):
            _say(f"{now} {ev.level}: {ev.text}")

    unsubscribe = engine.subscribe(on_event)
    try:
        if args.once:
            n = await engine.monitor.catch_up()
            await engine.actions.run_due()
            _say(f"{n} new arrival(s)")
            return 0
        stop = asyncio.Event()

        def graceful() -> bool:
            stop.set()
            return True

        args.signals.graceful = graceful
        await engine.actions.start()
        try:
            await engine.monitor.run(stop)
        finally:
            await engine.actions.stop()
        if args.signals.signum is not None:
            _err("switchover: watch stopped; the next start catches up from here.")
        return 0
    finally:
        unsubscribe()


VERBS = {"forward": "forwarded", "remind": "reminded", "handled": "marked handled"}
#: how long forward / remind may take before the command gives up waiting (it stays recorded)
ACTION_TIMEOUT = 120.0


async def cmd_action(engine: Engine, args: argparse.Namespace) -> int:
    """Record the action, carry it out now (unless it was done already) and report.

    The state is read from SQLite, not from events: another switchover (the dashboard,
    a ``watch``) may hold the same action, and its events never reach this process.
    """
    kind, arrival_id = args.command, args.id
    verb = VERBS[kind]
    if await engine.monitor.arrival(arrival_id) is None:
        raise SwitchoverError(f"There is no arrival #{arrival_id}; 'switchover arrivals' lists them.")
    before = {r.id: r.state for r in await engine.actions.for_arrival(arrival_id)}
    await engine.actions.reconcile()          # settle one left 'running' by a dead process
    action_id = await _request(engine, arrival_id, kind, args)
    row = await engine.actions.get(action_id)
    if action_id in before and row.state == "done":
        _say(f"Arrival #{arrival_id} was already {verb}"
             + (f" ({row.outcome})" if row.outcome and kind != "handled" else "")
             + ("; nothing was sent again." if kind != "handled" else "."))
        return 0
    deadline = time.monotonic() + ACTION_TIMEOUT
    while True:
        await engine.actions.run_due()
        row = await engine.actions.get(action_id)
        if row.state in ("done", "failed", "cancelled", "doubt"):
            break
        retry_later = row.state == "pending" and row.attempts > 0 and row.not_before > time.time() + 1
        if retry_later or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    outcome = (row.outcome or "").strip()
    if row.state == "done":
        _say(f"Arrival #{arrival_id} {verb}" + (f": {outcome}." if outcome and kind != "handled" else "."))
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
            f"'switchover settle {action_id} --delivered' or '--resend'.", exit_code=1)
    raise SwitchoverError(f"Arrival #{arrival_id} is not {verb} yet ({row.state}"
                          + (f": {outcome}" if outcome else "") + "); the dashboard or 'switchover watch' "
                          f"carries it out, or run this command again later.", exit_code=1)


async def _request(engine: Engine, arrival_id: int, kind: str, args: argparse.Namespace) -> int:
    """Record the action. A reminder to a list or automated sender needs ``--yes``: without
    it the engine's warning is shown and nothing is recorded (exit 1)."""
    if kind != "remind":
        return await engine.actions.request(arrival_id, kind, delay=0)
    from switchover.core.transition.actions import NeedsConfirmation
    try:
        return await engine.actions.request(arrival_id, kind, delay=0, confirmed=args.yes)
    except NeedsConfirmation as e:
        warning = (getattr(e, "warning", "") or e.message).strip()
        raise SwitchoverError(f"{warning.rstrip('.')}; run again with --yes to send it anyway.",
                              exit_code=1) from None


async def cmd_settle(engine: Engine, args: argparse.Namespace) -> int:
    """A send in doubt is never retried by itself; the person decides here."""
    row = await engine.actions.get(args.action_id)
    new_id = await engine.actions.resolve_doubt(args.action_id, delivered=args.delivered)
    if args.delivered:
        _say(f"Action #{args.action_id} ({row.kind} of arrival #{row.arrival_id}) marked delivered.")
        return 0
    deadline = time.monotonic() + ACTION_TIMEOUT
    while time.monotonic() < deadline:
        await engine.actions.run_due()
        new = await engine.actions.get(new_id)
        if new.state in ("done", "failed", "cancelled", "doubt"):
            break
        await asyncio.sleep(0.3)
    new = await engine.actions.get(new_id)
    _say(f"Action #{new_id} ({new.kind} of arrival #{new.arrival_id}): {new.state}"
         + (f" — {new.outcome}" if new.outcome else "") + ".")
    return 0 if new.state == "done" else 1


async def cmd_arrivals(engine: Engine, args: argparse.Namespace) -> int:
    arrivals = await engine.monitor.arrivals(limit=args.limit)
    if not arrivals:
        _say("No arrivals yet; 'switchover watch' (or the dashboard) records them.")
    for a in arrivals:
        _say(_arrival_line(a))
    return 0


async def cmd_autoreply(engine: Engine, args: argparse.Namespace) -> int:
    ar = engine.autoreply
    close = engine.config.transition.close_date
    if args.action == "on" and close is not None and close < dt.date.today():
        raise SwitchoverError(f"transition.close_date is {close}, in the past: an auto-reply ending then "
                              f"would never answer; set the real closing date in the config first.",
                              exit_code=2)
    if args.action == "on":
        status = await ar.enable(days=args.days, end=close)
    elif args.action == "off":
        status = await ar.disable()
    else:
        status = await ar.status()
    if not status.supported:
        _say(status.detail)
        if status.steps:
            _say(f"In the provider's web settings: {status.steps}")
        return 1 if args.action != "status" else 0
    _say(f"auto-reply: {'active' if status.active else 'off'}"
         + (f" (script {status.script_name})" if status.script_name else "")
         + (f" — {status.detail}" if status.detail else ""))
    if args.action == "on" and not status.active:
        return 1
    return 0


async def cmd_checklist(engine: Engine, args: argparse.Namespace) -> int:
    cl = engine.checklist
    if args.action != "show":
        if not args.key:
            raise SwitchoverError(f"Say which item to {args.action}: switchover checklist {args.action} KEY.")
        if args.action == "tick":
            await cl.tick(args.key, True)
        elif args.action == "untick":
            await cl.tick(args.key, False)
        elif args.action == "skip":
            await cl.skip(args.key)
        elif args.action == "note":
            await cl.set_note(args.key, args.text or "")
    await cl.refresh_evidence()
    from switchover.core.checklist import PHASES
    progress = await cl.progress()
    items = await cl.items()
    for phase, title in PHASES.items():
        done, total = progress[phase]
        _say(f"Phase {phase}: {title}  [{done}/{total}]")
        for i in (i for i in items if i.phase == phase):
            box = {"done": "[x]", "skipped": "[-]"}.get(i.state, "[ ]")
            extra = f" — {i.evidence}" if i.evidence else ""
            note = f"  note: {i.note}" if i.note else ""
            _say(f"  {box} {i.key:<15} {i.title}{extra}{note}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from .init import run_init
    return run_init(find_config(args.config), force=args.force)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DEFAULT_DIR, run_headless, start_demo
    state_dir = Path(args.dir).expanduser() if args.dir else DEFAULT_DIR
    print(f"starting the demo in {state_dir} …", file=sys.stderr, flush=True)
    handle = start_demo(state_dir, reset=args.reset)
    try:
        if args.headless:
            return run_headless(handle, args.seconds)
        return _dashboard(handle.config_path)
    finally:
        handle.stop()


def _dashboard(config_path: Path) -> int:
    from switchover.tui.app import run_dashboard
    return run_dashboard(config_path) or 0


COMMANDS: dict[str, Callable[[Engine, argparse.Namespace], Awaitable[int]]] = {
    "check": cmd_check, "migrate": cmd_migrate, "verify": cmd_verify, "backup": cmd_backup,
    "import": cmd_import, "watch": cmd_watch, "arrivals": cmd_arrivals, "autoreply": cmd_autoreply,
    "checklist": cmd_checklist, "forward": cmd_action, "remind": cmd_action, "handled": cmd_action,
    "settle": cmd_settle,
}
#: the mailboxes whose password a command needs (asked for on a terminal when missing)
SIDES = {"import": ("new",), "backup": ("old",), "watch": ("old", "new"), "autoreply": ("old",),
         "arrivals": (), "checklist": (), "forward": ("old", "new"), "remind": ("old",),
         "handled": (), "settle": ("old", "new")}


def main(argv: list[str] | None = None) -> int:
    global _on_pipe_closed
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    command = args.command or "dashboard"
    args.signals = signals = Signals()
    _on_pipe_closed = signals.on_pipe_closed
    try:
        if command == "dashboard":
            return _dashboard(find_config(args.config))
        if command == "init":
            return cmd_init(args)
        if command == "demo":
            return cmd_demo(args)
        fn = COMMANDS[command]
        code = asyncio.run(_with_engine(args, fn, SIDES.get(command, ("old", "new"))))
        if signals.pipe_closed:
            return PIPE_EXIT
        if signals.signum is not None and command != "watch":
            _err(f"switchover: {INTERRUPTED}")
            return signals.exit_code
        return code
    except (PipeClosed, BrokenPipeError) as e:
        # the reader of our output is gone (`| head`): end quietly, as Unix tools do
        if isinstance(e, BrokenPipeError):
            _stdout_gone()
        return PIPE_EXIT
    except SwitchoverError as e:
        if signals.pipe_closed:
            return PIPE_EXIT
        if signals.signum is not None and command != "watch":
            _err(f"switchover: {INTERRUPTED}")
            return signals.exit_code
        _err(f"switchover: {e.message}")
        return e.exit_code
    except (KeyboardInterrupt, asyncio.CancelledError):
        # KeyboardInterrupt: Ctrl-C before the handlers were in place; CancelledError:
        # a second signal (or the grace period) cut the command short
        if signals.pipe_closed:
            return PIPE_EXIT
        if command == "watch" and signals.signum is not None:
            _err("switchover: watch stopped.")
            return 0
        _err(f"switchover: {INTERRUPTED}")
        return signals.exit_code
    except Exception as e:  # a bug: still one sentence unless --debug
        if signals.signum is not None and command != "watch":
            _err(f"switchover: {INTERRUPTED}")
            return signals.exit_code
        if args.debug:
            traceback.print_exc()
        _err(f"switchover: unexpected error ({e.__class__.__name__}: {e}); "
             f"run again with --debug for details.")
        return 70
    finally:
        _on_pipe_closed = None


def _err(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
