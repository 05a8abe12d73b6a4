"""The `switchover` command: the dashboard by default, and one sub-command per engine job.

Every command takes ``--config PATH`` (default ``$SWITCHOVER_CONFIG``, ./switchover.yaml, then
the platform's config folder: core/config.py ``config_places``).
Errors end with one sentence and an exit code, never a traceback:
0 ok · 1 some messages refused / not everything verified / a check could not run ·
2 bad config or state file · 3 login or connection failed · 4 another switchover runs the
same job (migrate, backup, import) on this state file · 130 interrupted (Ctrl-C) ·
141 the output was cut off by a closed pipe (``| head``), quietly, as other Unix tools
end there · 143 terminated (SIGTERM).

Ctrl-C and SIGTERM are handled alike: the first asks the running job to stop at a safe
point (migrate, backup and import keep what they recorded; ``watch`` stops its watchers
and exits 0, as a systemd unit expects), a second one stops at once.

This module owns the signals, opening the engine, the log file's wiring (each command's
start, end and exit code, every error sentence and the engine's LogLine events go to
switchover/logfile.py's rotating file) and turning errors into exit codes. The built-in
commands' arguments and help are in switchover/parser.py, the engine commands in
switchover/commands.py, what they write in switchover/output.py; completion.py and
service.py hold ``completion`` and ``service``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib.util
import logging
import shlex
import signal
import sqlite3
import sys
import traceback
from pathlib import Path
from typing import Awaitable, Callable

from switchover.core.config import Config, config_places, find_config, load_config
from switchover.core.engine import Engine
from switchover.core.errors import SwitchoverError
from switchover.core.events import Event, LogLine
from switchover.core.store import state_problem
from switchover.core.version import version

from . import cmd_auth, cmd_everywhere, cmd_notify, cmd_people, cmd_prepare, cmd_wrapup, logfile, output
from .commands import COMMANDS, SIDES
from .output import PIPE_EXIT, PipeClosed, err, warn
from .parser import build_parser

log = logging.getLogger("switchover.cli")

#: modules adding commands of one area each: ``add_commands(cmd)`` declares the parsers
#: (``cmd(name, help)`` returns the sub-parser), ``COMMANDS`` maps each name to its
#: ``async def (engine, args) -> exit code``, ``SIDES`` the mailboxes it needs passwords for
AREAS = (cmd_prepare, cmd_everywhere, cmd_people, cmd_notify, cmd_wrapup, cmd_auth)


def _parser() -> argparse.ArgumentParser:
    """The built-in commands (switchover/parser.py) and each area's."""
    return build_parser(AREAS)


# -- running a command ---------------------------------------------------------------

def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    _start_log(args, cfg)
    for w in cfg.warnings:
        warn(w)
        log.warning("%s", w)
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
        secret = getpass.getpass(f"Password for {acct.username} ({side} mailbox): ")
        logfile.masking.add(secret)              # typed secrets never reach the log either
        engine.set_secret(side, secret)


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


async def with_engine(args: argparse.Namespace, fn: Callable[[Engine, argparse.Namespace], Awaitable[int]],
                       sides: tuple[str, ...] = ("old", "new")) -> int:
    cfg = _config(args)
    engine = await Engine.open(cfg)
    signals: Signals = args.signals
    unsubscribe = engine.subscribe(_log_event)     # the engine's LogLine events, to the log file
    try:
        _ask_secrets(engine, sides)    # before the handlers: Ctrl-C must end a password prompt
        signals.install()
        return await fn(engine, args)
    except sqlite3.Error as e:
        # the state file went read-only, full or bad under a running command
        raise SwitchoverError(state_problem(cfg.state, e), exit_code=2) from None
    finally:
        unsubscribe()
        try:
            await engine.close()
        finally:
            signals.remove()


# -- the log file ----------------------------------------------------------------------

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _log_event(ev: Event) -> None:
    if isinstance(ev, LogLine):
        logging.getLogger("switchover.engine").log(LEVELS.get(ev.level, logging.INFO), "%s", ev.text)


def _start_log(args: argparse.Namespace, cfg: Config) -> None:
    """Open the log file of this config (once per command) and say what runs."""
    if getattr(args, "log_open", False):
        return
    logfile.masking.add_config(cfg)
    if logfile.open_log(logfile.log_path(cfg, args.log_file), debug=args.debug) is not None:
        args.log_open = True
        log.info("start: switchover %s (config %s, version %s)",
                 " ".join(shlex.quote(a) for a in args.argv), cfg.path.absolute(), version())


