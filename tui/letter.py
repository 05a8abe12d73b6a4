"""The change request letter screen (``l`` on the checklist): the letter as it will be
pasted (Markdown), in Chinese or English, from the last measurement of the mailbox
(measured now when there is none); ``w`` writes it beside the config, which ticks the
checklist's "request" item, ``r`` measures again. The words and numbers are the
engine's (core/prepare/letter.py); this screen shows them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Markdown, Static

from switchover.core.errors import sentence

if TYPE_CHECKING:
    from switchover.core.engine import Engine
    from switchover.core.prepare.letter import Draft

KEYS = "t 中文 / English · w write to file · r measure again · ↑↓ scroll · escape back"


class LetterScreen(Screen[None]):
    DEFAULT_CSS = """
    LetterScreen { layout: vertical; }
    LetterScreen #letter-status { height: auto; max-height: 4; padding: 0 1; background: $boost; }
    LetterScreen #letter-scroll { height: 1fr; padding: 0 1; }
    LetterScreen #letter-keys { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Back", id="letter.close"),
        Binding("t", "toggle_lang", "中文 / English", id="letter.lang"),
        Binding("w", "write", "Write to file", id="letter.write"),
        Binding("r", "measure", "Measure again", id="letter.measure"),
    ]

    def __init__(self, engine: "Engine", lang: str = "") -> None:
        super().__init__()
        self.engine = engine
        self.lang = lang or ("zh" if engine.config.identity.language == "zh" else "en")
        self.draft: "Draft | None" = None
        self.written: str = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="letter-status", markup=False)
        with VerticalScroll(id="letter-scroll"):
            yield Markdown("", id="letter-md")
        yield Static(KEYS, id="letter-keys", markup=False)

    def on_mount(self) -> None:
        self.run_worker(self._load(measure=False), group="letter", exclusive=True)
        self.query_one("#letter-scroll").focus()

    def _status(self, text: str | Text) -> None:
        self.query_one("#letter-status", Static).update(text)

    async def _load(self, measure: bool) -> None:
        letter = self.engine.letter
        try:
            facts = None if measure else await letter.last_facts()
            if facts is None:
                self._status("Measuring the old mailbox (size, quota, messages per year) …")
                facts = await letter.measure()
            self.draft = await letter.compose(self.lang, facts=facts)
        except Exception as exc:
            self._status(Text(f"The letter: {sentence(exc)}", style="bold"))
            return
        await self.query_one("#letter-md", Markdown).update(self.draft.markdown)
        self._show_status()

    def _show_status(self) -> None:
        draft = self.draft
        if draft is None:
            return
        path = self.engine.letter.default_path(draft.lang)
        text = Text()
        text.append("中文" if draft.lang == "zh" else "English", style="bold")
        text.append(f" · measured {draft.facts.old.measured.replace('T', ' ')}")
        text.append(f" · w writes {path}" if not self.written else f" · written to {self.written}")
        if draft.gaps:
            text.append(f"\n{len(draft.gaps)} facts could not be measured and show as placeholders: ",
                        style="bold")
            text.append("; ".join(draft.gaps))
        self._status(text)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_toggle_lang(self) -> None:
        self.lang = "en" if self.lang == "zh" else "zh"
        self.written = ""
        self.run_worker(self._load(measure=False), group="letter", exclusive=True)

    def action_measure(self) -> None:
        self.run_worker(self._load(measure=True), group="letter", exclusive=True)

    def action_write(self) -> None:
        if self.draft is not None:
            self.run_worker(self._write(self.draft), group="letter-write")

    async def _write(self, draft: "Draft") -> None:
        try:
            path = await self.engine.letter.write(draft, self.engine.letter.default_path(draft.lang))
        except Exception as exc:
            self.app.notify(sentence(exc), title="Letter", severity="error", timeout=10)
            return
        self.written = str(path)
        self._show_status()
        self.app.notify(f"Written to {path}; the checklist's request item is ticked.", title="Letter")

    def check_action(self, action: str, parameters: tuple[Any, ...]) -> bool | None:
        if action == "write" and self.draft is None:
            return None
        return True
