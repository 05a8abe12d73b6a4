"""The log file: what ran, what failed, never a secret.

``switchover.log`` beside the state file (or the config's ``log:`` / ``--log-file``),
rotated by the standard library's RotatingFileHandler at 1 MB with five old files kept,
0600 like the state file. The CLI writes each command's start, end and exit code and
every error sentence; the engine's LogLine events and anything logged under the
``switchover`` logger (core logs through ``logging.getLogger("switchover.core....")``)
land there too.

Secrets: ``Masking`` is a logging.Filter on the file's handler. It replaces every value
it was told is secret (the config's plain passwords, the values of its password_env
variables, a password typed at a prompt) and anything shaped like a credential
(``password=…``, ``token: …``, ``Bearer …``, ``AUTHENTICATE XOAUTH2 …``, an IMAP
``LOGIN user pass``) with ``***`` — in the message and in a traceback — before the
record is written.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path

from switchover.core.config import Config
from switchover.core.store import make_private_dirs

#: rotate at this size, keep this many old files (switchover.log.1 … .5)
MAX_BYTES = 1_000_000
BACKUPS = 5
MASK = "***"
#: credential-shaped text, whatever its value: the value part is masked
PATTERNS = [
    re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=-]+)"),
    re.compile(r"(?i)\b((?:pass(?:word|wd)?|pwd|secret|token|access_token|refresh_token|"
               r"client_secret|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?)([^\s\"',;&]+)"),
    re.compile(r"(?i)\b(AUTHENTICATE\s+(?:XOAUTH2|OAUTHBEARER|PLAIN)\s+)(\S+)"),
    re.compile(r"(?i)\b(AUTH\s+(?:XOAUTH2|PLAIN|LOGIN)\s+)(\S+)"),
    re.compile(r"\b(LOGIN\s+\S+\s+)(\S+)"),         # the IMAP command (upper case), not prose
]

log = logging.getLogger("switchover.cli")


class Masking(logging.Filter):
    """Masks the secret values it knows and credential-shaped text in every record."""

    def __init__(self) -> None:
        super().__init__()
        self._values: set[str] = set()

    def add(self, value: str | None) -> None:
        """Never write ``value`` (a password, a token) to the log. Values shorter than
        four characters would mask ordinary words and are dropped by the patterns only."""
        if value and len(value) >= 4:
            self._values.add(value)

    def add_config(self, cfg: Config) -> None:
        """The secrets the config reaches without running anything: plain passwords and
        the values of the password_env variables."""
        for acct in (cfg.old, cfg.new):
            self.add(acct.password)
            self.add(acct.runtime_secret)
            if acct.password_env:
                self.add(os.environ.get(acct.password_env))

    def mask(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):   # longest first
            text = text.replace(value, MASK)
        for pattern in PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.mask(text)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


class PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler whose files (the new one after each rotation too) are 0600."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


#: the one mask of this process (the CLI adds typed passwords as they come)
masking = Masking()
_handler: logging.Handler | None = None


def open_log(path: Path, *, debug: bool = False) -> Path | None:
    """Write the ``switchover`` logs to ``path`` from now on (rotating, 0600). Returns the
    path, or None when it cannot be written (the command goes on without a log file:
    a read-only folder is not worth refusing to work)."""
    global _handler
    close_log()
    try:
        make_private_dirs(path.parent)
        handler = PrivateRotatingFile(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    except OSError:
        return None
    handler.setLevel(logging.DEBUG if debug else logging.INFO)
    handler.addFilter(masking)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    top = logging.getLogger("switchover")
    top.addHandler(handler)
    if top.getEffectiveLevel() > handler.level:
        top.setLevel(handler.level)
    _handler = handler
    return path


def close_log() -> None:
    global _handler
    if _handler is not None:
        logging.getLogger("switchover").removeHandler(_handler)
        _handler.close()
        _handler = None


def log_path(cfg: Config, override: str | None) -> Path:
    """``--log-file``, else the config's ``log:`` (switchover.log beside the state file)."""
    if override:
        return Path(override).expanduser()
    return cfg.log or cfg.state.with_name("switchover.log")
