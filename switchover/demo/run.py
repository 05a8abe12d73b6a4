"""``switchover demo --headless``: prove the demo works without a screen.

Opens the engine on the demo's config exactly as for real accounts, catches up, then
lets the monitor watch for ``seconds``, printing the history's size and one line per
arrival the engine reports. Success (exit 0) means at least one arrival was seen.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any, TextIO

from switchover.core.config import load_config
from switchover.core.engine import Engine
from switchover.core.errors import SwitchoverError
from switchover.core.events import ArrivalSeen, Event

if TYPE_CHECKING:
    from . import DemoHandle


def run_headless(handle: "DemoHandle", seconds: float, out: TextIO | None = None) -> int:
    """Watch the demo for ``seconds``; returns the exit code (0 once an arrival was seen)."""
    return asyncio.run(_run(handle, seconds, out or sys.stdout))


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


async def _run(handle: "DemoHandle", seconds: float, out: TextIO) -> int:
    counts = {f: n for f, n in handle.folder_counts("old").items() if n}
    _say(out, f"history: {sum(counts.values())} messages in {len(counts)} folders")
    seen: list[ArrivalSeen] = []

    def on_event(ev: Event) -> None:
        if isinstance(ev, ArrivalSeen):
            seen.append(ev)
            inbox = "old inbox" if ev.side == "old" else "new inbox"
            _say(out, f"arrival {ev.arrival_id} ({inbox}, {ev.badge}): {ev.sender} — {ev.subject}")

    try:
        engine = await Engine.open(load_config(handle.config_path))
    except SwitchoverError as e:
        _say(out, str(e))
        return e.exit_code
    unsubscribe = engine.subscribe(on_event)
    try:
        await engine.monitor.catch_up()
        stop = asyncio.Event()
        watch: asyncio.Task[Any] = asyncio.create_task(engine.monitor.run(stop))
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end and not watch.done():
            await asyncio.sleep(min(0.2, max(0.0, end - loop.time())))
        stop.set()
        await asyncio.wait_for(watch, 15)
    except SwitchoverError as e:
        _say(out, str(e))
        return e.exit_code
    finally:
        unsubscribe()
        await engine.close()
    _say(out, f"{len(seen)} arrival(s) seen in {seconds:g} s; "
              f"the demo sent {handle.arrivals_sent()} since it started.")
    return 0 if seen else 1
