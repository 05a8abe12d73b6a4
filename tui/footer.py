"""The footer: Textual's, made safe for a dashboard that stays open for months.

Textual's ``Footer`` rebuilds all its key widgets whenever a screen's bindings are
refreshed, and data-binds every new key to its own ``compact`` reactive. Those bindings
are only forgotten when ``compact`` changes — which never happens here — so each rebuild
kept the previous keys alive: ~20 KB per refresh, and the panes refresh their keys on
every arrival (issue 10.3: 55 MB → 152 MB after 3,000 arrivals). This footer rebuilds
only when what it would show changed, and drops the bindings of keys it has removed.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


def _shown(screen: Screen) -> tuple[Any, ...]:
    """What the footer would show for ``screen``: key, label and whether it can act."""
    return tuple((key, active.binding.description, active.enabled, active.binding.show)
                 for key, active in screen.active_bindings.items())


class BoundedFooter(Footer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_shown: tuple[Any, ...] | None = None
        self.rebuilds = 0          # tests and the memory bench read it

    def bindings_changed(self, screen: Screen) -> None:
        try:
            shown = _shown(screen)
        except Exception:          # a pane's check_action failing must not hide the keys
            shown = None
        if shown is not None and shown == self._last_shown and self.children:
            return
        self._last_shown = shown
        super().bindings_changed(screen)

    async def recompose(self) -> None:
        await super().recompose()
        self.rebuilds += 1
        # the same filter Textual applies when ``compact`` changes: closed keys go
        watchers = getattr(self, "__watchers", {}).get("compact")
        if watchers:
            watchers[:] = [(node, fn) for node, fn in watchers if not node._closing]
