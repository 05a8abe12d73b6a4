"""The CLI's commands for the change request letter and for the old address everywhere
else: ``letter`` (the 申请书 from the measured mailbox, Markdown, Chinese or English) and
``scan`` (files and web pages that still show the old address, kept between scans).

Commands are declared in ``add_commands`` and carried out by the functions named in
``COMMANDS`` (``async def (engine, args) -> exit code``, the engine opened by
switchover/cli.py) or ``PLAIN`` (none here). ``SIDES`` names the mailboxes whose
password each command needs. What to measure, write and find is the engine's
(core/prepare/letter.py, core/prepare/scan.py); this module prints it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable

from .output import epilog, say, warn

if TYPE_CHECKING:
    from switchover.core.engine import Engine
    from switchover.core.prepare.scanledger import Place

Parser = Callable[[str, str], argparse.ArgumentParser]


def add_commands(cmd: Parser) -> None:
    """Declare this area's sub-commands."""
    sp = cmd("letter", "write the change request letter (申请书) from the measured mailbox, as Markdown")
    sp.add_argument("--lang", choices=["zh", "en"], default=None,
                    help="Chinese or English (default: zh when identity.language is zh, else en)")
    sp.add_argument("--out", metavar="FILE",
                    help="write it to FILE (and tick the checklist's 'request' item); default: print it")
    sp.add_argument("--to", metavar="NAME", default="",
                    help="whom it is addressed to (default: 领导 / Manager)")
    sp.formatter_class = argparse.RawDescriptionHelpFormatter
    sp.epilog = ("The old mailbox is measured now (size and quota use, messages per year); the new\n"
                 "one's quota too when its password is at hand. A fact that cannot be measured is\n"
                 "shown as a placeholder in the letter and named on stderr.\n\n"
                 + epilog(["switchover letter --lang zh --out 申请书.md",
                           "switchover letter --lang en --to 'Ms Chen' | less"],
                          {0: "the letter is complete", 1: "written, with placeholders for facts "
                                                           "that could not be measured",
                           2: "bad input (a file that cannot be written), config or state file"}))

    sp = cmd("scan", "find the old address in files (office, PDF, text, e-mail) and web pages")
    sp.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (walked)")
    sp.add_argument("--url", action="append", default=[], metavar="URL", help="a web page (repeatable)")
    sp.add_argument("--also", action="append", default=[], metavar="ADDRESS",
                    help="another old address (an alias) to look for (repeatable)")
    sp.add_argument("--max-mb", type=float, default=50.0, metavar="MB",
                    help="files larger than this are listed as not read (default 50)")
    sp.add_argument("--json", action="store_true", help="one JSON object for scripts")
    sp.formatter_class = argparse.RawDescriptionHelpFormatter
    sp.epilog = ("Reads txt, md, csv, vcf, html, eml, docx, xlsx, pptx and pdf; finds the address in\n"
                 "any case, URL-encoded, in mailto: links, as old [at] example [dot] com and behind\n"
                 "Cloudflare's e-mail protection. Results are kept: the next scan says what is still\n"
                 "there, what is new and what was fixed.\n\n"
                 + epilog(["switchover scan ~/Documents/templates --url https://www.example.com/contact",
                           "switchover scan catalogue.pdf --json"],
                          {0: "the old address is found nowhere and every file and page was read",
                           1: "places remain, or some file or page could not be read",
                           2: "bad input (a path that does not exist, a URL that is not http/https)"}))


async def cmd_letter(engine: "Engine", args: argparse.Namespace) -> int:
    lang = args.lang or ("zh" if engine.config.identity.language == "zh" else "en")
    facts = await engine.letter.measure()
    draft = await engine.letter.compose(lang, to=args.to, facts=facts)
    for gap in draft.gaps:
        warn(gap)
    if args.out:
        path = await engine.letter.write(draft, Path(args.out))
        say(f"The letter ({lang}) is in {path}; the checklist's 'request' item is ticked.")
    else:
        say(draft.markdown.rstrip("\n"))
    return 1 if draft.gaps else 0


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _line(p: "Place") -> str:
    form = "" if p.form == "plain" else f" [{p.form}]"
    return f"  {p.source} · {p.location}{form} · {p.snippet}"


async def cmd_scan(engine: "Engine", args: argparse.Namespace) -> int:
    report = await engine.scan.run(args.paths, args.url, also=args.also, max_mb=args.max_mb)
    code = 0 if report.clean else 1
    if args.json:
        say(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        return code
    what = []
    if args.paths:
        what.append(f"{_n(report.files_read, 'file')} ({report.office_read} office / PDF)")
    if args.url:
        what.append(_n(report.pages_read, "web page"))
    say(f"Searched {' and '.join(what)} for {', '.join(report.addresses)}"
        + (f"; {_n(report.not_searched, 'file')} of other types not searched." if report.not_searched else "."))
    if report.found:
        n = len(report.found)
        say(f"The old address is still in {n} place{'' if n == 1 else 's'}:")
        for p in report.found:
            say(_line(p))
    else:
        say("The old address was found nowhere.")
    if report.changes.unread:
        say(f"Could not be read ({len(report.changes.unread)}):")
        for p in report.changes.unread:
            say(f"  {p.source}{'' if p.location.startswith('whole') else ' · ' + p.location} · {p.snippet}")
    c = report.changes
    if not report.first:
        say(f"Since the last scan: {len(c.fixed)} fixed, {len(c.still)} still there, {len(c.new)} new.")
        for p in c.fixed:
            say(f"  fixed: {p.source} · {p.location}")
    if report.elsewhere:
        say(f"{report.elsewhere} places found by earlier scans are in files or pages not scanned this time.")
    if args.paths and not report.office_read and not report.found:
        say("No office or PDF file was read: the checklist's 'documents' item needs one.")
    return code


COMMANDS: dict[str, Callable[["Engine", argparse.Namespace], Awaitable[int]]] = {
    "letter": cmd_letter, "scan": cmd_scan,
}
PLAIN: dict[str, Callable[[argparse.Namespace], int]] = {}
#: the letter measures the old mailbox (the new one only if its secret is at hand); a scan needs none
SIDES: dict[str, tuple[str, ...]] = {"letter": ("old",), "scan": ()}
