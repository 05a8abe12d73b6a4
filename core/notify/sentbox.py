"""The new mailbox's Sent folder as the campaign uses it: its name, a message looked up by
Message-ID, the byte-exact APPEND of a notice's copy (core/transition/mailbox.py), and
the INBOX search for a test notice. One short connection each, or :class:`Kept`: one
connection through a campaign run for the copies (NOOP before each use; a new login only
when the server let it go).

Blocking: every function here runs in a worker thread.
"""

from __future__ import annotations

import threading

import imapclient

from ..config import Account
from ..net import imap as imapnet
from ..net.mailboxes import list_folders, sent_folder
from ..transition.mailbox import Refused, append

__all__ = ["Kept", "Refused", "append_to", "in_folder", "in_inbox", "sent_name"]


def sent_name(account: Account) -> str | None:
    client = imapnet.connect(account)
    try:
        found = sent_folder(list_folders(client))
        return found.name if found is not None else None
    finally:
        imapnet.close(client)


def in_folder(account: Account, folder: str, message_id: str) -> bool:
    client = imapnet.connect(account)
    try:
        client.select_folder(folder, readonly=True)
        return bool(client.search(["HEADER", "Message-ID", message_id]))
    finally:
        imapnet.close(client)


def in_sent(account: Account, message_id: str) -> bool:
    """The account's Sent folder holds this Message-ID (the provider filed it, or our
    copy, which is appended only after the server took the message)."""
    folder = sent_name(account)
    return folder is not None and in_folder(account, folder, message_id)


def in_inbox(account: Account, message_ids: list[str]) -> set[str]:
    """Which of ``message_ids`` the INBOX holds."""
    client = imapnet.connect(account)
    try:
        client.select_folder("INBOX", readonly=True)
        return {m for m in message_ids if client.search(["HEADER", "Message-ID", m])}
    finally:
        imapnet.close(client)


def append_to(account: Account, folder: str, raw: bytes) -> tuple[int | None, int | None]:
    client = imapnet.connect(account)
    try:
        return append(client, folder, raw, b"\\Seen")
    finally:
        imapnet.close(client)


class Kept:
    """The new mailbox's IMAP connection kept through a campaign run. A NOOP before each
    use finds a connection the server closed meanwhile (a new login then); an APPEND that
    fails is not tried again here — the caller's placement record says what to do. Blocking:
    one worker thread at a time."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.opened = 0
        self._client: imapclient.IMAPClient | None = None
        self._lock = threading.RLock()      # one command at a time, a close after it

    def _live(self) -> imapclient.IMAPClient:
        if self._client is not None:
            try:
                self._client.noop()
                return self._client
            except Exception:       # noqa: BLE001 - gone: a new connection below
                self.close()
        self._client = imapnet.connect(self.account)
        self.opened += 1
        return self._client

    def sent_name(self) -> str | None:
        with self._lock:
            try:
                found = sent_folder(list_folders(self._live()))
            except BaseException:
                self.close()
                raise
            return found.name if found is not None else None

    def append_to(self, folder: str, raw: bytes) -> tuple[int | None, int | None]:
        with self._lock:
            client = self._live()
            try:
                return append(client, folder, raw, b"\\Seen")
            except Refused:
                raise                   # the server said NO: the connection is fine
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            imapnet.close(client)
