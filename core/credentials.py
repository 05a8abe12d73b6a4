"""Getting a secret from the recipe the config names: a command that prints it (a
password manager, an OAuth2 token helper) or an environment variable. Secrets are
resolved when needed and kept in memory only; nothing here writes them anywhere.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

from .errors import ConfigError


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
