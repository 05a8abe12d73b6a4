"""The arguments of the built-in commands and their ``--help``: every command's help ends
with an example and its exit codes (``output.epilog``). The area modules
(switchover/cmd_*.py) declare theirs through the ``cmd`` function handed to their
``add_commands``; switchover/cli.py runs what was parsed.
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Callable, Iterable

from switchover.core.version import version

from .output import epilog

#: ``cmd(name, help)``: declares a sub-command and returns its parser
Cmd = Callable[[str, str], argparse.ArgumentParser]
CONN = {3: "login or connection failed"}
#: exit codes every command shares, shown once under ``switchover --help``
MAIN_EPILOG = """\
Examples:
  switchover init                 write a config (asks a few questions)
  switchover check                log in to both mailboxes
  switchover                      open the dashboard
  switchover COMMAND --help       one command's options, an example and its exit codes

Config: --config, else $SWITCHOVER_CONFIG, else ./switchover.yaml, else the platform's
config folder (Linux: ~/.config/switchover/switchover.yaml).

Exit codes:
  0    ok
  1    some messages refused / not everything verified / a check could not run
  2    bad input, config or state file
  3    login or connection failed
  4    another switchover runs the same job on this state file
  130  interrupted (Ctrl-C)     141  output cut off (| head)     143  terminated (SIGTERM)"""


def build_parser(areas: Iterable[ModuleType]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="switchover", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Carry a business email address change from the first request to the day "
                    "the old mailbox is closed. Without a command, opens the dashboard.",
        epilog=MAIN_EPILOG)
    p.add_argument("--version", action="version", version=f"switchover {version()}")
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: $SWITCHOVER_CONFIG, ./switchover.yaml, then the "
                        "platform's config folder)")
    p.add_argument("--log-file", metavar="PATH",
                   help="the log file (default: the config's log:, else switchover.log beside the state file)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        # RawDescription: the epilog (output.epilog: example + exit codes) keeps its lines
        sp = sub.add_parser(name, help=help, description=help,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return sp

    _engine_commands(cmd)
    _transition_commands(cmd)
    _tool_commands(cmd)
    for area in areas:      # the commands of each later phase live beside their code
        area.add_commands(cmd)
    return p


def _engine_commands(cmd: Cmd) -> None:
    sp = cmd("dashboard", "open the dashboard (the default)")
    sp.epilog = epilog("switchover --config ~/work/switchover.yaml dashboard", {0: "the dashboard was closed"})
    sp = cmd("init", "ask a few questions and write a commented switchover.yaml")
    sp.add_argument("--force", action="store_true", help="overwrite an existing config")
    sp.epilog = epilog(["switchover init", "switchover --config ~/.config/switchover/switchover.yaml init"],
                       {0: "the config was written",
                        2: "the config exists already (use --force) or no answers on stdin"})
    sp = cmd("migrate", "copy every planned folder from the old mailbox to the new one")
    sp.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    sp.add_argument("--folder", action="append", metavar="NAME", help="only this source folder (repeatable)")
    sp.epilog = epilog(["switchover migrate --dry-run", "switchover migrate --folder INBOX --folder Sent"],
                       {0: "every planned message is in the new mailbox",
                        1: "some messages refused, or stopped before the end (run again to resume)",
                        **CONN, 4: "another migrate runs on this state file",
                        143: "stopped by SIGTERM at a safe point"})
    sp = cmd("verify", "compare source and destination folder by folder")
    sp.add_argument("--report", metavar="PATH",
                    help="where to write the report (default: verify-DATE.txt next to the state file)")
    sp.add_argument("--json", action="store_true", help="one JSON document on stdout, for scripts")
    sp.epilog = epilog(["switchover verify", "switchover verify --json | jq .ok"],
                       {0: "every folder verified", 1: "differences found, or a folder could not be checked",
                        **CONN})
    sp = cmd("backup", "back up every folder of the old mailbox to local files")
    sp.add_argument("dir", metavar="DIR")
    sp.add_argument("--verify", action="store_true", help="check an existing backup instead of writing one")
    sp.add_argument("--format", choices=["mbox", "eml", "both"], default="both")
    sp.epilog = epilog(["switchover backup ~/mail-backup", "switchover backup ~/mail-backup --verify"],
                       {0: "every message backed up (or the backup checks out)",
                        1: "some messages failed, or the backup has problems", **CONN,
                        4: "another backup runs on this state file"})
    sp = cmd("import", "upload a .mbox file or a folder of .eml files into the new mailbox")
    sp.add_argument("path", metavar="PATH")
    sp.add_argument("--to", required=True, metavar="FOLDER", help="destination folder in the new mailbox")
    sp.epilog = epilog("switchover import ~/old-archive.mbox --to Archive/2019",
                       {0: "every message uploaded", 1: "some messages refused or malformed", **CONN,
                        4: "another import runs on this state file"})


def _transition_commands(cmd: Cmd) -> None:
    sp = cmd("watch", "watch the old inbox (headless), printing one line per arrival and action")
    sp.add_argument("--once", action="store_true", help="catch up once and exit")
    sp.epilog = epilog(["switchover watch", "switchover watch --once",
                        "switchover service install   (run it as a systemd user service)"],
                       {0: "caught up (--once), or stopped by Ctrl-C / SIGTERM", **CONN})
    for name, text in (("forward", "forward an arrival to the new address"),
                       ("remind", "send the sender of an arrival a reminder of the new address"),
                       ("handled", "mark an arrival handled")):
        sp = cmd(name, text)
        sp.add_argument("id", type=int, metavar="ID", help="arrival id (as shown by 'watch' or 'arrivals')")
        if name == "remind":
            sp.add_argument("--yes", action="store_true",
                            help="send even to a list or automated sender (asked otherwise)")
        sp.epilog = epilog(f"switchover {name} 42",
                           {0: "done (or done before: nothing is sent twice)",
                            1: "not done: failed, in doubt (see 'settle'), cancelled, or needs --yes",
                            **({} if name == "handled" else CONN)})
    sp = cmd("settle", "decide a send in doubt (the server never confirmed it): it arrived, or send it again")
    sp.add_argument("action_id", type=int, metavar="ACTION", help="action id (as shown by 'arrivals' or 'watch')")
    how = sp.add_mutually_exclusive_group(required=True)
    how.add_argument("--delivered", action="store_true", help="it arrived: mark it done")
    how.add_argument("--resend", action="store_true", help="it did not arrive: send it again now")
    sp.epilog = epilog(["switchover settle 7 --delivered", "switchover settle 7 --resend"],
                       {0: "settled", 1: "the resend did not complete", **CONN})
    sp = cmd("arrivals", "list recent arrivals in the old mailbox")
    sp.add_argument("--limit", type=int, default=30)
    sp.add_argument("--json", action="store_true", help="one JSON document on stdout, for scripts")
    sp.epilog = epilog(["switchover arrivals --limit 10", "switchover arrivals --json | jq '.arrivals[].sender'"],
                       {0: "listed (an empty list too)"})
    sp = cmd("autoreply", "install, remove or show the server-side auto-reply (ManageSieve)")
    sp.add_argument("action", choices=["on", "off", "status"])
    sp.add_argument("--days", type=int, default=7, help="answer the same sender at most once per N days")
    sp.epilog = epilog(["switchover autoreply on --days 3", "switchover autoreply status"],
                       {0: "done (status: shown)",
                        1: "the server has no ManageSieve (the steps for its web settings are shown) "
                           "or the auto-reply did not turn on", **CONN})
    sp = cmd("checklist", "show the phase checklist, or tick / untick / note an item")
    sp.add_argument("action", nargs="?", choices=["show", "tick", "untick", "skip", "note"], default="show")
    sp.add_argument("key", nargs="?")
    sp.add_argument("text", nargs="?")
    sp.add_argument("--json", action="store_true", help="one JSON document on stdout, for scripts")
    sp.epilog = epilog(["switchover checklist", "switchover checklist tick tell_bank",
                        'switchover checklist note tell_bank "called on Monday"', "switchover checklist --json"],
                       {0: "shown / changed", 2: "no such item, or no KEY given"})


def _tool_commands(cmd: Cmd) -> None:
    sp = cmd("demo", "start the built-in demo (local servers, generated mailbox) and open the dashboard")
    sp.add_argument("--reset", action="store_true", help="start the demo over")
    sp.add_argument("--headless", action="store_true", help="no dashboard: watch for --seconds and print arrivals")
    sp.add_argument("--seconds", type=float, default=20.0)
    sp.add_argument("--dir", metavar="DIR", help="demo state directory")
    sp.epilog = epilog(["switchover demo", "switchover demo --reset --headless --seconds 30"],
                       {0: "the demo ended", 2: "the demo extra is not installed "
                                                "(pip install 'switchover[demo]'), or its folder is busy"})
    sp = cmd("completion", "print the shell completion script for bash, zsh or fish")
    sp.add_argument("shell", choices=["bash", "zsh", "fish"])
    sp.epilog = epilog(["switchover completion bash > ~/.local/share/bash-completion/completions/switchover",
                        "switchover completion zsh > ~/.zfunc/_switchover",
                        "switchover completion fish > ~/.config/fish/completions/switchover.fish"],
                       {0: "printed"})
    sp = cmd("service", "install, remove or show the systemd user service that runs 'switchover watch'")
    sp.add_argument("action", choices=["install", "uninstall", "status"])
    sp.add_argument("--now", action="store_true",
                    help="install: also run systemctl --user daemon-reload and enable --now")
    sp.epilog = epilog(["switchover --config ~/.config/switchover/switchover.yaml service install --now",
                        "switchover service status"],
                       {0: "done (status: the service is installed)",
                        1: "no systemd on this machine, systemctl failed, or (status) not installed"})
