"""The CLI's phase-3 campaign commands: ``switchover notify`` — send the change notice
(``--send``), the internal notice (``--internal``), the final reminder (``--final``), a
test to your own addresses (``--test``), show one person's message (``--preview``), the
counts (``--status``), write the templates out (``--templates``) and decide a notice in
doubt (``--settle``). The engine's ``notices`` facet does the work; this prints it.

Commands are declared in ``add_commands`` and carried out by the functions named in
``COMMANDS`` (``async def (engine, args) -> exit code``, the engine opened by
switchover/cli.py) or ``PLAIN`` (``def (args) -> exit code``, no engine: no state file).
``SIDES`` names the mailboxes whose password each command needs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable

from switchover.core.errors import SwitchoverError
from switchover.core.events import CampaignProgress, Event, LogLine
from switchover.core.progress import fmt_eta

from .output import epilog, err, say

if TYPE_CHECKING:
    from switchover.core.engine import Engine

Parser = Callable[[str, str], argparse.ArgumentParser]

COMMANDS: dict[str, Callable[["Engine", argparse.Namespace], Awaitable[int]]] = {}
PLAIN: dict[str, Callable[[argparse.Namespace], int]] = {}
SIDES: dict[str, tuple[str, ...]] = {}

EXAMPLES = epilog([
    "switchover notify --test                      # one per language, to your own two addresses",
    "switchover notify --preview li.lei@example.com",
    "switchover notify --send                      # asks first; --yes does not",
    "switchover notify --send --group supplier --limit 20",
    "switchover notify --internal",
    "switchover notify --final                     # from notices.final_reminder_days before the close",
    "switchover notify --status --json",
    "switchover notify --settle li.lei@example.com --delivered",
    "switchover notify --templates notices/",
], {0: "done: everything sent (or nothing waiting), the test arrived, the status shown",
    1: "some notice failed or is in doubt, the campaign stopped (policy, repeated 4xx), a test did not arrive",
    2: "bad input, or the final reminder before its first day",
    3: "the new account's SMTP refused the login",
    4: "another switchover is sending notices with this state file"})


def add_commands(cmd: Parser) -> None:
    sp = cmd("notify", "send the change notice to your correspondents, test it, preview it, see who switched")
    sp.epilog = EXAMPLES
    sp.formatter_class = argparse.RawDescriptionHelpFormatter
    what = sp.add_mutually_exclusive_group(required=True)
    what.add_argument("--send", action="store_true", help="send the change notice to everyone you notify")
    what.add_argument("--internal", action="store_true", help="send the internal notice to your colleagues")
    what.add_argument("--final", action="store_true",
                      help="send the final reminder to those who still write to the old address")
    what.add_argument("--test", action="store_true",
                      help="send one notice per language in use to your own old and new addresses")
    what.add_argument("--preview", metavar="ADDRESS", help="print the exact message this person gets")
    what.add_argument("--status", action="store_true", help="counts per state, bounces, who switched")
    what.add_argument("--templates", metavar="DIR", help="write the built-in texts to DIR for editing")
    what.add_argument("--settle", metavar="ADDRESS", help="decide a notice in doubt (with --delivered or --resend)")
    sp.add_argument("--group", help="only this group (customer, supplier, logistics, internal, business)")
    sp.add_argument("--limit", type=int, metavar="N", help="send at most N messages now; the rest stays queued")
    sp.add_argument("--yes", action="store_true", help="do not ask before sending")
    sp.add_argument("--now", action="store_true", help="send the final reminder before its first day")
    sp.add_argument("--json", action="store_true", help="with --status: print JSON")
    sp.add_argument("--force", action="store_true", help="with --templates: overwrite files already there")
    sp.add_argument("--timeout", type=float, default=120.0, help="with --test: seconds to wait for arrival")
    how = sp.add_mutually_exclusive_group()
    how.add_argument("--delivered", action="store_true", help="with --settle: it arrived")
    how.add_argument("--resend", action="store_true", help="with --settle: it did not arrive; send it again")
    COMMANDS["notify"] = cmd_notify
    PLAIN["notify"] = _plain_or_engine
    SIDES["notify"] = ("old", "new")


def _plain_or_engine(args: argparse.Namespace) -> int:
    """``--templates`` needs no state file and no password; everything else runs with the
    engine, asking only for the passwords of the mailboxes it reads."""
    if args.templates:
        return _templates(args)
    import asyncio

    from . import cli
    sides = ("old", "new") if args.test or args.status else ("new",)
    code = asyncio.run(cli.with_engine(args, cmd_notify, sides))
    signals = args.signals
    if signals.signum is not None and not signals.pipe_closed:
        err(f"switchover: {cli.INTERRUPTED}")
        return int(signals.exit_code)
    return code


def _templates(args: argparse.Namespace) -> int:
    from switchover.core.notify.compose import write_templates
    target = Path(args.templates).expanduser()
    written = write_templates(target, force=args.force)
    say(f"Wrote {len(written)} template file(s) to {target}; set notices.templates: {args.templates} "
        f"in the config to use them.")
    return 0


class CampaignLine:
    """The campaign's progress on stderr: one redrawn line on a terminal, a line every
    few seconds elsewhere."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, LogLine) and ev.level in ("warning", "error"):
            self._clear()
            err(f"{ev.level}: {ev.text}")
            return
        if not isinstance(ev, CampaignProgress):
            return
        now = time.monotonic()
        if now - self.last < (0.25 if self.tty else 5.0) and ev.state in ("running", "waiting"):
            return
        self.last = now
        text = (f"{ev.campaign}: {ev.sent}/{ev.total} sent, {ev.failed} failed, {ev.doubt} in doubt  "
                f"{ev.rate_per_hour:,.0f}/h  ETA {fmt_eta(ev.eta_seconds)}  {ev.state}"
                + (f" — {ev.detail}" if ev.detail else ""))
        if self.tty:
            sys.stderr.write("\r\x1b[K" + text[:200])
            sys.stderr.flush()
        else:
            err(text)

    def _clear(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[K")

    def finish(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


async def cmd_notify(engine: "Engine", args: argparse.Namespace) -> int:
    notices = engine.notices
    if args.status:
        status = await notices.status()
        if args.json:
            say(json.dumps(status.as_dict(), indent=2, ensure_ascii=False))
        else:
            for line in status.lines():
                say(line)
        return 0
    if args.preview:
        raw = await notices.preview(args.preview)
        say(raw.decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n"))
        return 0
    if args.settle:
        if not (args.delivered or args.resend):
            raise SwitchoverError("Say how it ended: --settle ADDRESS --delivered (it arrived) or --resend.",
                                  exit_code=2)
        row = await notices.settle(args.settle, args.delivered)
        say(f"The {row.campaign} to {row.address}: {row.state}" + (f" — {row.reply}" if row.reply else "") + ".")
        return 0 if row.state == "sent" else 1
    if args.test:
        return await _test(engine, args)
    campaign = "internal" if args.internal else "final" if args.final else "notice"
    return await _send(engine, args, campaign)


async def _test(engine: "Engine", args: argparse.Namespace) -> int:
    results = await engine.notices.test(timeout=args.timeout)
    ok = bool(results)
    if not results:
        say("No test notice was sent; see 'switchover notify --status' and the log.")
    for r in results:
        if r.seconds is not None:
            say(f"{r.language}  {r.side:>3} {r.address}: arrived after {r.seconds:.1f} s")
        elif r.state == "sent":
            ok = False
            say(f"{r.language}  {r.side:>3} {r.address}: sent, but not in the INBOX after {args.timeout:.0f} s "
                f"(look in spam, or at the server's filters)")
        else:
            ok = False
            say(f"{r.language}  {r.side:>3} {r.address}: {r.state} — {r.detail}")
    return 0 if ok else 1


async def _send(engine: "Engine", args: argparse.Namespace, campaign: str) -> int:
    notices = engine.notices
    plan = await notices.plan(campaign, group=args.group, limit=args.limit, now=args.now)
    if plan.count == 0:
        say(f"Nobody is waiting for the {campaign} campaign"
            + (f" in the group {args.group}" if args.group else "") + "; see 'switchover notify --status'.")
        await notices.send(campaign, group=args.group, limit=args.limit, now=args.now)
        return 0
    question = (f"Send the {campaign} to {plan.count} people at up to {plan.pace.words()}, "
                f"about {fmt_eta(plan.eta_seconds)}? [y/N] ")
    if not args.yes:
        if not sys.stdin.isatty():
            raise SwitchoverError(f"Not sending without a yes: {question[:-7]} — add --yes.", exit_code=2)
        if input(question).strip().lower() not in ("y", "yes"):
            say("Nothing sent.")
            return 1

    def stop() -> bool:
        return notices.cancel()

    args.signals.graceful = stop
    line = CampaignLine()
    unsubscribe = engine.subscribe(line)
    try:
        result = await notices.send(campaign, group=args.group, limit=args.limit, now=args.now)
    finally:
        unsubscribe()
        line.finish()
    for text in result.lines():
        say(text)
    if result.stopped:
        return result.exit_code or 1
    return 0 if not (result.tally.failed or result.in_doubt) else 1
