"""The CLI's phase-1 commands: preflight of the new mailbox (``check``); the change
request letter and the scan for the old address live in switchover/cmd_wrapup.py.

Commands are declared in ``add_commands`` and carried out by the functions named in
``COMMANDS`` (``async def (engine, args) -> exit code``, the engine opened by
switchover/cli.py) or ``PLAIN`` (``def (args) -> exit code``, no engine: no state file).
``SIDES`` names the mailboxes whose password each command needs.

``check`` prints what ``engine.preflight`` found, in its own words (``Report.lines``),
or the findings as JSON for scripts; the exit code is the report's: 0 nothing blocks
the switch, 1 something failed or could not be checked, 3 a login was refused.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Awaitable, Callable

from switchover.core.errors import SwitchoverError

from .output import epilog, err, say

if TYPE_CHECKING:
    from switchover.core.engine import Engine

Parser = Callable[[str, str], argparse.ArgumentParser]

COMMANDS: dict[str, Callable[["Engine", argparse.Namespace], Awaitable[int]]] = {}
PLAIN: dict[str, Callable[[argparse.Namespace], int]] = {}
SIDES: dict[str, tuple[str, ...]] = {}

CHECK_HELP = ("preflight before the switch: logins (IMAP and SMTP), capabilities, room in the new "
              "mailbox, a round trip of test messages, the new domain's DNS, the address itself")


def add_commands(cmd: Parser) -> None:
    sp = cmd("check", CHECK_HELP)
    sp.add_argument("--json", action="store_true",
                    help="print the checks as JSON (name, section, label, verdict, found, meaning, advice, blocks)")
    sp.add_argument("--no-send", action="store_true",
                    help="skip the round trip of test messages (the report then says it was not tested)")
    sp.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                    help="how long to wait for each test message to arrive (default 120)")
    sp.epilog = epilog(["switchover check", "switchover check --no-send --json"],
                       {0: "nothing blocks the switch (warnings may remain)",
                        1: "a check failed or could not run",
                        3: "a login was refused or a server could not be reached",
                        4: "another check is running on this state file"})


async def cmd_check(engine: "Engine", args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise SwitchoverError("--timeout must be a positive number of seconds.", exit_code=2)
    if not args.no_send:
        err(f"checking; the test messages get up to {args.timeout:g} s to arrive …")
    report = await engine.preflight.run(send=not args.no_send, timeout=args.timeout)
    if args.json:
        say(json.dumps(report.as_list(), ensure_ascii=False, indent=2))
    else:
        for line in report.lines():
            say(line)
    return report.exit_code


COMMANDS["check"] = cmd_check
SIDES["check"] = ("old", "new")
