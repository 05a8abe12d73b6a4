"""OAuth2 sign-in of an account, the way a desktop mail client does it: one sign-in
(``begin_sign_in``: Microsoft's device code, Google's installed-app redirect) stored in the
OS keyring, then a fresh access token on every (re)connect (``access_token``, called by
``Account.secret()`` from core/net/imap.py, smtp.py and sieve.py for XOAUTH2 /
OAUTHBEARER).

A sign-in that is missing, expired or revoked is ``SignInNeeded``: an AuthError (exit 3,
never retried blindly) whose one sentence says "sign in again: switchover login <side>".
The token sources live in memory, one per account, so parallel connections share one
refresh (a lock per source).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from ..errors import AuthError, ConfigError

if TYPE_CHECKING:
    from ..config import Account
    from .settings import OAuth2Settings


class SignInNeeded(AuthError):
    """No usable sign-in for an oauth2 account: sign in again (exit 3)."""


def sign_in_again(side: str, why: str) -> SignInNeeded:
    return SignInNeeded(f"The {side} mailbox's sign-in {why}; sign in again: switchover login {side}")


def not_signed_in(side: str) -> SignInNeeded:
    return SignInNeeded(f"The {side} mailbox is not signed in yet (no sign-in is kept in the OS "
                        f"keyring); sign in: switchover login {side}")


class TokenSource(Protocol):
    def access_token(self) -> str: ...


class SignIn(Protocol):
    """One interactive sign-in under way. ``url`` is what the person opens (on any
    machine); ``code`` the code to type there (Microsoft) or "" (Google: the page sends
    the browser back to this machine, or the person pastes the address it ended on into
    ``paste``). ``wait`` blocks until it is done and returns the account signed in (or
    "" when the provider does not say); ``cancel`` ends ``wait`` with SignInCancelled."""
    url: str
    code: str
    expires_in: int
    accepts_paste: bool

    def instructions(self) -> str: ...
    def wait(self) -> str: ...
    def paste(self, address: str) -> None: ...
    def cancel(self) -> None: ...


class SignInCancelled(AuthError):
    """The person stopped a sign-in (exit 3)."""


_lock = threading.Lock()
_sources: dict[tuple[str, str, "OAuth2Settings"], TokenSource] = {}


def _settings(account: "Account") -> "OAuth2Settings":
    if account.oauth2 is None:
        raise ConfigError(f"{account.side}.oauth2 is not set: this account does not sign in "
                          f"with OAuth2.")
    return account.oauth2


def source(account: "Account") -> TokenSource:
    """The account's token source (one per account and app registration, in memory)."""
    settings = _settings(account)
    key = (account.side, account.username, settings)
    with _lock:
        found = _sources.get(key)
        if found is None:
            found = _sources[key] = _new_source(account.side, account.username, settings)
        return found


def _new_source(side: str, username: str, settings: "OAuth2Settings") -> TokenSource:
    if settings.provider == "microsoft":
        from .microsoft import MicrosoftTokens
        return MicrosoftTokens(side, username, settings)
    from .google import GoogleTokens
    return GoogleTokens(side, username, settings)


def access_token(account: "Account") -> str:
    """A valid access token for ``account``, refreshed when it is about to expire."""
    return source(account).access_token()


def begin_sign_in(account: "Account") -> SignIn:
    """Start the provider's interactive sign-in for ``account`` (network: blocking)."""
    settings = _settings(account)
    if settings.provider == "microsoft":
        from .microsoft import MicrosoftSignIn
        return MicrosoftSignIn.begin(account.side, account.username, settings)
    from .google import GoogleSignIn
    return GoogleSignIn.begin(account.side, account.username, settings)


def forget_sources() -> None:
    """Drop the in-memory tokens (tests; a new sign-in is read from the keyring anyway)."""
    with _lock:
        _sources.clear()


def same_user(signed_in: str, username: str) -> bool:
    return not signed_in or signed_in.casefold() == username.casefold()


def has_sign_in(account: "Account") -> bool:
    """Whether a sign-in is stored for ``account`` (False too without a keyring: the
    Sign in dialog then says why)."""
    from . import tokens
    try:
        return tokens.read_signin(account.side, account.username) is not None
    except ConfigError:
        return False
