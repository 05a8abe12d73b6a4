"""The CLI's people commands: the correspondents of the history, their groups and choices, and the CSV round trip.

    switchover people                  groups with counts, then people (scans what is new first)
    switchover people --json           the same as JSON
    switchover people --csv FILE       write the CSV (address,name,group,language,notify,…)
    switchover people --import FILE    read the user's edits back: all rows or none
    switchover people --group-notify supplier=no   notify a whole group or not

Commands are declared in ``add_commands`` and carried out by the functions named in
``COMMANDS`` (``async def (engine, args) -> exit code``, the engine opened by
switchover/cli.py) or ``PLAIN`` (``def (args) -> exit code``, no engine: no state file).
``SIDES`` names the mailboxes whose password each command needs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from switchover.core.errors import SwitchoverError
from switchover.core.people import csvfile
from switchover.core.people.choices import parse_notify

from .output import epilog, say, warn
from .progress import display_width, pad

if TYPE_CHECKING:
    from switchover.core.engine import Engine

Parser = Callable[[str, str], argparse.ArgumentParser]

ALL = 1_000_000


async def cmd_people(engine: "Engine", args: argparse.Namespace) -> int:
    people = engine.correspondents
    if args.import_file:
        rows = csvfile.read(Path(args.import_file))
        changed = await people.import_rows(rows)
        say(f"Imported {len(rows)} rows from {args.import_file}: {changed} people changed.")
        return 0
    for setting in args.group_notify or ():
        group, _, value = setting.partition("=")
        try:
            notify = parse_notify(value)
        except SwitchoverError:
            raise SwitchoverError(f"--group-notify {setting}: write GROUP=yes or GROUP=no.", exit_code=2) from None
        await people.set_group_notify(group.strip().lower(), notify)
    if not args.no_scan:
        try:
            read = await people.scan_history()
        except SwitchoverError as e:      # what was scanned before still answers
            warn(f"The history was not scanned ({e.message.rstrip('.')}); showing what is known.")
        else:
            if read and not args.json:
                say(f"Scanned {read:,} new messages of the history.")
    everyone = await people.list(limit=ALL, order="group", filter=args.group)
    if args.csv:
        n = csvfile.write(Path(args.csv), everyone)
        say(f"Wrote {n} people to {args.csv} (UTF-8 with BOM; edit name, group, language, notify "
            f"and read it back with --import).")
        return 0
    counts = await people.group_counts()
    if args.json:
        say(json.dumps({"groups": [{"group": g, "people": n, "notify": yes, "group_notify": on}
                                   for g, n, yes, on in counts],
                        "people": [_record(p) for p in everyone]}, ensure_ascii=False, indent=1))
        return 0
    _table(counts, everyone)
    return 0


def _record(p: Any) -> dict[str, Any]:
    return {"address": p.address, "name": p.name, "group": p.group, "group_guess": p.group_guess,
            "evidence": p.evidence, "organisation": p.organisation, "alias_key": p.alias_key,
            "language": p.language, "notify": p.notify, "messages_from": p.messages_from,
            "messages_to": p.messages_to, "last_seen": p.last_seen.isoformat() if p.last_seen else None,
            "state": p.state, "bounce_reason": p.bounce_reason}


def _table(counts: list[tuple[str, int, int, bool]], everyone: list[Any]) -> None:
    say("Groups:")
    for group, n, yes, on in counts:
        if n:
            say(f"  {group:<11} {n:>5}  notify {yes:>5}   (group: {'yes' if on else 'no'})")
    say("")
    # the address column as wide as the longest address (whole addresses: they are copied)
    width = max([34] + [display_width(p.address) + 2 for p in everyone])
    say(f"{'group':<11} {pad('address', width)} {'name':<22} lang notify {'from':>5} {'to':>5}  state / evidence")
    last_key = ""
    for p in everyone:
        alias = "↳ " if p.alias_key and p.alias_key == last_key else ""   # one person's other address
        last_key = p.alias_key
        say(f"{p.group:<11} {pad(alias + p.address, width)} {pad(p.name[:20], 22)} {p.language or '-':<4} "
            f"{'yes' if p.notify else 'no':<6} {p.messages_from:>5} {p.messages_to:>5}  {p.state} · {p.evidence}")


COMMANDS: dict[str, Callable[["Engine", argparse.Namespace], Awaitable[int]]] = {"people": cmd_people}
PLAIN: dict[str, Callable[[argparse.Namespace], int]] = {}
SIDES: dict[str, tuple[str, ...]] = {"people": ("old",)}


def add_commands(cmd: Parser) -> None:
    """Declare this area's sub-commands."""
    sp = cmd("people", "who the old address talks to: groups, languages, notify yes/no; CSV round trip")
    sp.formatter_class = argparse.RawDescriptionHelpFormatter
    sp.epilog = (f"CSV columns: {','.join(csvfile.COLUMNS)}\n\n"
                 + epilog(["switchover people", "switchover people --csv people.csv",
                           "switchover people --import people.csv",
                           "switchover people --group-notify cold=yes"],
                          {0: "listed, written or imported",
                           2: "bad input (a CSV row names its line; nothing is imported)",
                           3: "the old mailbox refused the login or could not be reached"}))
    what = sp.add_mutually_exclusive_group()
    what.add_argument("--csv", metavar="FILE", help="write everyone to a CSV file (scans what is new first)")
    what.add_argument("--import", dest="import_file", metavar="FILE", help="read a CSV the user edited back")
    what.add_argument("--json", action="store_true", help="print groups and people as JSON")
    sp.add_argument("--group", metavar="GROUP", help="only this group (customer, supplier, logistics, …)")
    sp.add_argument("--group-notify", action="append", metavar="GROUP=yes|no",
                    help="notify a whole group or not (a person's own choice still wins)")
    sp.add_argument("--no-scan", action="store_true", help="do not read the history first")
