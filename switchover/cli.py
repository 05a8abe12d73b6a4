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

This module owns the arguments, the signals, opening the engine and turning errors into
exit codes; the commands themselves are in switchover/commands.py, what they write in
switchover/output.py.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sqlite3
import sys
import traceback
from pathlib import Path
from typing import Awaitable, Callable

from switchover.core.config import Config, find_config, load_config
from switchover.core.engine import Engine
from switchover.core.errors import SwitchoverError
from switchover.core.store import state_problem

from . import cmd_auth, cmd_notify, cmd_people, cmd_prepare, cmd_wrapup, output
from .commands import COMMANDS, SIDES
from .output import PIPE_EXIT, PipeClosed, err, warn

log = logging.getLogger("switchover")

#: modules adding commands of one area each: ``add_commands(cmd)`` declares the parsers
#: (``cmd(name, help)`` returns the sub-parser), ``COMMANDS`` maps each name to its
#: ``async def (engine, args) -> exit code``, ``SIDES`` the mailboxes it needs passwords for
AREAS = (cmd_prepare, cmd_people, cmd_notify, cmd_wrapup, cmd_auth)


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
    for area in AREAS:      # the commands of each later phase live beside their code
        area.add_commands(cmd)
    return p


# -- running a command ---------------------------------------------------------------

def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    for w in cfg.warnings:
        warn(w)
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
        warn(problem)
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    command = args.command or "dashboard"
    args.signals = signals = Signals()
    output.on_pipe_closed(signals.on_pipe_closed)
    try:
        if command == "dashboard":
            return _dashboard(find_config(args.config))
        if command == "init":
            return cmd_init(args)
        if command == "demo":
            return cmd_demo(args)
        commands, sides = dict(COMMANDS), dict(SIDES)
        for area in AREAS:
            commands.update(area.COMMANDS)
            sides.update(area.SIDES)
        plain = next((a.PLAIN[command] for a in AREAS if command in a.PLAIN), None)
        if plain is not None:          # a command that needs no engine (no state file)
            return plain(args)
        fn = commands[command]
        code = asyncio.run(_with_engine(args, fn, sides.get(command, ("old", "new"))))
        if signals.pipe_closed:
            return PIPE_EXIT
        if signals.signum is not None and command != "watch":
            err(f"switchover: {INTERRUPTED}")
            return signals.exit_code
        return code
    except (PipeClosed, BrokenPipeError) as e:
        # the reader of our output is gone (`| head`): end quietly, as Unix tools do
        if isinstance(e, BrokenPipeError):
            output.stdout_gone()
        return PIPE_EXIT
    except SwitchoverError as e:
        if signals.pipe_closed:
            return PIPE_EXIT
        if signals.signum is not None and command != "watch":
            err(f"switchover: {INTERRUPTED}")
            return signals.exit_code
        err(f"switchover: {e.message}")
        return e.exit_code
    except (KeyboardInterrupt, asyncio.CancelledError):
        # KeyboardInterrupt: Ctrl-C before the handlers were in place; CancelledError:
        # a second signal (or the grace period) cut the command short
        if signals.pipe_closed:
            return PIPE_EXIT
        if command == "watch" and signals.signum is not None:
            err("switchover: watch stopped.")
            return 0
        err(f"switchover: {INTERRUPTED}")
        return signals.exit_code
    except Exception as e:  # a bug: still one sentence unless --debug
        if signals.signum is not None and command != "watch":
            err(f"switchover: {INTERRUPTED}")
            return signals.exit_code
        if args.debug:
            traceback.print_exc()
        err(f"switchover: unexpected error ({e.__class__.__name__}: {e}); "
            f"run again with --debug for details.")
        return 70
    finally:
        output.on_pipe_closed(None)


if __name__ == "__main__":
    raise SystemExit(main())
