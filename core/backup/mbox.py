"""The mbox format as switchover writes and reads it.

Writing is mboxrd: each message follows a ``From <sender> <asctime>`` line, every body
line matching ``>*From `` gets one more ``>`` (exactly reversible), the entry ends with
a newline and a blank line. Bytes are otherwise kept exactly; no Status / X-Status
header is added (flags live in the backup index).

Reading accepts mboxo and mboxrd as Thunderbird, Apple Mail, Foxmail, mutt and
switchover's own backups write them: a message starts at a ``From ...`` line holding a
time and a year that is the first line or follows an empty line; the empty line before
the next ``From `` line belongs to the file, not to the message; every body line
matching ``>+From `` loses one ``>`` (exact for mboxrd; for mboxo it restores the usual
case and only alters a body line that truly began with ``>From ``, which is rare).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from typing import IO, Iterator, NamedTuple

from ..mail.identity import header_block, parse_header_block

_FROM_LINE = re.compile(rb"(?m)^(>*From )")
_QUOTED_FROM = re.compile(rb"(?m)^>(>*From )")
_FROM_SEP = re.compile(rb"^From \S*.*\b\d{1,2}:\d{2}\b.*\b(?:19|20)\d{2}\b")
_ASCTIME = re.compile(rb"([A-Z][a-z]{2}) +(\d{1,2}) (\d{1,2}):(\d{2})(?::(\d{2}))? (?:[A-Z]{3,4} )?((?:19|20)\d{2})")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {m.encode(): i + 1 for i, m in enumerate(_MONTHS)}


# -- writing ------------------------------------------------------------------------------
def mboxrd_quote(raw: bytes) -> bytes:
    """mboxrd: every line matching ``>*From `` gets one more ``>`` (exactly reversible)."""
    return _FROM_LINE.sub(rb">\1", raw)


def mboxrd_unquote(data: bytes) -> bytes:
    return _QUOTED_FROM.sub(rb"\1", data)


def asctime(when: dt.datetime) -> str:
    """ctime-style date in UTC for a ``From `` line, independent of the locale."""
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc)
    return (f"{_DAYS[when.weekday()]} {_MONTHS[when.month - 1]} {when.day:2d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {when.year}")


def envelope_sender(raw: bytes) -> str:
    """Return-Path, else the From address, else MAILER-DAEMON (one token, ASCII)."""
    fields = parse_header_block(header_block(raw))
    for key in (b"RETURN-PATH", b"FROM"):
        value = fields.get(key)
        if value:
            addr = email.utils.parseaddr(value.decode("latin-1"))[1].strip("<> ")
            if addr and addr.isascii() and not re.search(r"\s", addr):
                return addr
    return "MAILER-DAEMON"


def mbox_entry(raw: bytes, when: dt.datetime | None) -> bytes:
    """One mboxrd entry: From line, quoted message, a final newline, a blank line."""
    when = when or dt.datetime.now(dt.timezone.utc)
    head = f"From {envelope_sender(raw)} {asctime(when)}\n".encode("ascii")
    body = mboxrd_quote(raw)
    if not body.endswith(b"\n"):
        body += b"\n"
    return head + body + b"\n"


def entry_message(entry: bytes, size: int) -> bytes | None:
    """The original message bytes of an entry written by :func:`mbox_entry`, or None."""
    if not entry.startswith(b"From "):
        return None
    nl = entry.find(b"\n")
    if nl < 0:
        return None
    return mboxrd_unquote(entry[nl + 1:])[:size]


# -- reading ------------------------------------------------------------------------------
class NotMbox(ValueError):
    """The file does not start with a ``From `` line."""


class MboxMessage(NamedTuple):
    raw: bytes
    #: the date of its ``From `` line (UTC), when it has one that parses
    from_date: dt.datetime | None


def is_from_line(line: bytes) -> bool:
    """True when ``line`` separates messages (``From`` + a time + a year)."""
    return bool(_FROM_SEP.match(line))


def from_line_date(line: bytes) -> dt.datetime | None:
    m = _ASCTIME.search(line)
    if not m or m.group(1) not in _MONTH_NUMBER:
        return None
    try:
        return dt.datetime(int(m.group(6)), _MONTH_NUMBER[m.group(1)], int(m.group(2)), int(m.group(3)),
                           int(m.group(4)), int(m.group(5) or 0), tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def split_mbox(f: IO[bytes]) -> Iterator[MboxMessage]:
    """The messages of an open mbox file, one at a time (memory bounded by the largest
    one). Raises NotMbox when text comes before the first ``From `` line."""
    lines: list[bytes] | None = None
    from_date: dt.datetime | None = None
    prev_blank = True
    for line in f:
        if prev_blank and line.startswith(b"From ") and is_from_line(line):
            if lines is not None:
                yield MboxMessage(_end_message(lines), from_date)
            lines = []
            from_date = from_line_date(line)
            prev_blank = False
            continue
        if lines is None:
            if line.strip():
                raise NotMbox()
            continue
        lines.append(line)
        prev_blank = line in (b"\n", b"\r\n")
    if lines is not None:
        yield MboxMessage(_end_message(lines), from_date)


def _end_message(lines: list[bytes]) -> bytes:
    data = b"".join(lines)
    # the empty line before the next From line is the mbox's separator, not the message's
    if data.endswith(b"\r\n") and data[:-2].endswith(b"\n"):
        data = data[:-2]
    elif data.endswith(b"\n") and data[:-1].endswith(b"\n"):
        data = data[:-1]
    return mboxrd_unquote(data)
