"""The CLI's progress display: one redrawn line on a terminal, periodic lines otherwise;
and the terminal width of text (CJK folder names take two cells).

Fed by engine events (FolderProgress / JobProgress); on a terminal it redraws at most 4
times a second. Elsewhere (a log, a pipe, a systemd journal) it writes one line every
``interval`` seconds and nothing for a job shorter than that: the summary says it all.
Sizes, rates and times are written the one way both faces share (core/progress.py).
"""

from __future__ import annotations

import shutil
import sys
import time
import unicodedata
from typing import TextIO

from switchover.core.events import Event, FolderProgress, JobProgress, LogLine
from switchover.core.progress import fmt_bytes, fmt_eta, fmt_rate


def display_width(text: str) -> int:
    """Terminal cells ``text`` takes: East Asian wide and fullwidth characters two,
    combining marks and zero-width characters none, the rest one."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` terminal cells (``f"{text:<{width}}"`` counts
    characters, which misaligns CJK folder names)."""
    return text + " " * max(0, width - display_width(text))


def clip(text: str, width: int) -> str:
    """The longest start of ``text`` that fits in ``width`` terminal cells."""
    used = 0
    for i, ch in enumerate(text):
        used += display_width(ch)
        if used > width:
            return text[:i]
    return text


class Progress:
    def __init__(self, out: TextIO = sys.stderr, interval: float | None = None) -> None:
        self.out = out
        self.tty = out.isatty()
        self.interval = interval if interval is not None else (0.25 if self.tty else 5.0)
        self.folders: dict[str, FolderProgress] = {}
        self.job: JobProgress | None = None
        # not on a terminal: the first line only after one interval (no "0%" noise)
        self._last = 0.0 if self.tty else time.monotonic()
        self._width = shutil.get_terminal_size((100, 20)).columns

    def __call__(self, event: Event) -> None:
        if isinstance(event, FolderProgress):
            self.folders[event.source] = event
        elif isinstance(event, JobProgress):
            self.job = event
        elif isinstance(event, LogLine) and event.level in ("warning", "error"):
            self._clear()
            print(f"{event.level}: {event.text}", file=self.out)
        else:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.draw()

    def _clear(self) -> None:
        if self.tty:
            self.out.write("\r\x1b[K")

    def line(self) -> str:
        j = self.job
        active = [f for f in self.folders.values() if f.state == "copying"]
        current = active[0].source if active else ""
        if j is None:
            # done_messages already counts what was there before (and refusals)
            done = sum(f.done_messages for f in self.folders.values())
            total = sum(f.total_messages for f in self.folders.values())
            return f"{done:,}/{total:,} messages {current}"
        pct = 100.0 * j.done_messages / j.total_messages if j.total_messages else 100.0
        return (f"{j.job} {pct:5.1f}%  {j.done_messages:,}/{j.total_messages:,} msgs  "
                f"{fmt_bytes(j.done_bytes)}/{fmt_bytes(j.total_bytes)}  "
                f"{j.msgs_per_s:,.0f} msg/s  {fmt_rate(j.bytes_per_s)}  "
                f"ETA {fmt_eta(j.eta_s)}  {current}")

    def draw(self) -> None:
        text = self.line()
        if self.tty:
            self.out.write("\r\x1b[K" + clip(text, self._width - 1))
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\r\x1b[K")
            self.out.flush()
