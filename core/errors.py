"""Errors meant for people: each carries one sentence and the process exit code."""

from __future__ import annotations


class SwitchoverError(Exception):
    """An error the CLI prints as one sentence, then exits with ``exit_code``."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(SwitchoverError):
    """The config file is missing, unreadable or has a bad key or value (exit 2)."""

    exit_code = 2


class ConnectError(SwitchoverError):
    """A server could not be reached or refused the login (exit 3)."""

    exit_code = 3


class AuthError(ConnectError):
    """The server refused the credentials (exit 3)."""


class ThrottledError(SwitchoverError):
    """The server asked us to slow down; ``retry_after`` seconds is its hint."""

    def __init__(self, message: str, retry_after: float = 30.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FolderError(SwitchoverError):
    """The server refused to create, select or list a folder."""
