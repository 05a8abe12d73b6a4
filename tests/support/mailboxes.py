"""Mailbox contents for the migration's tests: messages to seed (the awkward cases,
bulk corpora), a byte-exact seed through the server's own APPEND, and the multiset a
folder holds (raw bytes, flags, received instant) to compare both sides with.

Everything here talks to the real loopback server of tests/support/servers.py.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from switchover.core.net.wire import Wire

#: a message to seed: (raw bytes, flags, INTERNALDATE)
Seed = tuple[bytes, bytes, bytes]
#: what a folder holds of one message: (raw bytes, flags without \Recent, received instant)
Held = tuple[bytes, frozenset[bytes], float]

SYSTEM_FLAGS = (b"\\Seen", b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Draft")


def msg(n: int, *, mid: bool = True, body: bytes | None = None, subject: str = "hello") -> bytes:
    head = b"From: Customer <c@example.com>\r\nTo: me@example.com\r\n"
    if mid:
        head += b"Message-ID: <m%d@example.com>\r\n" % n
    head += f"Subject: {subject} {n}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n".encode()
    return head + b"\r\n" + (body if body is not None else b"body %d\r\n" % n)


def tricky() -> list[Seed]:
    """(raw, flags, internaldate) covering the awkward cases."""
    out = [
        (msg(1, subject="=?UTF-8?B?5oql5Lu3?="), b"\\Seen", b"02-Mar-2023 09:15:00 +0800"),
        # 8-bit body and header
        ("From: 王先生 <w@example.cn>\r\nMessage-ID: <8bit@example.cn>\r\nSubject: 报价单\r\n\r\n"
         "价格如下 — ñ ü\r\n".encode(), b"\\Answered $Forwarded", b"15-Jul-2022 23:59:59 -0530"),
        # bare LF, bare CR, mixed
        (b"Message-ID: <lf@example.com>\nSubject: bare lf\n\nline one\nline two\n", b"", b"01-Jan-2020 00:00:00 +0000"),
        (b"Message-ID: <cr@example.com>\r\nSubject: bare cr\r\n\r\nline one\rline two\r\nend\r\n",
         b"\\Flagged", b"29-Feb-2024 12:00:00 +0100"),
        # binary junk (no NUL), missing header/body separator
        (b"Message-ID: <junk@example.com>\r\nSubject: junk\r\n\r\n" + bytes(range(1, 256)) * 4 + b"\r\n",
         b"\\Draft custom_kw", b"10-Oct-2021 10:10:10 +0930"),
        (b"Message-ID: <nosep@example.com>\r\nSubject: no separator\r\nX-Odd: yes", b"", b"05-May-2019 05:05:05 +0000"),
        # no Message-ID (two different ones)
        (msg(2, mid=False), b"\\Seen \\Flagged", b"03-Mar-2023 03:03:03 +0000"),
        (msg(3, mid=False), b"", b"04-Mar-2023 03:03:03 +0000"),
        # the same Message-ID with different bodies
        (msg(4, body=b"first version\r\n"), b"", b"05-Mar-2023 03:03:03 +0000"),
        (msg(4, body=b"second, longer version\r\n"), b"", b"05-Mar-2023 03:03:04 +0000"),
        # every system flag + keywords
        (msg(5), b" ".join(SYSTEM_FLAGS) + b" $Label1 NonJunk", b"06-Mar-2023 03:03:03 -0800"),
    ]
    # a duplicate within the folder (the same bytes twice) stays duplicated
    out.append(out[0])
    return out


def bulk(n: int, size: int = 200, tag: str = "b") -> list[Seed]:
    """``n`` distinct messages of about ``size`` bytes (subject ``tag``)."""
    pad = (b"y" * 70 + b"\r\n") * (size // 72)
    return [(msg(n0, body=pad + f"{tag}{n0}\r\n".encode(), subject=tag), b"\\Seen",
             b"07-Aug-2023 08:00:00 +0200") for n0 in range(n)]


def seed(server: Any, user: Any, folder: str, msgs: list[Seed]) -> None:
    """Byte-exact APPEND (our own literals), creating the folder first."""
    c = server.client(user)
    try:
        server.ensure_folder(c, user, folder)
        w = Wire(c)
        for i in range(0, len(msgs), 200):
            w.multiappend(folder, [(flags, date, raw) for raw, flags, date in msgs[i:i + 200]])
    finally:
        c.logout()


def instant(date: bytes) -> float:
    # Dovecot keeps the instant, not the zone (it answers in its own zone)
    return dt.datetime.strptime(date.decode(), "%d-%b-%Y %H:%M:%S %z").timestamp()


def contents(server: Any, user: Any, folder: str) -> Counter[Held]:
    """Multiset of (raw, flags, internaldate) in a folder."""
    c = server.client(user)
    out: Counter[Held] = Counter()
    try:
        w = Wire(c)
        _, uids = w.select_and_search(folder)

        def each(d: dict[bytes, Any]) -> None:
            flags = frozenset(bytes(f) for f in d.get(b"FLAGS", []) if bytes(f) != b"\\Recent")
            out[(bytes(d[b"BODY[]"]), flags, instant(bytes(d[b"INTERNALDATE"])))] += 1

        if uids:
            w.fetch(b"1:*", b"UID FLAGS INTERNALDATE BODY.PEEK[]", each)
    finally:
        c.logout()
    return out


def expected(msgs: list[Seed]) -> Counter[Held]:
    """What a folder seeded with ``msgs`` holds."""
    return Counter((raw, frozenset(flags.split()), instant(date)) for raw, flags, date in msgs)


def count(server: Any, user: Any, folder: str) -> int:
    """The server's own message count of a folder."""
    c = server.client(user)
    try:
        return int(c.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])
    finally:
        c.logout()


def via_proxy(proxy: Any) -> dict[str, Any]:
    """A config section sending one side's IMAP through a tests/support/proxy.py Proxy."""
    return {"imap": {"host": proxy.host, "port": proxy.port, "security": "none"}}
