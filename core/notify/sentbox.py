"""The new mailbox's Sent folder as the campaign uses it: its name, a message looked up by
Message-ID, the byte-exact APPEND of a notice's copy (core/transition/mailbox.py), and
the INBOX search for a test notice. One short connection each.

Blocking: every function here runs in a worker thread.
"""

from __future__ import annotations

from ..config import Account
from ..net import imap as imapnet
from ..net.mailboxes import list_folders, sent_folder
from ..transition.mailbox import Refused, append

__all__ = ["Refused", "append_to", "in_folder", "in_inbox", "sent_name"]


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
