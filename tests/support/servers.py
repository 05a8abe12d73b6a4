"""Real mail servers on loopback for tests, the bench and anything else that needs one.

The one module to import (``from tests.support.servers import ...``). Owns: choosing the
server kind (start_mailserver) and ``write_config`` for a switchover.yaml pointing at the
servers; re-exports the rest:

- tests/support/servers_base.py     MailUser, StoredMessage, the MailServer API, free_port
- tests/support/servers_dovecot.py  DovecotServer / start_dovecot (settings that mattered
                                    are listed there)
- tests/support/servers_pymap.py    PymapServer / start_pymap (fallback when Dovecot is
                                    absent)
- tests/support/servers_smtp.py     SmtpServer (aiosmtpd that records and delivers)

pymap and aiosmtpd run on the one in-process harness the demo ships too
(switchover/demo/harness.py). Nothing here mocks a protocol: every test talks to a real
server over TCP on 127.0.0.1. Usable outside pytest (``bench/`` imports it): nothing
needs pytest, except that asking pymap for a Dovecot-only feature calls ``pytest.skip``
when pytest is running.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from tests.support.servers_base import (DOMAIN, HOST, SPECIAL_FOLDERS, MailServer, MailUser,
                                StoredMessage, Unsupported, free_port)
from tests.support.servers_dovecot import DovecotServer, dovecot_available, start_dovecot
from tests.support.servers_pymap import PymapServer, start_pymap
from tests.support.servers_smtp import SmtpServer

__all__ = ["MailUser", "StoredMessage", "MailServer", "DovecotServer", "PymapServer",
           "SmtpServer", "Unsupported", "start_dovecot", "start_pymap", "start_mailserver",
           "dovecot_available", "write_config", "free_port", "HOST", "DOMAIN",
           "SPECIAL_FOLDERS"]


def start_mailserver(kind: str | None = None) -> MailServer:
    """Dovecot when installed (or kind='dovecot'), else pymap; $SWITCHOVER_TEST_SERVER wins."""
    kind = kind or os.environ.get("SWITCHOVER_TEST_SERVER") or (
        "dovecot" if dovecot_available() else "pymap")
    if kind == "dovecot":
        return start_dovecot()
    if kind == "pymap":
        return start_pymap()
    raise ValueError(f"unknown test server kind {kind!r} (dovecot or pymap)")


def write_config(path: str | os.PathLike[str], *, old_user: MailUser, new_user: MailUser,
                 server: MailServer, smtp: SmtpServer | None = None,
                 identity: dict[str, Any] | None = None, new_server: MailServer | None = None,
                 **sections: Any) -> Path:
    """Write a valid switchover.yaml (chmod 600) for old_user -> new_user; returns its path.

    ``path`` may be a directory (the file is then ``switchover.yaml`` in it). Extra
    keyword sections (migration=..., transition=..., old=..., state=...) are merged into
    the top level, one mapping level deep.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "switchover.yaml"

    def side(user: MailUser, srv: MailServer) -> dict[str, Any]:
        d: dict[str, Any] = {
            "provider": "custom",
            "imap": {"host": srv.host, "port": srv.imap_port, "security": "none"},
            "username": user.username,
            "password": user.password,
        }
        if smtp is not None:
            d["smtp"] = {"host": smtp.host, "port": smtp.port, "security": "none"}
        return d

    data: dict[str, Any] = {
        "identity": {"name": "Ada Lovelace", "company": "Example Ltd",
                     "old_address": old_user.address, "new_address": new_user.address,
                     "language": "en", **(identity or {})},
        "old": side(old_user, server),
        "new": side(new_user, new_server or server),
        "state": "switchover.sqlite",
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)
    os.chmod(p, 0o600)
    return p
