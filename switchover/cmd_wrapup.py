"""The CLI's phase-4 commands: the check schedule, closing readiness and the final archive.

Commands are declared in ``add_commands`` and carried out by the functions named in
``COMMANDS`` (``async def (engine, args) -> exit code``, the engine opened by
switchover/cli.py) or ``PLAIN`` (``def (args) -> exit code``, no engine: no state file).
``SIDES`` names the mailboxes whose password each command needs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    from switchover.core.engine import Engine

Parser = Callable[[str, str], argparse.ArgumentParser]

COMMANDS: dict[str, Callable[["Engine", argparse.Namespace], Awaitable[int]]] = {}
PLAIN: dict[str, Callable[[argparse.Namespace], int]] = {}
SIDES: dict[str, tuple[str, ...]] = {}


def add_commands(cmd: Parser) -> None:
    """Declare this area's sub-commands (none yet)."""
