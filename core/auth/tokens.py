"""Secrets in the OS keyring (``keyring``): a password (``password_keyring: true``) or an
account's sign-in (Microsoft: msal's serialized token cache; Google: the refresh token).

One entry per account: service ``switchover``, user ``<side>:<username>``. Where no keyring
backend exists (a bare server: ``keyring.get_keyring()`` is the fail or null backend),
every call raises ``NoKeyring``, one sentence pointing to password_command /
oauth2_token_command; nothing ever falls back to a plain file.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend


def _keyring() -> ModuleType:
    """The keyring library, loaded when a secret is read or kept (its backends take
    ~35 ms to import: every command would pay it otherwise)."""
    import keyring
    import keyring.errors
    return keyring

SERVICE = "switchover"


class NoKeyring(ConfigError):
    """No usable OS keyring on this machine (exit 2)."""


def entry_user(side: str, username: str) -> str:
    return f"{side}:{username}"


def _usable(backend: "KeyringBackend") -> bool:
    inner = getattr(backend, "backends", None)     # the chainer: usable when one of its is
    if inner is not None:
        return any(_usable(b) for b in inner)
    module = type(backend).__module__
    return not module.startswith(("keyring.backends.fail", "keyring.backends.null"))


def keyring_available() -> bool:
    try:
        return _usable(_keyring().get_keyring())
    except Exception:       # a broken backend configuration is no keyring either
        return False


def no_keyring_sentence(side: str) -> str:
    return (f"No OS keyring is available on this machine (the keyring library found no backend), "
            f"so the {side} mailbox's secret cannot be kept there; use {side}.password_command "
            f"(a password manager's command) or {side}.oauth2_token_command instead.")


def _check(side: str) -> None:
    if not keyring_available():
        raise NoKeyring(no_keyring_sentence(side))


def _trouble(side: str, e: Exception) -> ConfigError:
    return ConfigError(f"The OS keyring refused to give or keep the {side} mailbox's secret "
                       f"({type(e).__name__}: {str(e)[:120]}); unlock it and try again.")


def read_secret(side: str, username: str) -> str | None:
    """The stored secret, or None when nothing is stored; NoKeyring without a keyring."""
    _check(side)
    keyring = _keyring()
    try:
        return keyring.get_password(SERVICE, entry_user(side, username))  # type: ignore[no-any-return]
    except keyring.errors.KeyringError as e:
        raise _trouble(side, e) from None


def store_secret(side: str, username: str, secret: str) -> None:
    _check(side)
    keyring = _keyring()
    try:
        keyring.set_password(SERVICE, entry_user(side, username), secret)
    except keyring.errors.KeyringError as e:
        raise _trouble(side, e) from None


def forget_secret(side: str, username: str) -> bool:
    """Delete the entry; False when there was none."""
    _check(side)
    keyring = _keyring()
    try:
        keyring.delete_password(SERVICE, entry_user(side, username))
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError as e:
        raise _trouble(side, e) from None
    return True


def read_signin(side: str, username: str) -> dict[str, Any] | None:
    """A stored sign-in (a JSON object with ``provider``), or None."""
    raw = read_secret(side, username)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None         # a password stored under this name: not a sign-in
    return data if isinstance(data, dict) and "provider" in data else None


def store_signin(side: str, username: str, data: dict[str, Any]) -> None:
    store_secret(side, username, json.dumps(data, separators=(",", ":")))
