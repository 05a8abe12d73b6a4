"""The dashboard's Sign in (tui/signin.py) against the local identity provider and the
Dovecot that checks tokens with it (tests/support/servers_oauth2.py): an oauth2 account
without a sign-in gets the dialog at start (Microsoft: address + code), the watch then
connects; a refused Google sign-in is fixed from P with the pasted address."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests

from switchover.core.auth import tokens
from switchover.tui.app import SwitchoverApp
from switchover.tui.signin import SignInScreen
from tests.support.servers import write_config
from tests.support.servers_oauth2 import oauth, oauth_dovecot, test_keyring  # noqa: F401
from tests.support.pilot import screen_text, wait_until

pytestmark = pytest.mark.timeout(60)


def oauth_old(oauth_dovecot: Any, user: Any, block: dict[str, Any]) -> dict[str, Any]:
    return {"imap": {"host": oauth_dovecot.host, "port": oauth_dovecot.imap_port, "security": "none"},
            "username": user.username, "password": None, "auth": "oauth2", "oauth2": block}


async def test_sign_in_dialog_at_start_then_the_watch_connects(
        oauth, oauth_dovecot, mailserver, new_user, tmp_path, test_keyring) -> None:
    user = oauth_dovecot.add_user("tui")
    path = write_config(tmp_path / "switchover.yaml", old_user=user, new_user=new_user,
                        server=mailserver, old=oauth_old(oauth_dovecot, user, oauth.microsoft()))
    app = SwitchoverApp(config=path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen)
                         and "Code: " in screen_text(app), what="the device code", timeout=15)
        text = screen_text(app)
        code = text.split("Code: ")[1].split()[0]
        assert f"{oauth.base}/devicelogin" in text and user.username in text
        oauth.approve(code, user.username)                  # the person, on their phone
        await wait_until(pilot, lambda: not isinstance(app.screen, SignInScreen),
                         what="the dialog to close", timeout=15)
        await asyncio.wait_for(app.ready.wait(), 15)
        await wait_until(pilot, lambda: app.status.connections.get("old") == "connected",
                         what="the watch", timeout=15)
        assert tokens.read_signin("old", user.username)["provider"] == "microsoft"


async def test_refused_google_sign_in_fixed_with_p_and_a_pasted_address(
        oauth, oauth_dovecot, mailserver, new_user, tmp_path, test_keyring) -> None:
    user = oauth_dovecot.add_user("tuig")
    tokens.store_signin("old", user.username, {"provider": "google", "refresh_token": "rt-revoked"})
    path = write_config(tmp_path / "switchover.yaml", old_user=user, new_user=new_user,
                        server=mailserver, old=oauth_old(oauth_dovecot, user, oauth.google()))
    app = SwitchoverApp(config=path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.status.connections.get("old") == "auth failed",
                         what="the refusal", timeout=15)
        await wait_until(pilot, lambda: any("P signs in again" in str(n.message)
                                            for n in app._notifications), what="the hint", timeout=15)
        await pilot.press("P")
        await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen)
                         and app.screen.flow is not None, what="the Google dialog", timeout=15)
        flow = app.screen.flow
        paste = app.screen.query_one("#signin-paste")
        assert paste.display and "127.0.0.1" in screen_text(app)
        await pilot.press("ctrl+y")                         # the long address, for the clipboard
        assert app.clipboard == flow.url and paste.value == ""
        # over SSH: the browser elsewhere ends on a loopback page that does not load
        landing = await asyncio.to_thread(
            lambda: requests.get(flow.url, allow_redirects=False, timeout=10).headers["Location"])
        paste.value = landing
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, SignInScreen),
                         what="the dialog to close", timeout=15)
        await wait_until(pilot, lambda: app.status.connections.get("old") == "connected",
                         what="the reconnect", timeout=20)
        assert tokens.read_signin("old", user.username)["refresh_token"] != "rt-revoked"
