"""What the CLI writes: lines on stdout, one sentence on stderr, and the closed pipe.

When stdout goes to a pipe whose reader is gone (``switchover checklist | head -1``) the
command ends quietly with 141, as other Unix tools do: ``say`` raises ``PipeClosed``
after pointing stdout at /dev/null (so the interpreter's final flush cannot fail either)
and tells the running command once (``on_pipe_closed``: a ``watch`` stops at its safe
point).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable

#: 128 + SIGPIPE, what a shell reports for tools that end at a closed pipe
PIPE_EXIT = 141


class PipeClosed(Exception):
    """stdout went to a pipe whose reader is gone (``| head``): end quietly, exit 141."""


_on_pipe_closed: Callable[[], None] | None = None


def on_pipe_closed(hook: Callable[[], None] | None) -> None:
    """Call ``hook`` once when stdout turns out closed (None: nobody to tell)."""
    global _on_pipe_closed
    _on_pipe_closed = hook


def stdout_gone() -> None:
    """Point stdout at /dev/null so nothing else fails on the dead pipe, and tell the
    running command."""
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


def say(text: str = "") -> None:
    """One line on stdout, flushed (a ``watch`` in a pipe shows each line at once)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        stdout_gone()
        raise PipeClosed() from None


def err(text: str) -> None:
    """One line on stderr; a closed stderr is not worth another error."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        pass


def warn(text: str) -> None:
    err(f"warning: {text}")


def epilog(example: str | list[str], codes: dict[int, str]) -> str:
    """The end of a command's ``--help``: an example (or several) and its exit codes.

    Use with ``formatter_class=argparse.RawDescriptionHelpFormatter`` so the lines stay
    as written::

        sp = cmd("scan", "find the old address in files")
        sp.epilog = epilog("switchover scan ~/Documents", {0: "nothing found", 1: "found"})
        sp.formatter_class = argparse.RawDescriptionHelpFormatter

    (``cmd`` in switchover/cli.py sets the formatter already.) Codes 2 (bad input or
    config) and 130 (interrupted) are added when not given.
    """
    examples = [example] if isinstance(example, str) else list(example)
    codes = {**codes}
    codes.setdefault(2, "bad input or config")
    codes.setdefault(130, "interrupted (Ctrl-C)")
    lines = ["Example:" if len(examples) == 1 else "Examples:"]
    lines += [f"  {e}" for e in examples]
    lines += ["", "Exit codes:"]
    lines += [f"  {code:<3}  {text}" for code, text in sorted(codes.items())]
    return "\n".join(lines)


def say_json(document: object) -> None:
    """``--json``: one JSON document on stdout (UTF-8 text as is, keys as given: the
    keys are the scripts' contract, so add keys, never rename them)."""
    say(json.dumps(document, ensure_ascii=False, indent=2, default=str))
