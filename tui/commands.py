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
    ("Preflight: check the new mailbox", "Logins, room, a round trip of test messages, DNS, the address",
     "checklist", "preflight"),
    ("Checklist: the change request letter", "The 申请书 from the measured mailbox, in Chinese or English; "
     "write it to a file", "checklist", "letter"),
    ("Checklist: where the old address is still found", "Files and web pages from the last scan; "
     "scan again", "checklist", "scan"),
    ("Checklist: note on selected", "Add or change the selected item's note", "checklist", "note"),
    ("Checklist: due date of selected", "Set or clear the selected item's due date", "checklist", "due"),
    ("Checklist: skip selected", "Mark the selected item not needed (again reopens it)", "checklist", "skip"),
    ("Closing readiness", "Is it safe to close the old mailbox? The verdict, its reasons, the earliest date",
     "checklist", "closing"),
    ("People: filter", "Show correspondents matching a text", "people", "filter"),
)
#: (title, help, app action): screens opened from anywhere
SCREENS = (
    ("Campaign: the change notice", "Counts, progress and ETA, preview per person; test, send, pause, "
     "final reminder, decide a doubt", "campaign"),
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
        if app.engine is not None and app.engine.config.account(side).signs_in:
            yield SystemCommand(f"Sign in to the {side} mailbox",
                                "OAuth2 sign-in (Microsoft 365 / Google Workspace); tokens stay "
                                "in the OS keyring", lambda s=side: app.action_signin(s))
            continue
        yield SystemCommand(f"Enter the {side} mailbox password",
                            "Type it again (kept in memory only) and connect with it at once",
                            lambda s=side: app.action_password(s))
    for title, help_, action in SCREENS:
        yield SystemCommand(title, help_, getattr(app, f"action_{action}"))
    for tab_id, name in PANES:
        yield SystemCommand(f"Show {name}", f"Switch to the {name} pane",
                            lambda t=tab_id: app.action_show_tab(t))
