"""IMAP protocol text, without a connection: the errors a command ends in, quoting of
mailbox names (modified UTF-7), UID sets, the response tokenizer, and the records of a
selected folder and an APPEND's outcome. core/net/wire.py speaks it on a socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from imapclient import imap_utf7


class WireError(Exception):
    """A command failed (NO / BAD); ``text`` is the server's words."""

    def __init__(self, status: str, text: str) -> None:
        super().__init__(f"{status} {text}")
        self.status = status
        self.text = text

    @property
    def code(self) -> str:
        m = re.match(r"\[([A-Z-]+)", self.text)
        return m.group(1) if m else ""


class ConnectionLost(OSError):
    """The connection broke or the server said BYE (possibly throttling)."""


class ResponseTooLong(WireError):
    """A server line longer than MAX_LINE: refused loudly (the connection is closed)."""

    def __init__(self, text: str) -> None:
        super().__init__("BAD", text)


class Incomplete(WireError):
    """A listing disagreed with the server's own count (EXISTS): never taken as complete."""

    def __init__(self, text: str) -> None:
        super().__init__("NO", text)


#: one token of a response line: ( ) "quoted" atom-with-[section]
_TOKEN = re.compile(
    rb'[ \t]*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|'
    rb'([^\s()"{}\[\]]*\[[^\]]*\][^\s()"{}]*|[^\s()"{}\[\]]+))')
_UNQUOTE = re.compile(rb"\\(.)")
_UNTAGGED_NUM = re.compile(rb"\* (\d+) ([A-Z]+)")
_CODE = re.compile(rb"\[([A-Z-]+)(?: ([^\]]*))?\]")


def quote(name: str | bytes) -> bytes:
    raw = name.encode() if isinstance(name, str) else name
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def mailbox(name: str) -> bytes:
    return quote(imap_utf7.encode(name))


def uid_set(uids: Iterable[int]) -> bytes:
    """Compact UID set: 1:5,7,9:10."""
    out: list[bytes] = []
    ordered = sorted(uids)
    if not ordered:
        return b""
    start = prev = ordered[0]
    for u in ordered[1:]:
        if u == prev + 1:
            prev = u
            continue
        out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
        start = prev = u
    out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
    return b",".join(out)


def expand_uid_set(text: bytes | str) -> list[int]:
    if isinstance(text, str):
        text = text.encode()
    out: list[int] = []
    for part in text.split(b","):
        if b":" in part:
            a, b = (int(x) for x in part.split(b":"))
            out.extend(range(min(a, b), max(a, b) + 1))
        elif part.strip():
            out.append(int(part))
    return out


def parse_tokens(parts: list[bytes]) -> list[Any]:
    """Turn a response (text parts alternating with literals) into nested lists."""
    root: list[Any] = []
    stack = [root]
    for i, part in enumerate(parts):
        if i % 2:
            stack[-1].append(part)     # the literal itself, not a copy (bodies can be big)
            continue
        # finditer skips what no token matches (e.g. "{"), one character at a time, like
        # the hand-written loop it replaced; it runs once per FETCH line, so it is hot
        for m in _TOKEN.finditer(part):
            atom = m.group(4)
            if atom is not None:
                stack[-1].append(atom)
            elif m.group(1):
                new: list[Any] = []
                stack[-1].append(new)
                stack.append(new)
            elif m.group(2):
                if len(stack) > 1:
                    stack.pop()
            else:
                q = m.group(3)
                stack[-1].append(_UNQUOTE.sub(rb"\1", q) if b"\\" in q else q)
    return root


def check_listed(folder: str, listed: int, exists: int) -> None:
    """A listing must hold as many messages as the server says the folder has."""
    if listed != exists:
        raise Incomplete(f"the server counts {exists:,} messages in {folder} but listed {listed:,}")


@dataclass
class Selected:
    name: str
    exists: int
    uidvalidity: int
    uidnext: int


@dataclass
class AppendResult:
    ok: bool
    uid: int | None = None
    uidvalidity: int | None = None
    text: str = ""
