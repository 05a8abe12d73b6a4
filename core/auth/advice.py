"""What switchover tells a person choosing how to sign in, written once for ``init``,
``check`` and ``login``: a personal Gmail address is better served by an app password
than by OAuth2 (Google restricts the full-mail scope)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Account

PERSONAL_GMAIL = ("gmail.com", "googlemail.com")

GMAIL_APP_PASSWORD = (
    "For a personal Gmail address an app password is simpler than OAuth2: Google treats the "
    "full-mail scope (https://mail.google.com/) as restricted, so an OAuth app you register "
    "yourself stays unverified (Google shows a warning page at every sign-in, limits it to "
    "100 users and may expire its sign-ins after 7 days while in testing). Turn on 2-Step "
    "Verification, create an app password at https://myaccount.google.com/apppasswords and "
    "use it as the password (auth: password, with password_keyring: true or password_env). "
    "OAuth2 is the right choice for Google Workspace, where the company's admin makes the "
    "app internal.")


def is_personal_gmail(address: str) -> bool:
    return address.rpartition("@")[2].strip().casefold() in PERSONAL_GMAIL


def sign_in_advice(account: "Account") -> str | None:
    """The advice for this account's sign-in choice, or None when there is none:
    Google OAuth2 on a personal @gmail.com address."""
    o = account.oauth2
    if o is not None and o.provider == "google" and is_personal_gmail(account.username):
        return GMAIL_APP_PASSWORD
    return None
