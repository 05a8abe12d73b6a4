"""What ``switchover login`` and the dashboard's Sign in do besides the provider's flow:
prove the stored secret with a real IMAP login, keep a password in the OS keyring only
after the server took it, and forget a stored secret. Blocking (run in a worker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..net import imap
from . import tokens

if TYPE_CHECKING:
    from ..config import Account


def prove_login(account: "Account", secret: str | None = None) -> None:
    """Log in to the account's IMAP server once (a fresh token for an oauth2 account);
    raises AuthError / ConnectError / SignInNeeded with one sentence."""
    imap.close(imap.connect(account, timeout=30.0, secret=secret))


def keep_password(account: "Account", password: str) -> None:
    """Check ``password`` with an IMAP login, then keep it in the OS keyring under
    service "switchover", user "<side>:<username>". Nothing is stored when refused."""
    if account.signs_in or account.auth == "oauth2":
        raise ConfigError(f"The {account.side} mailbox signs in with OAuth2 "
                          f"({account.side}.auth: oauth2); it has no password to keep.")
    if not password:
        raise ConfigError("No password was given; nothing is stored.")
    tokens.read_secret(account.side, account.username)      # no keyring: say so first
    prove_login(account, password)         # the password just typed, not the config's
    tokens.store_secret(account.side, account.username, password)


def forget(account: "Account") -> bool:
    """Delete the account's keyring entry (password or sign-in); False when none."""
    from .oauth2 import forget_sources
    forget_sources()
    return tokens.forget_secret(account.side, account.username)
