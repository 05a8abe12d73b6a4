"""The scan screen (``s`` on the checklist's website / documents items): every place the
old address was still found in files and web pages, and every file or page that could
not be read; ``r`` scans the last scan's files and pages again (``a`` asks for other
ones) and says what was fixed. The scanning and the keeping are the engine's
(core/prepare/scan.py).
"""

from __future__ import annotations

import datetime as dt
import shlex
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from switchover.core.errors import sentence

from .base import cell, clip
from .prompts import TextPrompt

if TYPE_CHECKING:
    from switchover.core.engine import Engine
    from switchover.core.prepare.scanledger import Place

KEYS = "r scan again · a scan other files / pages · ↑↓ move · escape back"


class ScanScreen(Screen[None]):
    DEFAULT_CSS = """
    ScanScreen { layout: vertical; }
    ScanScreen #scan-status { height: auto; max-height: 5; padding: 0 1; background: $boost; }
    ScanScreen #scan-table { height: 1fr; }
    ScanScreen #scan-detail { height: auto; max-height: 4; padding: 0 1; border-top: solid $primary; }
    ScanScreen #scan-keys { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Back", id="scan.close"),
        Binding("r", "rescan", "Scan again", id="scan.rescan"),
        Binding("a", "other", "Scan other", id="scan.other"),
    ]

    def __init__(self, engine: "Engine") -> None:
        super().__init__()
        self.engine = engine
        self.places: list["Place"] = []
        self.targets: tuple[list[str], list[str]] = ([], [])
        self.also: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="scan-status", markup=False)
        yield DataTable(id="scan-table", cursor_type="row")
        yield Static("", id="scan-detail", markup=False)
        yield Static(KEYS, id="scan-keys", markup=False)

    def on_mount(self) -> None:
        width = self.app.size.width
        table = self.query_one("#scan-table", DataTable)
        source_w = max(20, width // 3)
        table.add_column("File or page", key="source", width=source_w)
        table.add_column("Where", key="where", width=22)
        table.add_column("What", key="what", width=max(20, width - source_w - 22 - 8))
        table.focus()
        self.run_worker(self._load(""), group="scan-load", exclusive=True)

    def _status(self, text: str | Text) -> None:
        self.query_one("#scan-status", Static).update(text)

    async def _load(self, headline: str) -> None:
        try:
            last = await self.engine.scan.last()
            self.places = await self.engine.scan.left()
        except Exception as exc:
            self._status(Text(f"Scan: {sentence(exc)}", style="bold"))
            return
        table = self.query_one("#scan-table", DataTable)
        table.clear()
        for p in self.places:
            what = f"could not read: {p.snippet}" if p.state == "unread" else p.snippet
            form = "" if p.form in ("plain", "unread") else f"[{p.form}] "
            table.add_row(cell(clip(p.source, 200)), cell(p.location), cell(form + what), key=str(p.id))
        if last is None:
            self._status("No scan yet. Press a and give files, folders or web pages (https://…), "
                         "or run 'switchover scan PATH… --url URL…'.")
            return
        self.targets = (list(last["targets"].get("paths", [])), list(last["targets"].get("urls", [])))
        self.also = list(last["addresses"][1:])
        opened = sum(1 for p in self.places if p.state == "open")
        unread = len(self.places) - opened
        text = Text()
        if headline:
            text.append(headline + "\n", style="bold")
        if not self.places:
            text.append(f"The old address was found nowhere in the last scan ({_when(last)}).")
        else:
            text.append(f"{opened} place{'' if opened == 1 else 's'} still show{'s' if opened == 1 else ''} "
                        f"the old address", style="bold")
            text.append(f", {unread} could not be read" if unread else "")
            text.append(f" (last scan {_when(last)}).")
        n_paths, n_urls = len(self.targets[0]), len(self.targets[1])
        text.append(f"\nr scans again: {n_paths} files / folders, {n_urls} pages.")
        self._status(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The whole of the selected place (the table cuts long paths and snippets)."""
        key = event.row_key.value if event.row_key is not None else None
        place = next((p for p in self.places if str(p.id) == key), None)
        detail = self.query_one("#scan-detail", Static)
        if place is None:
            detail.update("")
            return
        what = f"could not read: {place.snippet}" if place.state == "unread" else place.snippet
        form = "" if place.form in ("plain", "unread") else f" ({place.form})"
        detail.update(f"{place.source} · {place.location}{form}\n{what}")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_rescan(self) -> None:
        paths, urls = self.targets
        if not paths and not urls:
            self.action_other()
            return
        self.run_worker(self._scan(paths, urls), group="scan-run", exclusive=True)

    def action_other(self) -> None:
        def done(text: str | None) -> None:
            if not text or not text.strip():
                return
            try:
                words = shlex.split(text)
            except ValueError as exc:
                self.app.notify(f"{exc}.", title="Scan", severity="warning")
                return
            urls = [w for w in words if w.startswith(("http://", "https://"))]
            paths = [w for w in words if w not in urls]
            self.run_worker(self._scan(paths, urls), group="scan-run", exclusive=True)

        self.app.push_screen(TextPrompt("Scan for the old address", " ".join(
            shlex.quote(t) for t in self.targets[0] + self.targets[1]),
            hint="Files, folders and web pages (https://…), separated by spaces.",
            placeholder="~/Documents/templates https://www.example.com/contact"), done)

    async def _scan(self, paths: list[str], urls: list[str]) -> None:
        self._status("Scanning …")
        try:
            report = await self.engine.scan.run(paths, urls, also=self.also)
        except Exception as exc:
            self._status(Text(f"Scan: {sentence(exc)}", style="bold"))
            return
        c = report.changes
        headline = (f"Scanned {report.files_read} files and {report.pages_read} pages: "
                    f"{len(c.fixed)} fixed, {len(c.still)} still there, {len(c.new)} new"
                    + (f", {len(c.unread)} could not be read" if c.unread else "") + ".")
        await self._load(headline)


def _when(last: dict[str, Any]) -> str:
    return f"{dt.datetime.fromtimestamp(last['finished']):%Y-%m-%d %H:%M}"
