"""Command palette entries (ctrl+p) for the dashboard's main actions: each switches to
its pane and runs the same action its key runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

from textual.app import SystemCommand

if TYPE_CHECKING:
    from .app import SwitchoverApp

#: (title, help, pane, action)
COMMANDS = (
    ("Migration: plan (dry run)", "List folders on both sides and what would be copied", "migration", "plan"),
    ("Migration: start", "Copy the old mailbox into the new one", "migration", "start"),
    ("Migration: pause / resume", "Pause or resume the running copy", "migration", "pause"),
    ("Migration: verify", "Compare both mailboxes folder by folder", "migration", "verify"),
    ("Migration: cancel", "Stop the running migration, verification or backup", "migration", "cancel"),
    ("Migration: show / hide the log", "The log of plans, runs and verifications", "migration", "toggle_log"),
    ("Back up the old mailbox", "Write every folder to .mbox / .eml files", "migration", "backup"),
    ("Feed: forward selected", "Forward the selected arrival to the new address", "feed", "act('forward')"),
    ("Feed: remind sender", "Send the sender a short reminder of the new address", "feed", "act('remind')"),
    ("Feed: mark handled", "Mark the selected arrival handled", "feed", "act('handled')"),
    ("Feed: undo", "Cancel the last action while its undo window is open", "feed", "undo"),
    ("Feed: retry failed action", "Try a failed forward or reminder again", "feed", "retry"),
    ("Feed: show the reminder", "The reminder r would send: To, Subject, language, text", "feed", "more"),
    ("Feed: settle a send in doubt", "Say whether a forward or reminder in doubt arrived, or send it again", "feed", "doubt"),
    ("Checklist: tick / untick selected", "Tick the selected item", "checklist", "tick"),
    ("Checklist: re-check evidence", "Let the engine prove what it can", "checklist", "evidence"),
    ("Checklist: note on selected", "Add or change the selected item's note", "checklist", "note"),
    ("Checklist: due date of selected", "Set or clear the selected item's due date", "checklist", "due"),
    ("Checklist: skip selected", "Mark the selected item not needed (again reopens it)", "checklist", "skip"),
    ("People: filter", "Show correspondents matching a text", "people", "filter"),
)
PANES = (("checklist", "Checklist"), ("migration", "Migration"), ("feed", "Feed"),
         ("people", "People"))


def _runner(app: "SwitchoverApp", tab_id: str, action: str) -> Callable[[], Any]:
    async def run() -> None:
        app.action_show_tab(tab_id)
        await app.run_action(action, app.pane(tab_id))
    return run


def palette_commands(app: "SwitchoverApp") -> Iterator[SystemCommand]:
    for title, help_, tab, action in COMMANDS:
        yield SystemCommand(title, help_, _runner(app, tab, action))
    for side in ("old", "new"):
        yield SystemCommand(f"Enter the {side} mailbox password",
                            "Type it again (kept in memory only) and connect with it at once",
                            lambda s=side: app.action_password(s))
    for tab_id, name in PANES:
        yield SystemCommand(f"Show {name}", f"Switch to the {name} pane",
                            lambda t=tab_id: app.action_show_tab(t))
