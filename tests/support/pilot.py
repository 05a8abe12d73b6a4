"""Waiting on the dashboard in Pilot tests (tests/faces/test_tui*.py): one ``wait_until``
and one ``screen_text`` for every test file, instead of a copy in each."""

from __future__ import annotations

import time
from typing import Any, Callable


async def wait_until(pilot: Any, cond: Callable[[], bool], timeout: float = 20,
                     what: object = "") -> None:
    """Let the app run until ``cond()`` holds; after ``timeout`` seconds fail naming
    ``what`` (a text, or a callable giving it at that moment)."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what or cond}")
        await pilot.pause(0.1)


def screen_text(app: Any, sep: str = " ") -> str:
    """The text of every Static on the current screen."""
    return sep.join(str(w.render()) for w in app.screen.query("Static"))
