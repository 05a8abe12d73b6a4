"""The preflight's sign-in note (core/prepare/preflight.py ``sign_in_notes``): a personal
Gmail address set up with Google OAuth2 gets core/auth/advice.py's app-password advice as
a "warn" that never blocks; a Google Workspace address with OAuth2 and a password account
get none. Run against Dovecot without sending (``send=False``, as ``check --no-send``)."""

from __future__ import annotations

from typing import Any

import pytest

from switchover.core.auth.advice import GMAIL_APP_PASSWORD
from switchover.core.prepare.records import WARN
from tests.support.servers_oauth2 import test_keyring  # noqa: F401

pytestmark = pytest.mark.timeout(60)
GOOGLE = {"provider": "google", "client_id": "1234-abc.apps.googleusercontent.com",
          "client_secret": "GOCSPX-not-secret"}


def google_side(username: str) -> dict[str, Any]:
    return {"username": username, "password": None, "auth": "oauth2", "oauth2": GOOGLE}


async def test_personal_gmail_with_oauth2_gets_the_app_password_note(mailserver, make_engine, old_user,
                                                                     new_user, test_keyring) -> None:
    eng = await make_engine(old_user, new_user, new=google_side("wu.jun@gmail.com"))
    report = await eng.preflight.run(send=False)
    note = report.get("signin.new")
    assert note is not None and note.verdict == WARN and not note.blocking
    assert note.section == "Logins" and note.found == "wu.jun@gmail.com signs in with Google OAuth2"
    assert note.advice == GMAIL_APP_PASSWORD
    assert report.get("signin.old") is None                 # a password account: no note
    assert note not in report.blocking
    lines = report.lines()
    at = lines.index("  new sign-in: warn — wu.jun@gmail.com signs in with Google OAuth2")
    assert lines[at + 2].startswith("      to do: For a personal Gmail address an app password")
    # the login itself is still checked and reported on its own (not signed in yet here)
    assert report.get("login.new.imap").blocking and "switchover login new" in report.get("login.new.imap").found


async def test_google_workspace_and_passwords_get_no_note(mailserver, make_engine, old_user, new_user,
                                                          test_keyring) -> None:
    eng = await make_engine(old_user, new_user, new=google_side("john.wu@company-on-google.example"))
    report = await eng.preflight.run(send=False)
    assert not [f for f in report.findings if f.name.startswith("signin.")]
