"""What the transition reads from and writes to the two mailboxes, one short connection
each: an arrival's original bytes (BODY.PEEK: it stays unread), a message looked up in
the new INBOX (by Message-ID or another header, else by size and exact bytes), the
byte-exact APPEND of a forward (core/net/wire.py), and the old account's Sent folder
(core/net/mailboxes.py finds it) for a reminder's copy and for proof of a send.

Blocking: every function here runs in a worker thread.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import imapclient

from ..config import Account
from ..errors import SwitchoverError
from ..mail.dates import internaldate, parse_date
from ..net import imap as imapnet
from ..net.mailboxes import list_folders, sent_folder
from ..net.wire import Wire


@dataclass(frozen=True)
class Original:
    raw: bytes
    internaldate: dt.datetime | None
    uid: int


@dataclass(frozen=True)
class Where:
    """Which message of a mailbox: the folder, its UIDVALIDITY and UID, its Message-ID."""
    side: str
    folder: str
    uidvalidity: int
    uid: int
    message_id: str | None


class Refused(SwitchoverError):
    """The server answered NO / BAD to an APPEND: nothing was stored."""


def fetch_original(account: Account, where: Where) -> Original | None:
    """The original bytes by (folder, UIDVALIDITY, UID), else by Message-ID; None when
    the message is no longer in the mailbox."""
    client = imapnet.connect(account)
    try:
        client.normalise_times = False
        info = client.select_folder(where.folder, readonly=True)
        hit, uid = None, where.uid
        if int(info.get(b"UIDVALIDITY", 0) or 0) == where.uidvalidity:
            hit = client.fetch([where.uid], ["BODY.PEEK[]", "INTERNALDATE"]).get(where.uid)
        if (hit is None or b"BODY[]" not in hit) and where.message_id:
            found = client.search(["HEADER", "Message-ID", where.message_id])
            if found:
                uid = found[-1]
                hit = client.fetch([uid], ["BODY.PEEK[]", "INTERNALDATE"]).get(uid)
        if hit is None or b"BODY[]" not in hit:
            return None
        return Original(raw=bytes(hit[b"BODY[]"]), internaldate=parse_date(hit.get(b"INTERNALDATE")), uid=uid)
    finally:
        imapnet.close(client)


def require_original(account: Account, where: Where) -> Original:
    found = fetch_original(account, where)
    if found is None:
        raise SwitchoverError(f"The message is no longer in the {where.side} mailbox's {where.folder} "
                              f"(it was moved or deleted); nothing to forward.")
    return found


def search_inbox(client: imapclient.IMAPClient, message_id: str | None, raw: bytes | None,
                 header: tuple[str, str] | None = None) -> tuple[int, int] | None:
    """(UIDVALIDITY, UID) of a message in INBOX on an open connection: by ``header``
    (name, value), else by Message-ID, else by size and exact bytes."""
    info = client.select_folder("INBOX", readonly=True)
    uidvalidity = int(info.get(b"UIDVALIDITY", 0) or 0)
    if header is not None or message_id:
        name, value = header if header is not None else ("Message-ID", message_id or "")
        hits = client.search(["HEADER", name, value])
        return (uidvalidity, hits[-1]) if hits else None
    if raw is None:
        return None
    hits = client.search(["LARGER", str(len(raw) - 1), "SMALLER", str(len(raw) + 1)])
    if hits:
        for uid, d in client.fetch(hits, ["BODY.PEEK[]"]).items():
            if bytes(d.get(b"BODY[]", b"")) == raw:
                return uidvalidity, int(uid)
    return None


def find_in_inbox(account: Account, message_id: str | None, raw: bytes | None,
                  header: tuple[str, str] | None = None) -> tuple[int, int] | None:
    client = imapnet.connect(account)
    try:
        return search_inbox(client, message_id, raw, header)
    finally:
        imapnet.close(client)


def append(client: imapclient.IMAPClient, folder: str, raw: bytes, flags: bytes = b"",
           when: dt.datetime | None = None) -> tuple[int | None, int | None]:
    """APPEND ``raw`` untouched; (UIDVALIDITY, UID) from APPENDUID when told. A NO /
    BAD raises :class:`Refused` (nothing was stored)."""
    (result,) = Wire(client).append_each(folder, [(flags, internaldate(when) if when else None, raw)])
    if not result.ok:
        raise Refused(f"The server refused to store the message in {folder}: {result.text.rstrip('.')}.")
    return result.uidvalidity, result.uid


def find_or_append(account: Account, message_id: str | None, original: Original,
                   appending: list[bool]) -> tuple[bool, int | None, int | None]:
    """On one connection: (True, UIDVALIDITY, UID) of the message when the new INBOX
    holds it, else APPEND it: (False, UIDVALIDITY, UID). ``appending[0]`` turns True
    just before the APPEND is sent."""
    client = imapnet.connect(account)
    try:
        hit = search_inbox(client, message_id, original.raw)
        if hit is not None:
            return True, hit[0], hit[1]
        appending[0] = True
        uidvalidity, uid = append(client, "INBOX", original.raw, b"", original.internaldate)
        return False, uidvalidity, uid
    finally:
        imapnet.close(client)


def append_inbox(account: Account, original: Original) -> tuple[int | None, int | None]:
    client = imapnet.connect(account)
    try:
        return append(client, "INBOX", original.raw, b"", original.internaldate)
    finally:
        imapnet.close(client)


def _sent_name(client: imapclient.IMAPClient) -> str | None:
    found = sent_folder(list_folders(client))
    return found.name if found is not None else None


def append_sent(account: Account, raw: bytes) -> str | None:
    """A copy of what was sent in the account's Sent folder (read); the folder's name,
    or None when the account has no Sent folder."""
    client = imapnet.connect(account)
    try:
        folder = _sent_name(client)
        if folder is None:
            return None
        append(client, folder, raw, b"\\Seen")
        return folder
    finally:
        imapnet.close(client)


def in_sent(account: Account, message_id: str) -> bool:
    """The account's Sent folder holds a message with this Message-ID."""
    client = imapnet.connect(account)
    try:
        folder = _sent_name(client)
        if folder is None:
            return False
        client.select_folder(folder, readonly=True)
        return bool(client.search(["HEADER", "Message-ID", message_id]))
    finally:
        imapnet.close(client)