def _log_quietly(args: argparse.Namespace) -> None:
    """The dashboard loads its config itself; open its log when the config reads."""
    try:
        _start_log(args, load_config(args.config))
    except SwitchoverError:
        pass


def _stderr_logging(debug: bool) -> None:
    """Warnings (everything with --debug) on stderr; the log file takes INFO and up."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(logfile.masking)
    # the CLI's own records and the engine's LogLines are on the screen already
    handler.addFilter(lambda r: not r.name.startswith(("switchover.cli", "switchover.engine")))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def _fail(text: str) -> None:
    """An error sentence: on stderr and in the log."""
    err(f"switchover: {text}")
    log.error("%s", text)


# -- commands without the engine --------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> int:
    from .init import run_init
    # init writes where it is told, else ./switchover.yaml (the folder the user is in)
    return run_init(config_places(args.config)[0], force=args.force)


def cmd_demo(args: argparse.Namespace) -> int:
    missing = [m for m in ("pymap", "aiosmtpd") if importlib.util.find_spec(m) is None]
    if missing:
        raise SwitchoverError(f"The demo needs its mail servers ({', '.join(missing)}): "
                              f"pip install 'switchover[demo]'.", exit_code=2)
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


def cmd_completion(args: argparse.Namespace) -> int:
    from .completion import script
    output.say(script(_parser(), args.shell).rstrip("\n"))
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    from .service import run_service
    return run_service(args.action, find_config(args.config), now=args.now)


def _dashboard(config_path: Path) -> int:
    from switchover.tui.app import run_dashboard
    return run_dashboard(config_path) or 0


TOOLS: dict[str, Callable[[argparse.Namespace], int]] = {
    "init": cmd_init, "demo": cmd_demo, "completion": cmd_completion, "service": cmd_service}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    _stderr_logging(args.debug)
    code = 70
    try:
        code = _run(args)
        return code
    finally:
        if getattr(args, "log_open", False):
            log.log(logging.INFO if code == 0 else logging.WARNING,
                    "end: switchover %s, exit code %d", args.command or "dashboard", code)
        logfile.close_log()


def _run(args: argparse.Namespace) -> int:
    command = args.command or "dashboard"
    args.signals = signals = Signals()
    output.on_pipe_closed(signals.on_pipe_closed)
    try:
        if command == "dashboard":
            _log_quietly(args)
            return _dashboard(find_config(args.config))
        if command in TOOLS:
            return TOOLS[command](args)
        commands, sides = dict(COMMANDS), dict(SIDES)
        for area in AREAS:
            commands.update(area.COMMANDS)
            sides.update(area.SIDES)
        plain = next((a.PLAIN[command] for a in AREAS if command in a.PLAIN), None)
        if plain is not None:          # a command that needs no engine (no state file)
            return plain(args)
        fn = commands[command]
        code = asyncio.run(with_engine(args, fn, sides.get(command, ("old", "new"))))
        if signals.pipe_closed:
            return PIPE_EXIT
        if signals.signum is not None and command != "watch":
            _fail(INTERRUPTED)
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
            _fail(INTERRUPTED)
            return signals.exit_code
        _fail(e.message)
        return e.exit_code
    except (KeyboardInterrupt, asyncio.CancelledError):
        # KeyboardInterrupt: Ctrl-C before the handlers were in place; CancelledError:
        # a second signal (or the grace period) cut the command short
        if signals.pipe_closed:
            return PIPE_EXIT
        if command == "watch" and signals.signum is not None:
            err("switchover: watch stopped.")
            log.info("watch stopped by a signal")
            return 0
        _fail(INTERRUPTED)
        return signals.exit_code
    except Exception as e:  # a bug: still one sentence unless --debug
        if signals.signum is not None and command != "watch":
            _fail(INTERRUPTED)
            return signals.exit_code
        if args.debug:
            traceback.print_exc()
        log.error("unexpected error", exc_info=True)
        err(f"switchover: unexpected error ({e.__class__.__name__}: {e}); "
            f"run again with --debug for details.")
        return 70
    finally:
        output.on_pipe_closed(None)


if __name__ == "__main__":
    raise SystemExit(main())
