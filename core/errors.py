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


class StateFileError(SwitchoverError):
    """The state file cannot be opened, read or written (exit 2)."""

    exit_code = 2


def sentence(exc: BaseException, *, limit: int = 300, named: bool = True) -> str:
    """The one way an exception becomes words for a person: a SwitchoverError's own
    sentence; otherwise the exception's text (bytes reprs unwrapped, whitespace folded),
    prefixed with its class name when the text alone would not say what happened.
    ``named=False`` never adds the class name (the caller's sentence already says what
    happened and quotes a server's own words, e.g. its answer to LOGIN)."""
    if isinstance(exc, SwitchoverError):
        return exc.message
    text = str(exc).strip()
    if text.startswith(("b'", 'b"')) and text.endswith(("'", '"')):
        text = text[2:-1]
    text = " ".join(text.split()).rstrip(".")
    name = exc.__class__.__name__
    if not text:
        return name
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f" ({exc.filename})" if exc.filename else "")
    return (text if not named or len(text) > 12 or name in text else f"{name}: {text}")[:limit]
