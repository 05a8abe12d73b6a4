"""The common ground of the test mail servers: users, the MailServer API, helpers.

Owns: MailUser / StoredMessage records, the MailServer base class (account, client,
append, append_many, deliver, folders, fetch, messages, require) that DovecotServer
(tests/support/servers_dovecot.py) and PymapServer (tests/support/servers_pymap.py)
extend, and free_port. Import the public names from tests/support/servers.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import imapclient

from switchover.core.config import Account, Endpoint

if TYPE_CHECKING:
    from tests.support.servers_smtp import SmtpServer

HOST = "127.0.0.1"
DOMAIN = "example.com"
#: created for every user (Dovecot marks them with SPECIAL-USE; pymap can't)
SPECIAL_FOLDERS = ("Sent", "Drafts", "Trash", "Junk", "Archive")


class Unsupported(RuntimeError):
    """The server kind cannot do what was asked (e.g. a Courier namespace on pymap)."""


def _unsupported(message: str) -> None:
    # Inside pytest a missing server feature is a skip, not a failure; outside, an error.
    if "pytest" in sys.modules:
        import pytest
        pytest.skip(message)
    raise Unsupported(message)


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (the usual tiny race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as s:
                s.settimeout(2)
                if s.recv(1):         # a greeting means the login process is up
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


@dataclass
class MailUser:
    username: str
    password: str
    address: str
    courier: bool = False
    quota_kb: int | None = None
    max_message_kb: int | None = None


@dataclass
class StoredMessage:
    uid: int
    raw: bytes
    flags: tuple[str, ...]
    internaldate: dt.datetime


class MailServer:
    """The API every server kind offers; see DovecotServer and PymapServer."""

    kind: str = "?"
    host: str = HOST
    imap_port: int = 0
    lmtp_port: int | None = None
    sieve_port: int | None = None
    features: set[str]

    def __init__(self) -> None:
        self.features = set()
        self.users: dict[str, MailUser] = {}       # address (lowercase) -> user
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        #: SmtpServers that want a copy of what this server sends (vacation replies)
        self.watchers: list[SmtpServer] = []
        self.outbox: SmtpServer | None = None

    # -- users ----------------------------------------------------------------------------
    def _new_name(self, prefix: str) -> str:
        with self._lock:
            n = next(self._counter)
        return f"{prefix}{n}@{DOMAIN}"

    def add_user(self, prefix: str = "u", *, courier: bool = False, quota_kb: int | None = None,
                 max_message_kb: int | None = None,
                 password: str | None = None) -> MailUser:
        """A fresh user "<prefix><n>@example.com" (username == address), usable at once.

        courier: folders live under "INBOX." with "." as separator (Dovecot only);
        quota_kb / max_message_kb: storage quota and largest message the server takes,
        refused with the server's own words (Dovecot only). On pymap these skip the test.
        """
        raise NotImplementedError

    def user_for(self, address: str) -> MailUser | None:
        return self.users.get(address.strip().strip("<>").lower())

    def require(self, *features: str) -> None:
        """Skip (under pytest) or raise Unsupported unless every feature is offered."""
        missing = [f for f in features if f not in self.features]
        if missing:
            _unsupported(f"{self.kind} test server lacks: {', '.join(missing)}")

    # -- access ---------------------------------------------------------------------------
    def account(self, user: MailUser, side: str = "old", *, smtp: "SmtpServer | None" = None,
                max_connections: int = 4) -> Account:
        return Account(side=side, provider="custom",
                       imap=Endpoint(self.host, self.imap_port, "none"),
                       smtp=Endpoint(smtp.host, smtp.port, "none") if smtp else None,
                       username=user.username, password=user.password,
                       max_connections=max_connections)

    def client(self, user: MailUser, timeout: float = 30) -> imapclient.IMAPClient:
        c = imapclient.IMAPClient(self.host, self.imap_port, ssl=False, timeout=timeout)
        c.login(user.username, user.password)
        return c

    def delimiter(self, user: MailUser) -> str:
        return "." if user.courier else "/"

    def ensure_folder(self, c: imapclient.IMAPClient, user: MailUser, folder: str) -> None:
        """Create folder and its parents (each a real, selectable folder) if missing."""
        if folder.upper() == "INBOX":
            return
        sep = self.delimiter(user)
        existing = {name for _f, _d, name in c.list_folders()}
        parts = folder.split(sep)
        for i in range(1, len(parts) + 1):
            name = sep.join(parts[:i])
            if name in existing or name.upper() == "INBOX":
                continue
            try:
                c.create_folder(name)
            except imapclient.exceptions.IMAPClientError as e:
                if "exist" not in str(e).lower():
                    raise
            existing.add(name)

    def append(self, user: MailUser, folder: str, raw: bytes, flags: Iterable[str | bytes] = (),
               date: dt.datetime | None = None) -> int | None:
        """APPEND raw (byte-exact) into folder, creating it first; returns the UID if told."""
        c = self.client(user)
        try:
            self.ensure_folder(c, user, folder)
            resp = c.append(folder, raw, flags=tuple(flags), msg_time=date)
        finally:
            _logout(c)
        return _appenduid(resp)

    def append_many(self, user: MailUser, folder: str,
                    messages: Iterable[bytes | tuple[bytes, Iterable[str | bytes], dt.datetime | None]],
                    ) -> int:
        """APPEND many messages over one connection (bench / big mailboxes); returns count.

        Each item is raw bytes or (raw, flags, date).
        """
        c = self.client(user)
        n = 0
        try:
            self.ensure_folder(c, user, folder)
            for item in messages:
                raw, flags, date = (item, (), None) if isinstance(item, bytes) else item
                c.append(folder, raw, flags=tuple(flags), msg_time=date)
                n += 1
        finally:
            _logout(c)
        return n

    def deliver(self, user: MailUser, raw: bytes, sender: str = "sender@example.com") -> None:
        self.append(user, "INBOX", raw)

    # -- looking (for assertions) ---------------------------------------------------------
    def folders(self, user: MailUser) -> list[tuple[tuple[bytes, ...], str, str]]:
        """LIST "" "*" as (flags, delimiter, name)."""
        c = self.client(user)
        try:
            return [(tuple(f), d.decode() if isinstance(d, bytes) else d, n)
                    for f, d, n in c.list_folders()]
        finally:
            _logout(c)

    def messages(self, user: MailUser, folder: str = "INBOX") -> list[bytes]:
        """Every message's raw bytes in folder, in UID order (empty if no such folder)."""
        return [m.raw for m in self.fetch(user, folder)]

    def fetch(self, user: MailUser, folder: str = "INBOX") -> list["StoredMessage"]:
        """Raw bytes, flags and internal date of every message in folder, in UID order."""
        c = self.client(user)
        try:
            try:
                c.select_folder(folder, readonly=True)
            except imapclient.exceptions.IMAPClientError:
                return []
            uids = c.search("ALL")
            if not uids:
                return []
            data = c.fetch(uids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])
            return [StoredMessage(uid, data[uid][b"BODY[]"],
                                  tuple(f.decode() if isinstance(f, bytes) else str(f)
                                        for f in data[uid][b"FLAGS"]),
                                  data[uid][b"INTERNALDATE"]) for uid in sorted(data)]
        finally:
            _logout(c)

    def log_text(self, since: int = 0) -> str:
        """The server's log from byte offset since (see log_size); '' if it keeps none."""
        return ""

    def log_size(self) -> int:
        return 0

    def stop(self) -> None:
        if self.outbox is not None:
            self.outbox.stop()
            self.outbox = None

    def __enter__(self) -> "MailServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _logout(c: imapclient.IMAPClient) -> None:
    try:
        c.logout()
    except Exception:
        pass


def _appenduid(resp: Any) -> int | None:
    text = resp.decode() if isinstance(resp, bytes) else str(resp)
    if "APPENDUID" in text:
        try:
            return int(text.split("APPENDUID", 1)[1].split("]")[0].split()[1])
        except (IndexError, ValueError):
            return None
    return None
