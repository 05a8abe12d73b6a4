"""What the user decides for a person (notify yes / no, group, language, the name to greet
them by), as values a person writes them in a dashboard or a spreadsheet cell.

Pure: it turns what was written into a ``Choice`` (each field: ``KEEP`` unchanged, None
back to switchover's guess, or the chosen value) and says what a CSV row changes against
what switchover shows. core/transition/people.py stores choices; no scan overwrites them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import SwitchoverError
from ..mail.language import LANGUAGES, normalize_language
from .groups import valid_group


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


#: a field of a Choice that stays as it is
KEEP: Any = _Keep()

_YES = {"yes", "y", "1", "true", "t", "x", "✓", "✔", "是", "是的", "对", "sí", "si", "sim", "да", "oui", "ja", "on"}
_NO = {"no", "n", "0", "false", "f", "否", "不", "不是", "нет", "non", "nein", "não", "nao", "off", "-"}


@dataclass(frozen=True)
class Choice:
    name: Any = KEEP        # str | None | KEEP
    group: Any = KEEP
    language: Any = KEEP
    notify: Any = KEEP      # bool | None | KEEP

    def any(self) -> bool:
        return any(v is not KEEP for v in (self.name, self.group, self.language, self.notify))


class Shown(Protocol):
    """What switchover shows of a person (a people.Correspondent)."""
    name: str
    group: str
    language: str
    notify: bool
    choice_group: str | None
    choice_language: str | None
    choice_notify: bool | None


def parse_notify(value: str) -> bool | None:
    """yes / no / 1 / 0 / true / false / 是 / 否 … → bool; "" → None; else SwitchoverError."""
    v = (value or "").strip().casefold()
    if not v:
        return None
    if v in _YES:
        return True
    if v in _NO:
        return False
    raise SwitchoverError(f"'{value}' is not yes or no", exit_code=2)


def parse_group(value: str) -> str | None:
    v = (value or "").strip()
    if not v:
        return None
    group = valid_group(v)
    if group is None:
        from .audience import GROUPS
        raise SwitchoverError(f"'{value}' is not a group (one of: {', '.join(GROUPS)})", exit_code=2)
    return group


def parse_language(value: str) -> str | None:
    v = (value or "").strip()
    if not v:
        return None
    code = normalize_language(v)
    if code is None:
        raise SwitchoverError(f"'{value}' is not a language switchover knows (one of: {', '.join(LANGUAGES)})",
                              exit_code=2)
    return code


def changes(name: str, group: Any, language: Any, notify: Any, shown: Shown | None) -> Choice:
    """What a written row changes: a value that differs from what is shown becomes a
    choice; an empty cell (None) clears the choice there is; the same value, or KEEP (no
    such column), changes nothing — an export read back unchanged changes nothing."""
    def one(value: Any, current: Any, chosen: Any) -> Any:
        if value is KEEP:
            return KEEP
        if value is None:
            return None if chosen is not None else KEEP
        return KEEP if shown is not None and value == current else value

    if shown is None:
        return Choice(name or KEEP, one(group, None, None), one(language, None, None), one(notify, None, None))
    return Choice(name=KEEP if not name or name == shown.name else name,
                  group=one(group, shown.group, shown.choice_group),
                  language=one(language, shown.language, shown.choice_language),
                  notify=one(notify, shown.notify, shown.choice_notify))
