"""Sign in from the checklist: an admin ended the old mailbox's sessions, so the watch is
refused; on that mailbox's login item the detail names ``i``, which opens the app's Sign in
dialog (tui/signin.py) against the local identity provider and the Dovecot that checks its
tokens (tests/support/servers_oauth2.py); the new sign-in replaces the dead one and the
watch connects with it. On a password mailbox's item ``i`` says what it is for and opens
nothing."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from switchover.core.auth.oauth2 import begin_sign_in, forget_sources
from switchover.core.config import load_config
from switchover.tui.app import SwitchoverApp
from switchover.tui.signin import SignInScreen
from tests.support.servers import write_config
from tests.support.servers_oauth2 import oauth, oauth_dovecot, test_keyring  # noqa: F401
from tests.support.pilot import screen_text, wait_until

pytestmark = pytest.mark.timeout(60)


async def select(pilot: Any, app: Any, key: str) -> str:
    """Put the checklist's cursor on item ``key``; returns its detail text."""
    table = app.pane("checklist").table
    table.move_cursor(row=table.get_row_index(key))
    await pilot.pause(0.1)
    return str(app.screen.query_one("#checklist-detail-text").render())


async def test_i_on_an_oauth2_login_item_signs_in_again(
        oauth, oauth_dovecot, mailserver, new_user, tmp_path, test_keyring) -> None:
    user = oauth_dovecot.add_user("cklist")
    path = write_config(tmp_path / "switchover.yaml", old_user=user, new_user=new_user, server=mailserver,
                        old={"imap": {"host": oauth_dovecot.host, "port": oauth_dovecot.imap_port,
                                      "security": "none"},
                             "username": user.username, "password": None, "auth": "oauth2",
                             "oauth2": oauth.microsoft()})
    flow = begin_sign_in(load_config(path).old)               # signed in once (no dialog at start) ...
    threading.Timer(0.2, oauth.approve, (flow.code, user.username)).start()
    flow.wait()
    first = test_keyring.get_password("switchover", f"old:{user.username}")
    oauth.revoke(user.username, access_too=True)              # ... then an admin ended the sessions
    forget_sources()
    app = SwitchoverApp(config=path)
    async with app.run_test(size=(100, 30)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 15)
        await wait_until(pilot, lambda: app.status.connections.get("old") == "auth failed",
                         what="the refusal", timeout=15)
        await pilot.pause(0.1)
        p = app.active_bindings["P"]
        assert p.enabled and p.binding.description == "Sign in again"      # the footer's P, for both kinds
        # a password mailbox: i says what it is for, nothing opens
        assert "i signs in" not in await select(pilot, app, "login_new")
        await pilot.press("i")
        assert not isinstance(app.screen, SignInScreen)
        message = app.pane("checklist").query_one(".pane-message")
        assert "whose account uses OAuth2" in str(message.render())
        # the OAuth2 mailbox: the detail names i; i opens the dialog with the device code
        assert "i signs in to the old mailbox again" in await select(pilot, app, "login_old")
        await pilot.press("i")
        await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen)
                         and "Code: " in screen_text(app), what="the device code", timeout=15)
        code = screen_text(app).split("Code: ")[1].split()[0]
        oauth.approve(code, user.username)                  # the person, on their phone
        await wait_until(pilot, lambda: not isinstance(app.screen, SignInScreen),
                         what="the dialog to close", timeout=15)
        await wait_until(pilot, lambda: app.status.connections.get("old") == "connected",
                         what=f"the reconnect {app.status.connections}", timeout=15)
    again = test_keyring.get_password("switchover", f"old:{user.username}")
    assert json.loads(again)["provider"] == "microsoft" and again != first     # a new sign-in kept
