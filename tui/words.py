"""How the dashboard words times and action states in its cells and sentences: a
message's time in 5 columns, an action's state in the feed's 18-column cell, what a
sentence calls each kind of action.
"""

from __future__ import annotations

import datetime as dt

from switchover.core.transition.arrivals import Arrival

KIND_WORDS = {
    "forward": ("forward", "forwarding", "forwarded"),
    "remind": ("remind", "reminding", "reminded"),
    "handled": ("handle", "handling", "handled"),
}
#: what a sentence calls each kind's mail
NOUNS = {"forward": "forward", "remind": "reminder", "handled": "mark"}


def in_doubt(a: Arrival) -> list[str]:
    """The kinds of this arrival's actions whose outcome is unknown."""
    return [kind for kind, st in a.actions.items() if st == "doubt"]


def when(value: dt.datetime | float | None, now: dt.datetime, *, with_time: bool = True) -> str:
    """Short local time in 5 columns: '14:02' today, '11-24' this year, '2025' before.
    ``value`` is a datetime (a message's date) or a POSIX timestamp (when it was seen)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        stamp = value
    else:
        stamp = dt.datetime.fromtimestamp(value, tz=now.tzinfo or dt.timezone.utc)
    if stamp.tzinfo is not None and now.tzinfo is not None:
        stamp = stamp.astimezone(now.tzinfo)
    if stamp.date() == now.date():
        return stamp.strftime("%H:%M") if with_time else "today"
    if stamp.year == now.year:
        return stamp.strftime("%m-%d")
    return str(stamp.year)


def full_date(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M %z").strip() if value is not None else ""


def action_text(actions: dict[str, str], state: str,
                pending: dict[str, float] | None = None) -> str:
    """The action cell: 'forward in 4s (u)', 'forwarded, reminded', 'remind failed (t)',
    'remind in doubt'."""
    parts: list[str] = []
    pending = pending or {}
    for kind, st in actions.items():
        verb, doing, done = KIND_WORDS.get(kind, (kind, kind, kind))
        if kind in pending:
            parts.append(f"{verb} in {max(0, int(pending[kind] + 0.999))}s (u)")
        elif st == "done":
            parts.append(done)
        elif st == "running":
            parts.append(doing + "…")
        elif st == "pending":
            parts.append(f"{verb} queued")
        elif st == "failed":
            parts.append(f"{verb} failed (t)")  # fits the 18-column cell; help: t retries
        elif st == "doubt":
            parts.append(f"{verb} in doubt")    # the message line says: d decides
        elif st == "cancelled":
            continue
        else:
            parts.append(f"{verb} {st}")
    if not parts and state not in ("new", "unhandled", "open"):
        parts.append(state)
    return ", ".join(parts)
