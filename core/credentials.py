"""Getting a secret from the recipe the config names: a command that prints it (a
password manager, an OAuth2 token helper), an environment variable, the OS keyring
(``password_keyring: true``) or an OAuth2 sign-in whose access token is refreshed on every
(re)connect (core/auth/). Secrets are resolved when needed and kept in memory only;
nothing here writes them anywhere.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Account


def program_of(command: str) -> str:
    """The program a shell command line starts ('' when it cannot be told)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return ""
    for w in words:
        if _ASSIGNMENT.match(w):
            continue                      # FOO=bar prog ...
        return w
    return ""


_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def findable(program: str) -> bool:
    if "/" in program:
        return os.access(os.path.expanduser(program), os.X_OK)
    # a shell builtin or keyword (echo, printf, cat <<) is not on PATH but runs
    return shutil.which(program) is not None or program in _SHELL_WORDS


_SHELL_WORDS = {"echo", "printf", "cat", "read", "eval", "exec", "test", "[", "command", "set",
                "if", "for", "while", "{", "(", "true", "false", "."}


def run_secret_command(command: str, key: str) -> str:
    try:
        out = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{key} did not finish within 60 seconds.") from None
    if out.returncode != 0:
        raise ConfigError(f"{key} failed (exit {out.returncode}); run it by hand to see why.")
    value = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    if not value:
        raise ConfigError(f"{key} printed nothing.")
    return value


def keyring_problem(account: "Account") -> str | None:
    """One sentence when ``password_keyring: true`` cannot give a password now (no keyring
    on this machine, nothing stored yet); None when it can."""
    from .auth import tokens
    side = account.side
    if not tokens.keyring_available():
        return tokens.no_keyring_sentence(side)
    try:
        stored = tokens.read_secret(side, account.username)
    except ConfigError as e:
        return e.message
    if not stored:
        return (f"No password for the {side} mailbox ({account.username}) is stored in the OS "
                f"keyring yet ({side}.password_keyring); store it with: switchover login "
                f"{side} --password")
    return None


def keyring_password(account: "Account") -> str:
    """The password kept in the OS keyring (``password_keyring: true``)."""
    from .auth import tokens
    stored = tokens.read_secret(account.side, account.username)
    if not stored:
        raise ConfigError(keyring_problem(account) or "No password is stored in the OS keyring.")
    return stored


def oauth2_access_token(account: "Account") -> str:
    """A fresh access token of a signed-in account (refreshed when about to expire);
    SignInNeeded (exit 3) when the sign-in is missing, expired or revoked."""
    from .auth.oauth2 import access_token
    return access_token(account)
