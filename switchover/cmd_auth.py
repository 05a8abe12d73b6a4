"""The CLI's sign-in commands: ``switchover login old|new`` signs an OAuth2 account in
(Microsoft device code, Google browser redirect or pasted address) or keeps a password in
the OS keyring (``--password``); ``--forget`` removes what is stored.

Commands are declared in ``add_commands`` and carried out by the functions named in
``COMMANDS`` (``async def (engine, args) -> exit code``, the engine opened by
switchover/cli.py) or ``PLAIN`` (``def (args) -> exit code``, no engine: no state file).
``SIDES`` names the mailboxes whose password each command needs. The work is
core/auth/'s; this module asks and prints.
"""

from __future__ import annotations

import argparse
import getpass
import select
import sys
import threading
from typing import TYPE_CHECKING, Awaitable, Callable

from switchover.core.auth import login as signin
from switchover.core.auth.advice import sign_in_advice
from switchover.core.auth.oauth2 import SignIn, begin_sign_in
from switchover.core.auth.tokens import SERVICE, entry_user
from switchover.core.config import Account, load_config
from switchover.core.errors import ConfigError, SwitchoverError

from .output import epilog, say, warn

if TYPE_CHECKING:
    from switchover.core.engine import Engine

Parser = Callable[[str, str], argparse.ArgumentParser]

COMMANDS: dict[str, Callable[["Engine", argparse.Namespace], Awaitable[int]]] = {}
SIDES: dict[str, tuple[str, ...]] = {}


def add_commands(cmd: Parser) -> None:
    sp = cmd("login", "sign in to a mailbox (OAuth2: Microsoft 365, Google Workspace) or keep "
                      "its password in the OS keyring")
    sp.add_argument("side", choices=["old", "new"], help="which mailbox")
    what = sp.add_mutually_exclusive_group()
    what.add_argument("--password", action="store_true",
                      help="ask the password (or read it from a pipe), check it with a login and "
                           "keep it in the OS keyring (then set password_keyring: true)")
    what.add_argument("--forget", action="store_true",
                      help="remove the stored sign-in or password from the OS keyring")
    sp.epilog = epilog(["switchover login new", "switchover login old --password",
                        "pass show mail/old | switchover login old --password"],
                       {0: "signed in (or stored) and the IMAP login works",
                        3: "the sign-in or login was refused, or the server is unreachable"})


def cmd_login(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    for w in cfg.warnings:
        warn(w)
    account = cfg.account(args.side)
    where = f"the OS keyring (service {SERVICE}, {entry_user(account.side, account.username)})"
    if args.forget:
        gone = signin.forget(account)
        say(f"Removed the {args.side} mailbox's secret from {where}." if gone
            else f"Nothing was stored for the {args.side} mailbox in {where}.")
        return 0
    if args.password:
        keep_password(account)
        say(f"The {args.side} mailbox took the password; it is kept in {where}.")
        if not account.password_keyring:
            say(f"To use it, write password_keyring: true under {args.side}: in {cfg.path} "
                f"(and remove the other password setting).")
        return 0
    if not account.signs_in:
        raise ConfigError(
            f"The {args.side} mailbox does not sign in with OAuth2 ({args.side}.auth is "
            f"{account.auth}{' with an oauth2_token_command' if account.oauth2_token_command else ''}); "
            f"keep its password in the OS keyring with: switchover login {args.side} --password")
    who = sign_in(account)
    say(f"Signed in{f' as {who}' if who else ''}; the IMAP login of the {args.side} mailbox works "
        f"and the sign-in is kept in {where}. Tokens refresh by themselves from now on.")
    return 0


def sign_in(account: Account) -> str:
    """The whole interactive sign-in of an ``auth: oauth2`` account on the terminal (also
    for ``init``): the Gmail advice when it applies, the provider's address (and code),
    the wait, then one IMAP login with the new token. Returns who signed in ("" when the
    provider does not say); raises SwitchoverError with one sentence."""
    advice = sign_in_advice(account)
    if advice:
        warn(advice)
    who = _interactive(begin_sign_in(account))
    signin.prove_login(account)
    return who


def keep_password(account: Account) -> None:
    """Ask the password (getpass; a line from a pipe), check it with an IMAP login and keep
    it in the OS keyring (also for ``init``)."""
    signin.keep_password(account, _read_password(account))


def _interactive(flow: SignIn) -> str:
    """Show the flow's instructions and wait; a Google flow also reads a pasted address.
    The reader stops with the flow: when the browser came back by itself, the next line
    the person types belongs to whatever asks next (``init``'s questions, the new side's
    sign-in), not to a finished flow."""
    say(flow.instructions())
    done = threading.Event()
    reader = None
    if flow.accepts_paste:          # a terminal, or a pipe (scripts, tests)
        reader = threading.Thread(target=_read_paste, args=(flow, done), name="switchover-paste",
                                  daemon=True)
        reader.start()
    try:
        return flow.wait()
    except KeyboardInterrupt:
        flow.cancel()
        raise
    finally:
        done.set()
        if reader is not None:
            reader.join(1.0)


def _read_paste(flow: SignIn, done: threading.Event) -> None:
    """Lines from stdin until one is a sign-in address, stdin ends or the flow is over.

    On a terminal: select() with a short timeout, then one line — a thread blocked in
    input() cannot be stopped and would eat the next answer the person types for
    something else (a terminal hands over whole lines, so nothing is left in a buffer
    select() cannot see). From a pipe (scripts), or where select() cannot watch stdin
    (Windows): plain blocking reads, as lines may already sit in Python's buffer."""
    prompt = "Address the browser ended on (or wait): "
    watch = _selectable_tty()
    sys.stdout.write(prompt)
    sys.stdout.flush()
    while not done.is_set():
        if watch:
            try:
                ready, _, _ = select.select([sys.stdin], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not ready or done.is_set():
                continue
        try:
            line = sys.stdin.readline()
        except (OSError, ValueError):
            return
        if not line:
            return                  # stdin ended: the browser may still come back
        if done.is_set() or not line.strip():
            continue
        try:
            flow.paste(line)
            return
        except SwitchoverError as e:
            warn(e.message)
            sys.stdout.write(prompt)
            sys.stdout.flush()


def _selectable_tty() -> bool:
    try:
        if not sys.stdin.isatty():
            return False
        select.select([sys.stdin], [], [], 0)
        return True
    except (OSError, ValueError, AttributeError):
        return False


def _read_password(account: Account) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"Password for {account.username} ({account.side} mailbox): ")
    return sys.stdin.readline().rstrip("\r\n")


PLAIN: dict[str, Callable[[argparse.Namespace], int]] = {"login": cmd_login}
